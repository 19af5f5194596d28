"""Head office's decisions as pure functions: a site's derived state and the alert lifecycle."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from centralkit import heartbeat
from cllmh import catalogue
from cllmh.central import alerts, state
from cllmh.central.alerts import Condition, Kind, SiteView
from cllmh.central.config import Thresholds
from cllmh.central.store import Alert

NOW = 1_780_000_000.0
LIMITS = Thresholds(
    site_silent_minutes=5,
    camera_down_minutes=10,
    hours_left_floor=24,
    clock_skew_s=60,
    guard_person_deletions=1,
)


def test_online_within_three_intervals_then_offline_since_the_last_heartbeat() -> None:
    assert state.derive(NOW - 90, NOW, 30).online
    late = state.derive(NOW - 91, NOW, 30)
    assert (late.online, late.offline_since, late.label) == (False, NOW - 91, "offline")
    assert state.derive(None, NOW, 30).label == "never_seen"
    assert state.derive(NOW - 51, NOW, 10, missed=5).online is False


def view(offset: float = 0.0, since: float = NOW, **report: Any) -> SiteView:
    return SiteView("site-a", since, offset, heartbeat(NOW, **report)["state"])


def kinds(site: SiteView, now: float = NOW) -> set[tuple[str, str]]:
    return {(c.kind.value, c.subject) for c in alerts.conditions(site, now, LIMITS)}


def test_a_healthy_site_has_no_condition() -> None:
    assert kinds(view()) == set()


def test_each_condition_is_found() -> None:
    down = [{"name": "yard", "stream": "down", "since": NOW - 11 * 60}]
    assert kinds(view(since=NOW - 6 * 60)) == {("site_silent", "")}
    assert kinds(view(cameras=down)) == {("camera_down", "yard")}
    assert kinds(view(disk={"hours_left": 23.0})) == {("storage_low", "")}
    assert kinds(view(guard={"deleted_person_events_24h": 2})) == {("guard_deleting_persons", "")}
    assert kinds(view(offset=-61)) == {("clock_skew", "")}


def test_every_alert_reads_from_the_catalogue_in_both_languages_with_its_values() -> None:
    down = [{"name": "yard", "stream": "down", "since": NOW - 12 * 60}]  # site clock: 61 s behind
    found = alerts.conditions(
        view(since=NOW - 6 * 60, offset=-61, cameras=down, disk={"hours_left": 23.44},
             guard={"deleted_person_events_24h": 2}),
        NOW, LIMITS,
    )  # fmt: skip
    assert {c.kind for c in found} == set(Kind)
    for condition in found:
        kind = condition.kind.value
        for lang in catalogue.LANGUAGES:
            assert catalogue.text(alerts.title_id(kind), lang)
            text = alerts.detail(kind, condition.params, lang)
            assert "{" not in text, text
    by_kind = {c.kind: c for c in found}
    assert by_kind[Kind.SITE_SILENT].params == {"since": NOW - 6 * 60}  # not "for 0 min"
    assert by_kind[Kind.CAMERA_DOWN].params == {"camera": "yard", "since": NOW - 12 * 60 + 61}
    assert by_kind[Kind.STORAGE_LOW].detail == "23.4 h of recording left (floor 24 h)"
    assert (
        alerts.detail("storage_low", by_kind[Kind.STORAGE_LOW].params, "id")
        == "Sisa rekaman 23.4 jam (batas 24 jam)"
    )
    assert by_kind[Kind.CLOCK_SKEW].detail == "Site clock off by -61 s"
    assert alerts.title("site_silent") == "Site silent / Lokasi tidak melapor"


def test_thresholds_are_not_crossed_early() -> None:
    recent = [{"name": "yard", "stream": "down", "since": NOW - 9 * 60}]
    assert kinds(view(since=NOW - 4 * 60, cameras=recent, disk={"hours_left": None}, offset=59)) == set()


def test_camera_down_time_is_taken_on_head_office_clock() -> None:
    # The site's clock is 5 min behind; the camera went down 6 min ago (11 min ago by a naive reading).
    down = [{"name": "yard", "stream": "down", "since": NOW - 300 - 6 * 60}]
    assert kinds(view(offset=-300, cameras=down)) == {("clock_skew", "")}
    down = [{"name": "yard", "stream": "down", "since": NOW - 300 - 11 * 60}]
    assert kinds(view(offset=-300, cameras=down)) == {("clock_skew", ""), ("camera_down", "yard")}


def alert(condition: Condition, alert_id: int, **fields: Any) -> Alert:
    base = Alert(
        alert_id, condition.site, condition.kind.value, condition.subject, condition.detail, NOW,
        None, None, None, None, None, None, None, None, 0,
    )  # fmt: skip
    return replace(base, **fields)


SILENT = Condition("site-a", Kind.SITE_SILENT, "", {"since": NOW - 6 * 60})
YARD = Condition("site-a", Kind.CAMERA_DOWN, "yard", {"camera": "yard", "since": NOW - 11 * 60})


def test_an_alert_opens_once_and_closes_itself_when_the_condition_clears() -> None:
    plan = alerts.reconcile([], [SILENT, YARD])
    assert (plan.open, plan.close) == ([SILENT, YARD], [])
    active = [alert(SILENT, 1), alert(YARD, 2)]
    still = alerts.reconcile(active, [SILENT, YARD])
    assert (still.open, still.close) == ([], [])
    cleared = alerts.reconcile(active, [YARD])
    assert (cleared.open, cleared.close) == ([], [1])


def test_a_resolved_alert_does_not_reopen_while_its_condition_persists() -> None:
    resolved = alert(SILENT, 1, resolved_at=NOW, resolved_by="budi", resolve_comment="power cut, known")
    assert alerts.reconcile([resolved], [SILENT]).open == []
    assert alerts.reconcile([resolved], []).close == [1]


def test_notifications_are_rate_limited_per_alert_and_stop_when_acknowledged() -> None:
    fresh = alert(SILENT, 1)
    assert alerts.due([fresh], NOW, 3600) == [fresh]
    sent = replace(fresh, last_notified_at=NOW)
    assert alerts.due([sent], NOW + 3599, 3600) == []
    assert alerts.due([sent], NOW + 3600, 3600) == [sent]
    assert alerts.due([replace(sent, acked_at=NOW + 10)], NOW + 7200, 3600) == []
    assert alerts.due([replace(sent, resolved_at=NOW + 10)], NOW + 7200, 3600) == []


def test_transitions() -> None:
    fresh = alert(SILENT, 1)
    alerts.check_transition(fresh, "acknowledge")
    alerts.check_transition(fresh, "resolve")
    with pytest.raises(alerts.TransitionError, match="already acknowledged"):
        alerts.check_transition(replace(fresh, acked_at=NOW), "acknowledge")
    alerts.check_transition(replace(fresh, acked_at=NOW), "resolve")
    with pytest.raises(alerts.TransitionError, match="closed"):
        alerts.check_transition(replace(fresh, closed_at=NOW), "resolve")
    with pytest.raises(alerts.TransitionError, match="already resolved"):
        alerts.check_transition(replace(fresh, resolved_at=NOW), "acknowledge")
