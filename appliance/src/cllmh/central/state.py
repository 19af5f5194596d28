"""A site's derived state (pure): online while a heartbeat arrived within `missed` intervals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteState:
    online: bool
    last_seen: float | None  # head office's clock, when the last heartbeat arrived
    offline_since: (
        float | None
    )  # = last_seen when offline (silent since then); None when online or never seen

    @property
    def label(self) -> str:
        if self.online:
            return "online"
        return "offline" if self.last_seen is not None else "never_seen"


def derive(last_seen: float | None, now: float, interval_s: float, missed: int = 3) -> SiteState:
    """Online when the last heartbeat arrived at most `missed` intervals ago (by head office's clock)."""
    if last_seen is None:
        return SiteState(online=False, last_seen=None, offline_since=None)
    if now - last_seen <= missed * interval_s:
        return SiteState(online=True, last_seen=last_seen, offline_since=None)
    return SiteState(online=False, last_seen=last_seen, offline_since=last_seen)
