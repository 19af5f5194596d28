"""The reporter's sending rules against a real HTTPS receiver (in this process, real sockets and
TLS): a 5xx is retried with the same key, a 4xx parks the message and the others still go."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cllmh import events as ev
from cllmh.report import transport
from cllmh.report.config import ReportConfig
from cllmh.report.outbox import Outbox
from cllmh.report.service import Reporter
from eventwriter import write_event
from pki import FleetCA
from sitereceiver import SiteReceiver
from test_report_process import free_port

Setup = tuple[SiteReceiver, Reporter, Outbox]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    ca = FleetCA(tmp_path / "pki")
    server, site = ca.server("localhost"), ca.site("site-garut")
    port = free_port()
    receiver = SiteReceiver(port, ca.cert_path, server.cert, server.key)
    receiver.start()
    config = ReportConfig(
        url=f"https://localhost:{port}",
        ca_file=ca.cert_path,
        cert_file=site.cert,
        key_file=site.key,
        state_dir=tmp_path / "report",
        recordings_dir=tmp_path / "rec",
        heartbeat_s=3600,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        log_buffer_dir=tmp_path / "none",
    )
    context = transport.client_context(config.ca_file, config.cert_file, config.key_file)
    outbox = Outbox(config.outbox_path)
    reporter = Reporter(config, outbox, transport.Transport(config.url, context, 10))
    index = ev.Index(config.recordings_dir)
    for n in range(3):
        write_event(
            config.recordings_dir,
            index,
            camera="gate",
            start=time.time(),
            event_id=f"e{n}",
            kind="vehicle",
            size=10,
        )
    index.close()
    yield receiver, reporter, outbox
    outbox.close()
    receiver.stop()


def settle(reporter: Reporter, rounds: int = 50) -> None:
    for _ in range(rounds):
        reporter.tick()
        if reporter.outbox.stats().pending_events == 0:
            return
        time.sleep(0.03)


def test_unavailable_head_office_gets_the_same_key_again(setup: Setup) -> None:
    receiver, reporter, outbox = setup
    receiver.store.fail_next = 2
    settle(reporter)
    requests = receiver.store.requests
    assert [r.kind for r in requests[:2]] == ["unavailable", "unavailable"]
    first_key = requests[0].key
    again = [r.kind for r in requests if r.key == first_key]
    assert again == ["unavailable", "unavailable", "heartbeat"], "retried with the same key until stored"
    assert sorted(receiver.store.events) == ["gate/e0", "gate/e1", "gate/e2"]
    assert outbox.stats().pending_events == 0


def test_a_refused_event_is_parked_and_the_others_still_go(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, reporter, outbox = setup
    receiver.store.refuse = {"gate/e1"}
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        settle(reporter)
        settle(reporter, rounds=3)  # later ticks do not send it again
    assert sorted(receiver.store.events) == ["gate/e0", "gate/e2"]
    assert [r.kind for r in receiver.store.requests if r.body.get("event", {}).get("id") == "gate/e1"] == [
        "refused"
    ]
    stats = outbox.stats()
    assert (stats.pending_events, stats.parked) == (0, 1)
    (parked,) = [m for m in outbox.listing() if m["parked"] is not None]
    assert parked["ref"] == "gate/e1" and parked["last_error"].startswith("HTTP 400")
    assert "refused event gate/e1" in caplog.text and "event.labels" in caplog.text


def test_the_heartbeat_goes_before_a_backlog_of_events(setup: Setup) -> None:
    receiver, reporter, _ = setup
    reporter.tick()
    assert receiver.store.requests[0].kind == "heartbeat"


def test_the_heartbeat_has_exactly_the_contracts_fields(setup: Setup) -> None:
    receiver, reporter, _ = setup
    reporter.tick()
    body = receiver.store.heartbeats[0]
    assert set(body) == {"schema", "sent_at", "state"}
    state = body["state"]
    assert set(state) == {
        "version",
        "uptime_s",
        "hostname",
        "temperature_c",
        "disk",
        "guard",
        "cameras",
        "log_forwarding",
        "outbox",
    }
    assert set(state["disk"]) == {"path", "total_bytes", "used_bytes", "free_bytes", "hours_left"}
    assert set(state["guard"]) == {"deleted_person_events_24h", "last_run"}
    assert set(state["log_forwarding"]) == {"backlog_bytes"}
    assert set(state["outbox"]) == {"pending", "oldest"}
    assert state["cameras"] == []  # none configured in this setup


def test_a_site_head_office_does_not_know_yet_parks_nothing_and_loses_nothing(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, reporter, outbox = setup
    receiver.store.refuse_site = True
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        settle(reporter, rounds=5)
    assert {r.kind for r in receiver.store.requests} == {"forbidden"}
    stats = outbox.stats()
    assert (stats.pending_events, stats.parked) == (3, 0)
    assert "HTTP 403" in caplog.text and "is the site registered there" in caplog.text
    receiver.store.refuse_site = False  # head office registers the site
    settle(reporter)
    assert sorted(receiver.store.events) == ["gate/e0", "gate/e1", "gate/e2"]
