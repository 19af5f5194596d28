"""`cllmh central ...` as an operator (or the role) runs it: its own process, a real config file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cllmh.central.app import create_app
from cllmh.central.config import load


def cllmh(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "central", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_wrong_configuration_is_refused_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "central.yaml"
    config.write_text("database: /tmp/x.sqlite3\nthresholds:\n  site_silent_minute: 5\n")
    checked = cllmh(config, "check")
    assert checked.returncode == 2
    assert "thresholds.site_silent_minute" in checked.stderr


def test_enrol_a_site_add_a_user_and_a_token_then_tick(tmp_path: Path) -> None:
    config = tmp_path / "central.yaml"
    config.write_text(f"database: {tmp_path / 'c.sqlite3'}\nsecret_key: x\n")
    assert cllmh(config, "check").returncode == 0
    assert cllmh(config, "site", "add", "site-a").stdout == "site-a: enrolled\n"
    assert cllmh(config, "site", "add", "site-a").stdout == "site-a: already enrolled\n"  # for changed_when
    assert cllmh(config, "site", "add", "Bad Name").returncode == 2
    assert cllmh(config, "site", "add", "site-x").returncode == 0
    assert cllmh(config, "site", "revoke", "site-x").stdout == "site-x: revoked\n"
    assert json.loads(cllmh(config, "site", "list").stdout) == {"site-a": "enrolled", "site-x": "revoked"}
    pw = {"PW": "correct horse battery"}
    assert (
        cllmh(config, "user", "add", "citra", "--role", "viewer", "--password-env", "PW", env=pw).returncode
        == 2
    )
    done = cllmh(config, "user", "add", "ani", "--role", "admin", "--password-env", "PW", env=pw)
    assert done.returncode == 0, done.stderr
    token = cllmh(config, "token", "add", "ani", "--label", "cron").stdout.strip()
    client = create_app(load(config)).test_client()
    sites = client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}).json["sites"]
    assert [s["name"] for s in sites] == ["site-a", "site-x"]
    ticked = cllmh(config, "tick")
    assert ticked.returncode == 0, ticked.stderr
    assert json.loads(ticked.stdout)["opened"] == 0  # enrolled just now: not silent yet
    assert cllmh(config, "site", "revoke", "site-z").returncode == 1
