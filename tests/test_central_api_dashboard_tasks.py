"""The central_api role's dashboard and live-secret task files, run for real on the controller
into a temporary directory (ansible-playbook, local connection): what they write, that a second run
changes nothing (Molecule's idempotence step would fail otherwise), that files of an earlier build
and secrets of sites no longer listed are removed, and that a changed secret restarts the API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT

ROLE = ROOT / "roles/central_api"
PLAY = """
- name: The central_api role's live.yml and dashboard.yml (test)
  hosts: localhost
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Run live.yml
      ansible.builtin.include_tasks: {role}/tasks/live.yml
    - name: Run dashboard.yml
      ansible.builtin.include_tasks: {role}/tasks/dashboard.yml
  handlers:
    - name: API restarted
      ansible.builtin.debug:
        msg: RESTART-REQUESTED
      listen: Restart cllmh-central
"""


def run(ansible_env: dict[str, str], tmp_path: Path, variables: dict) -> str:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=ROLE))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({**variables, "ansible_python_interpreter": sys.executable}))
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{extra}", str(play)],
        cwd=ROOT, env=ansible_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def changed(output: str) -> int:
    return int(re.search(r"localhost\s+:.*changed=(\d+)", output).group(1))  # type: ignore[union-attr]


@pytest.fixture
def dashboard_vars(tmp_path: Path) -> dict:
    source = tmp_path / "repo"
    build = source / "build/dashboard"
    (build / "assets").mkdir(parents=True)
    # `make dashboard` of the real Makefile is tested by `make pytest`; here a stand-in that records its call.
    (source / "Makefile").write_text(f"dashboard:\n\t@touch {tmp_path}/make-ran\n")
    (build / "index.html").write_text("<!doctype html><div id=app></div>\n")
    (build / "assets/index-AAAA.js").write_text("console.log(1)\n")
    return {
        "central_api_dashboard_source_root": str(source),
        "central_api_dashboard_dir": str(tmp_path / "www"),
        "central_api_grafana_url": "https://grafana.example.id",
        "central_api_site_regions": {"jkt-gudang": "Jakarta"},
    }


# One play runs both task files: each ansible-playbook run costs ~10 s of the CI budget.
def test_dashboard_and_live_secrets_are_shipped_idempotently_and_leftovers_removed(
    ansible_env: dict[str, str], tmp_path: Path, dashboard_vars: dict
) -> None:
    www, build, live = tmp_path / "www", tmp_path / "repo/build/dashboard", tmp_path / "live"
    sites = [
        {"name": "jkt-gudang", "url": "https://a1b2.sn.mynetname.net", "secret": "j" * 43},
        {"name": "sby-toko", "url": "https://f6e5.sn.mynetname.net", "secret": "s" * 43},
    ]
    variables = {
        **dashboard_vars,
        "__central_api_live_dir": str(live),
        "central_api_group": "root",
        "central_api_live_sites": sites,
    }
    first = run(ansible_env, tmp_path, variables)
    assert (tmp_path / "make-ran").exists()
    assert (www / "assets/index-AAAA.js").read_text() == "console.log(1)\n"
    settings = json.loads((www / "config.json").read_text())
    assert settings == {
        "grafanaUrl": "https://grafana.example.id",
        "grafanaLokiUid": "cllmh-loki",
        "hoursLeftFloor": 24.0,
        "regions": {"jkt-gudang": "Jakarta"},
    }
    assert "RESTART-REQUESTED" in first  # new secrets: the API reads them at start
    assert (live / "jkt-gudang.secret").read_text() == "j" * 43 + "\n"
    assert oct((live / "sby-toko.secret").stat().st_mode & 0o777) == "0o640"
    assert "s" * 43 not in first  # no_log

    again = run(ansible_env, tmp_path, variables)
    assert changed(again) == 0
    assert "RESTART-REQUESTED" not in again

    # A new build (new hashed names) and a site gone: the old asset and the site's secret go.
    (build / "assets/index-AAAA.js").unlink()
    (build / "assets/index-BBBB.js").write_text("console.log(2)\n")
    variables["central_api_live_sites"] = sites[:1]
    run(ansible_env, tmp_path, variables)
    assert sorted(p.name for p in (www / "assets").iterdir()) == ["index-BBBB.js"]
    assert (www / "config.json").exists()  # head office's settings are not a build's leftover
    assert sorted(p.name for p in live.iterdir()) == ["jkt-gudang.secret"]
