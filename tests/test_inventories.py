"""Inventory and Ansible settings that keep a production run safe."""

from __future__ import annotations

import json
import subprocess

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
