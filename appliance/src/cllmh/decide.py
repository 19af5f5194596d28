"""Recording decisions as pure functions: when an event starts and ends, which segments to keep."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

DEFAULT_LABELS = frozenset({"person", "bicycle", "car", "motorcycle", "bus", "truck"})


@dataclass
class EventState:
    """An event starts when a label of interest is seen in `n` of the last `m` analysed frames and
    ends `quiet_s` seconds after the last frame that had one."""

    n: int = 2
    m: int = 5
    quiet_s: float = 10.0
    window: deque[bool] = field(default_factory=deque)
    active: bool = False
    start: float | None = None
    last_seen: float | None = None
    labels: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.n <= self.m:
            raise ValueError(f"need 1 <= n <= m, got n={self.n}, m={self.m}")

    def update(self, t: float, seen: dict[str, float]) -> str | None:
        """Feed one analysed frame at time t with the labels of interest seen (label -> best score).

        Returns "start", "end" or None.
        """
        hit = bool(seen)
        self.window.append(hit)
        if len(self.window) > self.m:
            self.window.popleft()
        if hit:
            self.last_seen = t
            for label, score in seen.items():
                self.labels[label] = max(score, self.labels.get(label, 0.0))
        if not self.active:
            if sum(self.window) >= self.n:
                self.active = True
                self.start = t
                return "start"
            if not any(self.window):
                self.labels.clear()
            return None
        if self.last_seen is not None and t - self.last_seen >= self.quiet_s:
            self.active = False
            return "end"
        return None

    def reset(self) -> None:
        self.window.clear()
        self.active = False
        self.start = self.last_seen = None
        self.labels = {}


@dataclass(frozen=True)
class Span:
    start: float
    end: float


def segments_to_keep(
    segments: list[Span], events: list[Span], *, pre_roll: float, post_roll: float
) -> list[bool]:
    """For each segment, whether it overlaps an event widened by the pre- and post-roll."""
    wanted = [Span(e.start - pre_roll, e.end + post_roll) for e in events]
    return [any(s.start < w.end and w.start < s.end for w in wanted) for s in segments]


def can_discard(segment: Span, *, now: float, open_event_start: float | None, pre_roll: float) -> bool:
    """A finished segment may be deleted once no future event could want it as pre-roll:
    it ended more than pre_roll ago and no event is open (an open event keeps everything)."""
    if open_event_start is not None:
        return segment.end <= open_event_start - pre_roll
    return segment.end <= now - pre_roll


def interesting(
    detections: list[tuple[str, float]], thresholds: dict[str, float], labels: frozenset[str] = DEFAULT_LABELS
) -> dict[str, float]:
    """Labels of interest above their per-label threshold -> best score (pure)."""
    seen: dict[str, float] = {}
    for label, score in detections:
        if label in labels and score >= thresholds.get(label, thresholds.get("default", 0.5)):
            seen[label] = max(score, seen.get(label, 0.0))
    return seen
