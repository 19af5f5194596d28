"""The recorder's time base: monotonic across ffmpeg runs, wall time as the clock says when written."""

from __future__ import annotations

from cllmh.timebase import TimeBase


class FakeClock:
    """A monotonic clock moved by hand and a wall clock that can be stepped (as NTP does)."""

    def __init__(self, wall: float) -> None:
        self.mono = 1000.0
        self.offset = wall - self.mono

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.mono + self.offset

    def advance(self, seconds: float) -> None:
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.offset += seconds


STALE = 1_600_000_000.0  # a Pi's clock at boot, years behind
YEARS = 150_000_000.0


def test_a_run_follows_its_pts_from_the_monotonic_clock() -> None:
    clock = FakeClock(STALE)
    run = TimeBase(clock).run()
    assert run.mono(0.0) == 1000.0
    clock.advance(5)  # later reads do not re-anchor: frames and segments share the run's pts
    assert run.mono(4.0) == 1004.0
    assert run.mono(2.0) == 1002.0


def test_a_new_run_with_pts_from_zero_never_goes_back() -> None:
    clock = FakeClock(STALE)
    base = TimeBase(clock)
    first = base.run()
    first.mono(0.0)
    end_of_first = first.mono(60.0)  # read faster than real time: ahead of the clock
    clock.advance(10)
    second = base.run()
    assert second.mono(0.0) > end_of_first  # the new publisher's pts restart at zero
    clock.advance(100)
    third = base.run()
    assert third.mono(0.0) == clock.monotonic()  # caught up: anchored at the clock again


def test_wall_time_follows_a_clock_step_made_while_recording() -> None:
    clock = FakeClock(STALE)
    base = TimeBase(clock)
    run = base.run()
    before = run.mono(0.0)
    assert base.wall(before) == STALE
    clock.advance(30)
    clock.step(YEARS)  # NTP steps the clock 30 s after boot
    after = run.mono(30.0)
    assert base.wall(after) == STALE + YEARS + 30
    assert base.wall(before) == STALE + YEARS  # written now: converted with the clock as it is now
