"""The site's state collectors on real files and a real event index."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from cllmh import events as ev
from cllmh.collect import disk, logfwd, system
from cllmh.collect.cameras import StreamTracker, cameras_state, parse_unit_states
from eventwriter import write_event


def test_finished_events_lists_only_events_whose_writer_finished(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    index = ev.Index(root)
    now = time.time()
    write_event(root, index, camera="gate", start=now - 100, event_id="done", kind="person", size=1024)
    writer = ev.EventWriter.open(
        root, camera="gate", event_id="recording", start=now - 50, info={}, index=index
    )
    try:
        listed = ev.finished_events(root, now - 3600)
        assert [e.event_id for e in listed] == ["done"]
        assert listed[0].camera == "gate" and listed[0].path.name == "done"
        assert ev.finished_events(root, now - 10) == []
    finally:
        writer.close()
        index.close()
    assert ev.finished_events(tmp_path / "nothing-here", 0) == []
    assert not (tmp_path / "nothing-here").exists(), "reading creates nothing"


def test_disk_state_from_the_guard_status_or_the_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    disk_state, guard = disk.disk_state(root)
    assert disk_state["total_bytes"] > 0 and disk_state["hours_left"] is None
    no_keeps = {"kept_events": 0, "kept_bytes": 0, "kept_fill": False}
    assert guard == {"deleted_person_events_24h": 0, "last_run": None, **no_keeps}
    index = ev.Index(root)
    status = {"total_bytes": 1000, "used_bytes": 600, "free_bytes": 400, "hours_left": 12.5}
    index.set_status(status, 1234.0)
    event = ev.EventInfo("e1", "gate", root / "x", time.time(), 10, ev.RetentionClass.PERSON, True, False, 0)
    index.add_event(
        event_id="e1", camera="gate", start=1, end=2, labels={"person": 1}, path=root, size_bytes=10
    )
    index.remove_event(event, "free space below the floor", time.time())
    index.close()
    disk_state, guard = disk.disk_state(root)
    assert disk_state == {
        "path": str(root),
        "total_bytes": 1000,
        "used_bytes": 600,
        "free_bytes": 400,
        "hours_left": 12.5,
    }
    assert guard == {"deleted_person_events_24h": 1, "last_run": 1234.0, **no_keeps}


def test_log_backlog_is_the_disk_buffer_size(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer"
    assert logfwd.backlog_bytes(buffer) is None
    buffer.mkdir()
    (buffer / "syslog-ng-00000.rqf").write_bytes(b"x" * 4096)
    (buffer / "syslog-ng-00001.qf").write_bytes(b"x" * 100)
    (buffer / "unrelated.txt").write_bytes(b"x" * 7)
    assert logfwd.backlog_bytes(buffer) == 4196


def test_host_facts(tmp_path: Path) -> None:
    zones = tmp_path / "thermal"
    for n, milli in enumerate(["41000", "48200", "garbage"]):
        (zones / f"thermal_zone{n}").mkdir(parents=True)
        (zones / f"thermal_zone{n}" / "temp").write_text(milli + "\n")
    assert system.temperature_c(zones) == 48.2
    assert system.temperature_c(tmp_path / "none") is None
    assert (system.uptime_s() or 0) > 0
    assert system.hostname()


def test_cameras_without_systemd_are_unknown_and_down(tmp_path: Path) -> None:
    state = cameras_state(["gate"], StreamTracker(), 100.0, systemctl=str(tmp_path / "no-systemctl"))
    assert state == [
        {
            "name": "gate",
            "stream": "down",
            "since": 100.0,
            "fps": None,
            "width": None,
            "height": None,
            "units": {"ingest": "unknown", "recorder": "unknown"},
        }
    ]


def test_cameras_from_the_rtmp_statistics_page(tmp_path: Path) -> None:
    from test_report_policy import REAL_STAT  # noqa: PLC0415 - the captured nginx-rtmp page

    class Stat(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(REAL_STAT)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stat"
        gate, yard = cameras_state(
            ["gate", "yard"], StreamTracker(), 1000.0, stat_url=url, systemctl=str(tmp_path / "none")
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (gate["stream"], gate["since"], gate["fps"], gate["width"], gate["height"]) == (
        "up",
        1000.0 - 3.672,
        15.0,
        640,
        360,
    )
    assert (yard["stream"], yard["fps"]) == ("down", None)
    unreadable = cameras_state(
        ["gate"], StreamTracker(), 1000.0, stat_url=url, systemctl=str(tmp_path / "none")
    )
    assert unreadable[0]["stream"] == "down", "no page and no unit state: not claimed up"


# `systemctl show --property=Id,LoadState,ActiveState` as systemd 252 (Debian 12) prints it for an
# installed unit that runs, one that is stopped and one that is not installed.
SHOW = """Id=nginx.service
LoadState=loaded
ActiveState=active

Id=cllmh-recorder@gate.service
LoadState=loaded
ActiveState=inactive

Id=cllmh-guard.service
LoadState=not-found
ActiveState=inactive
"""


def test_a_unit_that_is_not_installed_is_not_called_stopped() -> None:
    units = ["nginx.service", "cllmh-recorder@gate.service", "cllmh-guard.service"]
    assert parse_unit_states(units, SHOW) == {
        "nginx.service": "active",
        "cllmh-recorder@gate.service": "inactive",
        "cllmh-guard.service": "not-installed",
    }


def test_cpu_use_is_measured_on_the_first_call_in_a_fresh_thread() -> None:
    """psutil.cpu_percent(interval=None) reads 0.0 on a thread's first call: each request thread of
    the status page showed 0.0 %. The gauge measures over a short interval instead."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        readings: list[float] = []
        gauge = system.CpuGauge()
        fresh = threading.Thread(target=lambda: readings.append(gauge.percent()))
        fresh.start()
        fresh.join()
        later = threading.Thread(target=lambda: readings.append(gauge.percent()))
        time.sleep(0.3)
        later.start()
        later.join()
    finally:
        busy.kill()
        busy.wait()
    # One of the host's cores spins the whole time: at least a share of one core is busy.
    assert readings[0] > 100 / (os.cpu_count() or 1) / 2, readings
    assert readings[1] > 0, readings


def test_busy_percent_is_the_share_not_idle() -> None:
    zero = {field: 0.0 for field in psutil.cpu_times()._fields}
    before = psutil.cpu_times()._replace(**{**zero, "user": 10, "system": 10, "idle": 70, "iowait": 10})
    after = before._replace(user=40, idle=100, iowait=20)
    assert system.busy_percent(before, after) == 42.9  # 30 busy of 70
    assert system.busy_percent(before, before) == 0.0
