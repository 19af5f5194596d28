"""`cllmh report` as a real process against a real HTTPS receiver with the fleet PKI: head office
down for a while, the reporter restarted or killed, every event still arrives exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cllmh import events as ev
from cllmh.report.outbox import read_listing
from eventwriter import write_event
from pki import FleetCA, Issued
from sitereceiver import SiteReceiver

SITE = "site-bandung"
CAMERA = "gate"


def wait_for(what: str, condition: Callable[[], bool], limit_s: float = 60.0) -> None:
    """Poll until `condition` holds; fail naming `what` if it never does (a hang guard, not a timing)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for: {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """A site's recordings, its reporter's configuration and the reporter process."""

    def __init__(self, tmp: Path, ca: FleetCA, cert: Issued, port: int) -> None:
        self.root = tmp / "recordings"
        self.state = tmp / "report"
        self.log = tmp / "report.log"
        self.config = tmp / "report.yaml"
        self.config.write_text(
            f"url: https://localhost:{port}\n"
            f"ca_file: {ca.cert_path}\ncert_file: {cert.cert}\nkey_file: {cert.key}\n"
            f"state_dir: {self.state}\nrecordings_dir: {self.root}\n"
            f"cameras: [{CAMERA}]\nlog_buffer_dir: {tmp / 'no-syslog-buffer'}\n"
            "heartbeat_s: 0.5\npoll_s: 0.1\nbackoff_initial_s: 0.1\nbackoff_max_s: 0.5\ntimeout_s: 10\n",
            encoding="utf-8",
        )
        self.index = ev.Index(self.root)
        self.written: list[str] = []
        self.process: subprocess.Popen | None = None

    def write_events(self, n: int) -> None:
        for _ in range(n):
            name = f"ev{len(self.written):04d}"
            write_event(
                self.root,
                self.index,
                camera=CAMERA,
                start=time.time(),
                event_id=name,
                kind="person",
                size=4096,
            )
            self.written.append(f"{CAMERA}/{name}")

    def start(self) -> None:
        with open(self.log, "a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cllmh.cli", "report", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(30)
        self.process = None
        return code

    def outbox(self) -> list[dict]:
        return read_listing(self.state / "outbox.sqlite3")

    def pending_events(self) -> list[str]:
        return [m["ref"] for m in self.outbox() if m["kind"] == "event" and m["parked"] is None]

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(encoding="utf-8")


@pytest.fixture
def pki(tmp_path: Path) -> tuple[FleetCA, Issued, Issued]:
    ca = FleetCA(tmp_path / "pki")
    return ca, ca.server("localhost", "127.0.0.1"), ca.site(SITE)


@pytest.fixture
def site(tmp_path: Path, pki: tuple[FleetCA, Issued, Issued]) -> Iterator[Site]:
    ca, _, cert = pki
    made = Site(tmp_path, ca, cert, free_port())
    yield made
    if made.process is not None:
        made.process.kill()
        made.process.wait(30)
    made.index.close()


def receiver_for(site: Site, ca: FleetCA, server: Issued) -> SiteReceiver:
    port = int(site.config.read_text(encoding="utf-8").split("localhost:")[1].split()[0])
    return SiteReceiver(port, ca.cert_path, server.cert, server.key)


def test_head_office_down_and_reporter_restarted_every_event_arrives_exactly_once(
    site: Site, pki: tuple[FleetCA, Issued, Issued]
) -> None:
    ca, server, _ = pki
    receiver = receiver_for(site, ca, server)  # not started: head office is down
    site.start()
    site.write_events(4)
    wait_for("4 events waiting in the outbox", lambda: len(site.pending_events()) == 4)
    wait_for("a failed delivery logged", lambda: site.logged("cannot deliver"))
    assert site.stop() == 0  # restarted once in the middle
    site.write_events(3)  # while no reporter runs
    site.start()
    site.write_events(3)
    wait_for("10 events waiting", lambda: len(site.pending_events()) == 10)
    heartbeats = [m for m in site.outbox() if m["kind"] == "heartbeat"]
    assert len(heartbeats) == 1, "pending heartbeats coalesce to the latest"
    assert receiver.store.requests == []

    receiver.start()  # head office is back
    try:
        wait_for("the outbox emptied of events", lambda: site.pending_events() == [])
        wait_for("a heartbeat received", lambda: len(receiver.store.heartbeats) > 0)
        assert site.stop() == 0
    finally:
        receiver.stop()

    received = receiver.store.event_requests()
    assert sorted(receiver.store.events) == sorted(site.written)
    assert Counter(r.body["event"]["id"] for r in received) == Counter(site.written), "each event once"
    assert not any(r.duplicate for r in received)
    assert {r.cn for r in receiver.store.requests} == {SITE}
    event = receiver.store.events[site.written[0]]
    assert event["labels"] == {"person": 0.95}
    assert event["clip_path"].startswith(f"{CAMERA}/") and event["clip_path"].endswith("/clip.mp4")
    assert event["snapshot_jpeg_b64"]
    state = receiver.store.heartbeats[-1]["state"]
    assert state["cameras"][0]["name"] == CAMERA
    assert state["disk"]["path"] == str(site.root) and state["disk"]["total_bytes"] > 0
    assert site.outbox() == [] or {m["kind"] for m in site.outbox()} == {"heartbeat"}


def test_kill_9_mid_send_loses_nothing_and_doubles_nothing(
    site: Site, pki: tuple[FleetCA, Issued, Issued]
) -> None:
    ca, server, _ = pki
    receiver = receiver_for(site, ca, server)
    served = receiver.start(hold_events=True)  # stores the first event, then holds its answer
    try:
        site.write_events(3)
        site.start()
        wait_for("the first event at the receiver, its answer held", served.holding.is_set)
        (held,) = receiver.store.event_requests()
        site.stop(signal.SIGKILL)  # killed between head office storing it and the answer
        served.released.set()
        assert held.body["event"]["id"] in site.pending_events(), "unanswered: still in the outbox"

        site.start()
        wait_for("the outbox emptied of events", lambda: site.pending_events() == [])
        assert site.stop() == 0
    finally:
        receiver.stop()

    received = receiver.store.event_requests()
    assert sorted(receiver.store.events) == sorted(site.written), "nothing lost, each stored once"
    repeats = [r for r in received if r.body["event"]["id"] == held.body["event"]["id"]]
    assert [r.key for r in repeats] == [held.key, held.key], "re-sent with the same idempotency key"
    assert [r.duplicate for r in repeats] == [False, True]
    keys_per_event: dict[str, set[str]] = {}
    for r in received:
        keys_per_event.setdefault(r.body["event"]["id"], set()).add(r.key)
    assert all(len(keys) == 1 for keys in keys_per_event.values()), "one key per event"


def test_head_office_with_a_certificate_of_another_ca_gets_nothing(site: Site, tmp_path: Path) -> None:
    other = FleetCA(tmp_path / "other-pki", name="Some other CA")
    impostor = other.server("localhost", "127.0.0.1")
    receiver = SiteReceiver(
        int(site.config.read_text(encoding="utf-8").split("localhost:")[1].split()[0]),
        other.cert_path,
        impostor.cert,
        impostor.key,
    )
    receiver.start()
    try:
        site.write_events(2)
        site.start()
        wait_for("the refusal logged", lambda: site.logged("certificate is not trusted"))
        assert site.stop() == 0
    finally:
        receiver.stop()
    assert receiver.store.requests == []
    assert receiver.store.tls_failures > 0
    assert sorted(site.pending_events()) == sorted(site.written), "kept for when head office is right"
    line = next(x for x in site.log.read_text(encoding="utf-8").splitlines() if "not trusted" in x)
    assert "fleet CA" in line and "nothing was sent" in line
    listed = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "report", "--outbox", "--config", str(site.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(listed.stdout)
    assert shown["pending"] >= 2 and shown["parked"] == 0
    assert sorted(m["ref"] for m in shown["messages"] if m["kind"] == "event") == sorted(site.written)
    assert any("not trusted" in (m["last_error"] or "") for m in shown["messages"])


def test_check_config_loads_the_certificates(site: Site, tmp_path: Path) -> None:
    empty = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "report", "--outbox", "--config", str(site.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(empty.stdout) == {"pending": 0, "parked": 0, "messages": []}
    assert not site.state.exists(), "listing the outbox creates nothing"
    ok = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "report", "--check-config", "--config", str(site.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ,
    )
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(site.config.read_text().replace("https://", "http://") + "colour: blue\n")
    bad = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "report", "--check-config", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "url: Value error, must be an https:// URL" in bad.stderr and "colour: Extra inputs" in bad.stderr
