"""Inventory and Ansible settings that keep a production run safe."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT


def config_value(env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        ["ansible-config", "dump", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(str(item["value"]) for item in json.loads(out) if item["name"] == name)


def test_host_keys_are_checked_unless_an_inventory_says_otherwise(ansible_env: dict[str, str]) -> None:
    # A production inventory reaches boxes over SSH through port forwards: a changed host key must stop it.
    assert config_value(ansible_env, "HOST_KEY_CHECKING") == "True"


def inventory_vars(env: dict[str, str], inventory: str) -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", str(ROOT / inventory), "--list", "--export"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_only_the_lab_turns_host_key_checking_off(ansible_env: dict[str, str]) -> None:
    production = json.dumps(inventory_vars(ansible_env, "inventories/production.example"))
    assert "host_key_checking" not in production
    lab = inventory_vars(ansible_env, "inventories/lab")
    lab_vars = lab["lab"]["vars"] | lab["all"].get("vars", {})
    # The lab reaches its containers with `docker exec`: no SSH host key exists to check.
    assert lab_vars["ansible_connection"] == "community.docker.docker"
    assert lab_vars.get("ansible_host_key_checking") is False


def host_var(env: dict[str, str], inventory: Path, host: str, var: str) -> object:
    """`var` of `host` as a play of playbooks/ sees it (playbooks/group_vars included)."""
    out = subprocess.run(
        ["ansible", "-i", str(inventory), host, "--playbook-dir", str(ROOT / "playbooks"),
         "-c", "local", "-m", "ansible.builtin.debug", "-a", f"var={var}", "-o"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.split("=>", 1)[1])[var]


def test_head_office_gets_each_sites_live_url_and_the_secret_the_site_holds(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    # A copy: the secrets are generated into the inventory's credentials/ on first use.
    inventory = tmp_path / "production"
    shutil.copytree(ROOT / "inventories/production.example", inventory)
    live = host_var(ansible_env, inventory, "ho-hub01", "central_api_live_sites")
    assert isinstance(live, list)
    by_name = {s["name"]: s for s in live}
    assert sorted(by_name) == ["jkt-gudang", "sby-toko"]
    assert by_name["jkt-gudang"]["url"] == "https://a1b2c3d4e5f6.sn.mynetname.net"
    secrets = {name: s["secret"] for name, s in by_name.items()}
    assert all(len(s) == 43 for s in secrets.values())
    assert secrets["jkt-gudang"] != secrets["sby-toko"]
    # The site's own cllmh_live_secret (its status page verifies with it) is the same, and stays.
    assert host_var(ansible_env, inventory, "jkt-gudang-nvr01", "cllmh_live_secret") == secrets["jkt-gudang"]
    again = host_var(ansible_env, inventory, "ho-hub01", "central_api_live_sites")
    assert {s["name"]: s["secret"] for s in again} == secrets  # type: ignore[union-attr]
    assert (inventory / "credentials/live-secret-sby-toko").read_text().strip() == secrets["sby-toko"]
    # Only the sites the inventory gives a region are in the dashboard's region filter.
    assert host_var(ansible_env, inventory, "ho-hub01", "central_api_site_regions") == {
        "sby-toko": "Jawa Timur"
    }


def test_the_labs_site_is_played_through_its_published_port(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    inventory = tmp_path / "lab"  # a copy: its live secret is generated on first use
    shutil.copytree(ROOT / "inventories/lab", inventory, ignore=shutil.ignore_patterns("credentials", "pki"))
    (lab,) = host_var(ansible_env, inventory, "cllmh-hq", "central_api_live_sites")  # type: ignore[misc]
    assert lab["url"] == "https://localhost:8443"  # cllmh_live_url of the lab's inventory wins
