"""Every Loki query of the dashboards returns data from a real Loki fed with lines labelled as the hub does.

The labels are the head office's (site, host, severity, facility, program, and topic for MikroTik lines);
one site speaks now, another went silent two hours ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loki import Loki
from test_dashboards import DASHBOARDS, REPO, dq

NOW = time.time()
SILENT_SITE, LIVE_SITE = "gudang-uji", "toko-uji"


def feed(loki: Loki) -> None:
    def labels(site: str, host: str, severity: str, program: str, **extra: str) -> dict[str, str]:
        return {
            "site": site,
            "host": host,
            "severity": severity,
            "facility": "local0",
            "program": program,
            **extra,
        }

    recent = [NOW - 300 + i for i in range(10)]
    loki.push(
        labels(LIVE_SITE, "nvr01", "info", "cllmh-recorder"),
        [(t, f"segment {i} written") for i, t in enumerate(recent)],
    )
    loki.push(labels(LIVE_SITE, "nvr01", "err", "nvr"), [(recent[0], "HDD error: disk 1 read failure")])
    loki.push(labels(LIVE_SITE, "nvr01", "warning", "nvr"), [(recent[1], "Video loss on channel 3")])
    loki.push(
        labels(LIVE_SITE, "mt01", "err", "mikrotik", topic="system,error,critical"),
        [(recent[2], "login failure for user admin from 10.9.0.7 via winbox")],
    )
    loki.push(
        labels(LIVE_SITE, "mt01", "info", "mikrotik", topic="system,info,account"),
        [(recent[3], "user admin logged in")],
    )
    loki.push(labels(SILENT_SITE, "nvr01", "info", "cllmh-recorder"), [(NOW - 7200, "segment 0 written")])


@pytest.fixture(scope="module")
def loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loki]:
    server = Loki(tmp_path_factory.mktemp("loki")).start()
    try:
        feed(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return dq.load(DASHBOARDS)


def test_every_dashboard_query_returns_data_from_loki(loki: Loki, dashboards: list[dict[str, Any]]) -> None:
    results = dq.run(loki.url, dashboards, NOW - 3 * 3600, NOW + 60)
    assert len(results) >= 10
    report = [
        f"{r.query.dashboard} / {r.query.panel}: {r.error or 'no data'}" for r in results if not r.has_data
    ]
    assert report == []


def test_the_runner_reports_queries_without_data(loki: Loki, dashboards: list[dict[str, Any]]) -> None:
    """A day with no lines at all: every query is reported empty, none as an error."""
    results = dq.run(loki.url, dashboards, NOW - 30 * 86400, NOW - 29 * 86400)
    assert [r.error for r in results] == [None] * len(results)
    assert not any(r.has_data for r in results)


def test_silent_sites_lists_the_silent_site_only(loki: Loki, dashboards: list[dict[str, Any]]) -> None:
    [(_, expr)] = [
        (q, e) for q, e in dq.loki_queries(dashboards, 3 * 3600) if q.panel.startswith("Silent sites")
    ]
    answer = dq.query_range(loki.url, expr, NOW - 600, NOW + 60)
    assert {series["metric"]["site"] for series in answer["data"]["result"]} == {SILENT_SITE}


def test_the_command_line_exits_1_when_a_query_has_no_data(loki: Loki, tmp_path: Path) -> None:
    assert dq.main(["--loki-url", loki.url, "--since", "3h", "--require-data", *map(str, DASHBOARDS)]) == 0
    assert dq.main(["--loki-url", f"{loki.url}/nowhere", "--since", "3h", *map(str, DASHBOARDS)]) == 1


def run_verify_playbook(loki: Loki, tmp_path: Path, marker: str) -> subprocess.CompletedProcess[str]:
    """playbooks/verify_head_office.yml, Loki part only, with a site and a head office on this machine."""
    inventory = tmp_path / "hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "cctv_sites": {"hosts": {"site-uji": {**local, "cllmh_site_name": LIVE_SITE}}},
                        "head_office": {"hosts": {"ho-uji": local}},
                    }
                }
            }
        )
    )
    extra = {"verify_marker": marker, "verify_loki_url": loki.url, "verify_loki_retries": 1}
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            "--tags=verify_loki",
            "-e",
            json.dumps(extra),
            str(REPO / "playbooks" / "verify_head_office.yml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        timeout=300,
        check=False,
    )


def test_verify_playbook_reads_the_numbered_line_back_from_loki(loki: Loki, tmp_path: Path) -> None:
    marker = f"cllmh-verify-{uuid.uuid4().hex[:12]}"
    labels = {
        "site": LIVE_SITE,
        "host": "nvr01",
        "severity": "notice",
        "facility": "user",
        "program": "cllmh-verify",
    }
    loki.push(labels, [(time.time() - 5, f"{marker} line 1")])
    result = run_verify_playbook(loki, tmp_path, marker)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Loki has {marker} from {LIVE_SITE}" in result.stdout


def test_verify_playbook_fails_when_the_line_never_arrived(loki: Loki, tmp_path: Path) -> None:
    result = run_verify_playbook(loki, tmp_path, f"cllmh-verify-{uuid.uuid4().hex[:12]}")
    assert result.returncode != 0
    assert "Read the line from Loki" in result.stdout
