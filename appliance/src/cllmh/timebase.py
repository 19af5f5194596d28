"""The recorder's time base: monotonic inside, wall time only when something is written.

A Raspberry Pi boots with a stale clock and NTP steps it later, so wall time cannot order
frames and segments. Each ffmpeg run stamps its frames and segments with its own pts (they share
them); a `Run` anchors those pts to the monotonic clock once, at the first timestamp it sees, and
never lets a later run start before an earlier one ended. Wall time is derived at the moment a
value is written: wall = mono + time() - monotonic(), so an event after a clock step gets the
stepped (right) wall time.
"""

from __future__ import annotations

import math
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The host's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class TimeBase:
    """Monotonic recorder time shared by every source of one camera."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.latest = -math.inf  # the latest time handed out, by any run

    def now(self) -> float:
        return self.clock.monotonic()

    def wall(self, mono: float) -> float:
        """Wall time of a recorder time, with the wall clock as it is now."""
        return mono + self.clock.time() - self.clock.monotonic()

    def run(self) -> Run:
        """The time base of a new ffmpeg run (its pts start anywhere, often at 0 again)."""
        return Run(self)


class Run:
    """pts of one ffmpeg run -> recorder time, anchored at the first pts seen."""

    GAP_S = 0.001  # a new run starts at least this long after everything before it

    def __init__(self, base: TimeBase) -> None:
        self.base = base
        self.offset: float | None = None

    def mono(self, pts: float) -> float:
        if self.offset is None:
            # A source read faster than real time runs ahead of the clock: never go back.
            self.offset = max(self.base.now(), self.base.latest + self.GAP_S) - pts
        t = pts + self.offset
        self.base.latest = max(self.base.latest, t)
        return t
