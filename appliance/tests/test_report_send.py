"""The reporter's sending rules (Reporter.tick in this process) against the real head office
(tests/headoffice.py: nginx rendered from the central_api role's template, gunicorn, cllmh.central):
a 502 is retried with the same key, a 400 parks the message and the others still go, a 403 parks
nothing. One head office for the module; each test is its own site."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cllmh import events as ev
from cllmh.report import messages, transport
from cllmh.report.config import ReportConfig
from cllmh.report.outbox import Outbox
from cllmh.report.service import Reporter
from eventwriter import write_event
from headoffice import HeadOffice, head_office, wait_for
from pki import FleetCA

SITES = (f"site-garut-{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> FleetCA:
    return FleetCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory, fleet: FleetCA) -> Iterator[HeadOffice]:
    with head_office(tmp_path_factory.mktemp("central"), fleet) as office:
        yield office


class Site:
    def __init__(self, name: str, reporter: Reporter, outbox: Outbox) -> None:
        self.name, self.reporter, self.outbox = name, reporter, outbox

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            self.reporter.tick()
            if self.outbox.stats().pending_events == 0:
                return
            time.sleep(0.03)


@pytest.fixture
def make_site(tmp_path: Path, fleet: FleetCA, central: HeadOffice) -> Iterator[Callable[..., Site]]:
    """A site with three finished events (`cameras`: the camera of each), enrolled unless told."""
    outboxes: list[Outbox] = []

    def make(*, enrolled: bool = True, cameras: tuple[str, ...] = ("gate", "gate", "gate")) -> Site:
        name = next(SITES)
        cert = fleet.site(name)
        config = ReportConfig(
            url=central.url,
            ca_file=fleet.cert_path,
            cert_file=cert.cert,
            key_file=cert.key,
            state_dir=tmp_path / "report",
            recordings_dir=tmp_path / "rec",
            heartbeat_s=3600,
            backoff_initial_s=0.01,
            backoff_max_s=0.02,
            log_buffer_dir=tmp_path / "none",
        )
        context = transport.client_context(config.ca_file, config.cert_file, config.key_file)
        outbox = Outbox(config.outbox_path)
        outboxes.append(outbox)
        index = ev.Index(config.recordings_dir)
        for n, camera in enumerate(cameras):
            write_event(
                config.recordings_dir,
                index,
                camera=camera,
                start=time.time(),
                event_id=f"e{n}",
                kind="vehicle",
                size=10,
            )
        index.close()
        if enrolled:
            central.enroll(name)
        return Site(name, Reporter(config, outbox, transport.Transport(config.url, context, 10)), outbox)

    yield make
    for outbox in outboxes:
        outbox.close()


def test_unavailable_head_office_gets_the_same_key_again(
    central: HeadOffice, make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site()
    seen = len(central.nginx_log())
    central.stop_api()
    try:
        with caplog.at_level(logging.WARNING, logger="cllmh.report"):
            site.reporter.tick()  # nginx answers 502: the API is down
    finally:
        central.start_api()
    (warning,) = [r.getMessage() for r in caplog.records if "[report.undelivered]" in r.getMessage()]
    assert "HTTP 502" in warning and "502 Bad Gateway" in warning
    assert "\n" not in warning, "nginx's HTML page logged as one line"
    site.settle()
    first = next(r for r in central.nginx_log()[seen:] if r.status == 502)

    def again() -> list[int]:
        return [r.status for r in central.nginx_log()[seen:] if r.key == first.key]

    wait_for("nginx's log of the second try", lambda: len(again()) >= 2)  # written after the answer
    assert again() == [502, 200], "retried with the same key until stored"
    assert central.event_ids(site.name) == ["gate/e0", "gate/e1", "gate/e2"]
    assert site.outbox.stats().pending_events == 0


def test_a_refused_event_is_parked_and_the_others_still_go(
    central: HeadOffice, make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site()
    # A message head office refuses (400): a real event's body with a score no detector gives,
    # put into the real outbox as the reporter would put it.
    root = site.reporter.config.recordings_dir
    e1 = next(e for e in ev.finished_events(root, 0) if messages.event_id(e) == "gate/e1")
    real = json.loads(messages.event_body(root, e1) or b"{}")
    real["event"]["id"] = "gate/e9"
    real["event"]["labels"] = {"vehicle": 1.7}
    key = site.outbox.enqueue_event("gate/e9", real["event"]["start"], json.dumps(real).encode(), time.time())
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        site.settle()
        site.settle(rounds=3)  # later ticks do not send it again
    assert central.event_ids(site.name) == ["gate/e0", "gate/e1", "gate/e2"]
    stats = site.outbox.stats()
    assert (stats.pending_events, stats.parked) == (0, 1)
    (parked,) = [m for m in site.outbox.listing() if m["parked"] is not None]
    assert (parked["ref"], parked["key"]) == ("gate/e9", key) and parked["last_error"].startswith("HTTP 400")
    assert '"field":"event.labels.vehicle"' in parked["last_error"], "head office names the wrong field"
    assert [r.status for r in central.api_log() if r.key == parked["key"]] == [400], "sent once"
    assert (
        "[report.parked] Kantor pusat menolak kejadian gate/e9" in caplog.text and "HTTP 400" in caplog.text
    )


def test_camera_names_the_site_records_are_taken_by_head_office(
    central: HeadOffice, make_site: Callable[..., Site]
) -> None:
    """One rule for camera names (cllmh.names): a camera with capitals reaches head office."""
    site = make_site(cameras=("gate", "Lobby", "Parkir_B-2"))
    site.settle()
    assert central.event_ids(site.name) == ["Lobby/e1", "Parkir_B-2/e2", "gate/e0"]
    assert site.outbox.stats().parked == 0


def test_the_heartbeat_goes_before_a_backlog_of_events(
    central: HeadOffice, make_site: Callable[..., Site]
) -> None:
    site = make_site()
    site.reporter.tick()
    stored = central.site(site.name)
    assert stored is not None and stored.last_seen is not None
    with central.store() as store:
        events = [
            r[0] for r in store.db.execute("SELECT received_at FROM events WHERE site = ?", (site.name,))
        ]
    assert len(events) == 3 and stored.last_seen < min(events), "the heartbeat was received first"


def test_the_heartbeat_has_exactly_the_contracts_fields(
    central: HeadOffice, make_site: Callable[..., Site]
) -> None:
    site = make_site()
    site.reporter.tick()
    stored = central.site(site.name)
    assert stored is not None and stored.state is not None, "head office took the heartbeat"
    state = stored.state
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
    assert set(state["guard"]) == {
        "deleted_person_events_24h",
        "last_run",
        "kept_events",
        "kept_bytes",
        "kept_fill",
    }
    assert set(state["log_forwarding"]) == {"backlog_bytes"}
    assert set(state["outbox"]) == {"pending", "oldest"}
    assert state["cameras"] == []  # none configured in this setup


def test_a_site_head_office_does_not_know_yet_parks_nothing_and_loses_nothing(
    central: HeadOffice, make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site(enrolled=False)
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        site.settle(rounds=5)
    keys = {m["key"] for m in site.outbox.listing()}
    assert {r.status for r in central.api_log() if r.key in keys} <= {403}
    assert central.event_ids(site.name) == []
    stats = site.outbox.stats()
    assert (stats.pending_events, stats.parked) == (3, 0)
    assert "HTTP 403" in caplog.text and "[report.site_refused]" in caplog.text
    assert "Apakah lokasi ini sudah didaftarkan di sana" in caplog.text  # the catalogue's words
    central.enroll(site.name)  # head office registers the site: `cllmh central site add`
    site.settle()
    assert central.event_ids(site.name) == ["gate/e0", "gate/e1", "gate/e2"]
    assert site.outbox.stats().parked == 0
