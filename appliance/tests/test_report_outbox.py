"""The outbox on a real SQLite file: once per event, heartbeats coalesced, retries, parking, the bound."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cllmh import catalogue
from cllmh.report.outbox import EVENT, HEARTBEAT, Outbox
from cllmh.report.policy import DAY

NOW = 1_800_000_000.0


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "state" / "outbox.sqlite3")


def test_an_event_is_enqueued_once_even_after_a_restart(box: Outbox, tmp_path: Path) -> None:
    key = box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    assert key is not None and len(key) == 32
    assert box.enqueue_event("gate/ev1", NOW, b"{}", NOW + 1) is None
    box.close()
    again = Outbox(tmp_path / "state" / "outbox.sqlite3")
    assert again.enqueue_event("gate/ev1", NOW, b"{}", NOW + 2) is None
    assert again.seen(["gate/ev1", "gate/ev2"]) == {"gate/ev1"}
    (message,) = again.due(NOW + 3)
    assert (message.kind, message.ref, message.key) == (EVENT, "gate/ev1", key)
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_reporter_s_log_lines_come_from_the_catalogue_in_its_language(
    box: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box.enqueue_event("gate/old", NOW, b"{}", NOW)
    box.age(31 * DAY)
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        ((_, _, key),) = box.expire(NOW, 30, "en")
    (line,) = [r.getMessage() for r in caplog.records]
    english = catalogue.text("report.dropped_undelivered", "en", what="event gate/old", key=key, days="30")
    assert line == f"[report.dropped_undelivered] {english}"
    assert line.endswith("not delivered for more than 30 days (the outbox bound)")


def test_a_delivered_event_is_not_enqueued_again(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    box.delivered(box.due(NOW)[0], NOW)
    assert box.due(NOW) == []
    assert box.enqueue_event("gate/ev1", NOW, b"{}", NOW + 5) is None


def test_heartbeats_coalesce_to_the_latest(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"e", NOW)
    for n in range(5):
        box.enqueue_heartbeat(f"hb{n}".encode(), NOW + n)
    pending = box.due(NOW + 10)
    assert [(m.kind, m.body) for m in pending] == [(HEARTBEAT, b"hb4"), (EVENT, b"e")]


def test_a_failed_message_waits_and_keeps_its_key(box: Outbox) -> None:
    key = box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    box.enqueue_event("gate/ev2", NOW, b"{}", NOW)
    first = box.due(NOW)[0]
    box.failed(first, next_try=NOW + 60, error="ConnectionRefusedError")
    assert [m.ref for m in box.due(NOW + 1)] == ["gate/ev2"]
    (retried, _) = box.due(NOW + 60)
    assert (retried.key, retried.attempts) == (key, 1)
    assert box.listing()[0]["last_error"] == "ConnectionRefusedError"


def test_a_parked_message_is_kept_aside(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    box.park(box.due(NOW)[0], now=NOW, error="HTTP 400: labels")
    assert box.due(NOW + DAY) == []
    stats = box.stats()
    assert (stats.pending, stats.parked) == (0, 1)


def test_of_refused_heartbeats_only_the_latest_is_kept(box: Outbox) -> None:
    for n in range(5):
        box.enqueue_heartbeat(f"hb{n}".encode(), NOW + n)
        box.park(box.due(NOW + n)[0], now=NOW + n, error="HTTP 400: state.cameras[0].fps")
    assert [(m["kind"], m["parked"]) for m in box.listing()] == [(HEARTBEAT, NOW + 4)]


def test_the_bound_drops_only_what_waited_longer_and_logs_each(
    box: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box.enqueue_event("gate/old", NOW - 31 * DAY, b"{}", NOW - 31 * DAY)
    box.enqueue_event("gate/parked", NOW - 31 * DAY, b"{}", NOW - 31 * DAY + 1)
    box.park(box.due(NOW)[1], now=NOW - 30 * DAY, error="HTTP 400")
    box.age(20 * DAY)
    box.enqueue_event("gate/young", NOW - 29 * DAY, b"{}", NOW - 29 * DAY)
    box.age(10 * DAY)
    with caplog.at_level(logging.ERROR, logger="cllmh.report"):
        assert box.expire(NOW, 30) == [], "made 31 days ago by the wall clock, but waited 30 days"
        box.age(DAY)
        dropped = box.expire(NOW, 30)
    assert [ref for _, ref, _ in dropped] == ["gate/old", "gate/parked"]
    assert [m.ref for m in box.due(NOW)] == ["gate/young"]
    old, parked = [r.getMessage() for r in caplog.records]
    assert old == (
        "[report.dropped_undelivered] kejadian gate/old (kunci "
        f"{dropped[0][2]}) dibuang dari outbox: tidak terkirim lebih dari 30 hari (batas outbox)"
    )
    assert parked.startswith("[report.dropped_parked] kejadian gate/parked")
    assert box.seen(["gate/old", "gate/young"]) == {"gate/young"}, "seen pruned past the bound"
    stats = box.stats()
    assert (stats.pending, stats.pending_events, stats.oldest) == (1, 1, NOW - 29 * DAY)


def test_a_clock_set_years_ahead_expires_nothing(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    box.age(60)
    assert box.expire(NOW + 5 * 365 * DAY, 30) == []
    assert [m.ref for m in box.due(NOW + 5 * 365 * DAY)] == ["gate/ev1"]


def test_the_heartbeat_is_due_first(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"e1", NOW)
    box.enqueue_heartbeat(b"hb", NOW + 1)
    box.enqueue_event("gate/ev2", NOW, b"e2", NOW + 2)
    assert [m.body for m in box.due(NOW + 3)] == [b"hb", b"e1", b"e2"]


def test_a_clock_set_back_does_not_hold_retries_past_the_maximum_wait(box: Outbox) -> None:
    box.enqueue_event("gate/ev1", NOW, b"{}", NOW)
    box.failed(box.due(NOW)[0], next_try=NOW + 100, error="timeout")
    earlier = NOW - 3 * 3600  # NTP corrected a clock that ran 3 h fast
    assert box.due(earlier) == []
    assert [m.ref for m in box.due(earlier, max_wait=300)] == ["gate/ev1"]
    assert box.due(NOW + 50, max_wait=300) == [], "an ordinary wait is kept"
