"""Alerts computed at head office, as pure functions.

A *condition* is something wrong now (site silent, camera down, storage low, the guard deleting
person events, clock off). `reconcile` turns the conditions and the alerts not yet closed into a
plan: open an alert for a new condition (one per site, kind and subject: an alert opens once),
close the alerts whose condition cleared. A person may acknowledge (stops repeated notifications)
or resolve an alert, each with a comment; a resolved alert whose condition persists stays on record
(and does not reopen) until the condition clears, then closes. `due` says which alerts to notify."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cllmh import catalogue
from cllmh.central.config import Thresholds
from cllmh.central.store import Alert

MINUTE = 60.0


class Kind(StrEnum):
    SITE_SILENT = "site_silent"
    CAMERA_DOWN = "camera_down"
    STORAGE_LOW = "storage_low"
    GUARD_DELETING_PERSONS = "guard_deleting_persons"
    CLOCK_SKEW = "clock_skew"


def title_id(kind: str) -> str:
    """The catalogue's id of an alert kind's title (cllmh/catalogue.json, `alert.<kind>`)."""
    return f"alert.{kind}"


def detail_id(kind: str) -> str:
    """The catalogue's id of an alert kind's detail (`alert.<kind>.detail`); its values are the
    alert's `params`. A value named `since` is a unix time, shown as a local time."""
    return f"alert.{kind}.detail"


def shown(params: Mapping[str, Any]) -> dict[str, Any]:
    """The values as a text shows them (24.0 as 24; head office's local time for `since`)."""
    out = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in params.items()}
    if isinstance(out.get("since"), int | float):
        out["since"] = dt.datetime.fromtimestamp(out["since"]).astimezone().strftime("%Y-%m-%d %H:%M")
    return out


def title(kind: str) -> str:
    """English, then Bahasa Indonesia (notifications: operators read both)."""
    return " / ".join(catalogue.text(title_id(kind), lang) for lang in ("en", "id"))


def detail(kind: str, params: Mapping[str, Any], lang: str = "en") -> str:
    return catalogue.text(detail_id(kind), lang, **shown(params))


@dataclass(frozen=True)
class Condition:
    site: str
    kind: Kind
    subject: str  # camera name, or "" for the whole site
    params: Mapping[str, Any]  # the values of the kind's detail message

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.site, self.kind.value, self.subject)

    @property
    def detail(self) -> str:
        """In English, for head office's log and the alert's `detail` column."""
        return detail(self.kind.value, self.params)


@dataclass(frozen=True)
class SiteView:
    """What head office knows of a site (from its last heartbeat)."""

    name: str
    since: float  # last heartbeat, else enrolment (head office's clock)
    clock_offset_s: float | None  # site clock - head office clock
    state: dict[str, Any] | None


def conditions(site: SiteView, now: float, limits: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    silent = now - site.since
    if silent > limits.site_silent_minutes * MINUTE:
        found.append(Condition(site.name, Kind.SITE_SILENT, "", {"since": site.since}))
    state = site.state or {}
    offset = site.clock_offset_s or 0.0
    for camera in state.get("cameras", []):
        down = now - (camera["since"] - offset)  # the site's `since` on head office's clock
        if camera["stream"] == "down" and down > limits.camera_down_minutes * MINUTE:
            params = {"camera": camera["name"], "since": now - down}
            found.append(Condition(site.name, Kind.CAMERA_DOWN, camera["name"], params))
    hours_left = (state.get("disk") or {}).get("hours_left")
    if hours_left is not None and hours_left < limits.hours_left_floor:
        found.append(
            Condition(
                site.name,
                Kind.STORAGE_LOW,
                "",
                {"hours": round(hours_left, 1), "floor": limits.hours_left_floor},
            )
        )
    deleted = (state.get("guard") or {}).get("deleted_person_events_24h") or 0
    if deleted >= limits.guard_person_deletions:
        found.append(Condition(site.name, Kind.GUARD_DELETING_PERSONS, "", {"count": int(deleted)}))
    if site.clock_offset_s is not None and abs(site.clock_offset_s) > limits.clock_skew_s:
        found.append(Condition(site.name, Kind.CLOCK_SKEW, "", {"offset": round(site.clock_offset_s)}))
    return found


@dataclass(frozen=True)
class Plan:
    open: list[Condition]
    close: list[int]  # alert ids


def reconcile(active: list[Alert], now_conditions: list[Condition]) -> Plan:
    """Open alerts for new conditions, close those whose condition cleared. `active`: not closed."""
    current = {c.key: c for c in now_conditions}
    known = {(a.site, a.kind, a.subject) for a in active}
    return Plan(
        open=[c for k, c in current.items() if k not in known],
        close=[a.id for a in active if (a.site, a.kind, a.subject) not in current],
    )


def due(active: list[Alert], now: float, repeat_s: float) -> list[Alert]:
    """Alerts to notify now: open, neither acknowledged nor resolved, never notified or not within
    `repeat_s` (the per-alert rate limit)."""
    return [
        a
        for a in active
        if a.closed_at is None
        and a.acked_at is None
        and a.resolved_at is None
        and (a.last_notified_at is None or now - a.last_notified_at >= repeat_s)
    ]


class TransitionError(ValueError):
    pass


def check_transition(alert: Alert, action: str) -> None:
    """Acknowledge: an alert not closed, resolved or already acknowledged. Resolve: not closed or resolved."""
    if alert.closed_at is not None:
        raise TransitionError("the alert is closed: its condition cleared")
    if alert.resolved_at is not None:
        raise TransitionError("the alert is already resolved")
    if action == "acknowledge" and alert.acked_at is not None:
        raise TransitionError("the alert is already acknowledged")
