#!/usr/bin/env python3
"""Benchmark of the storage guard's scan of the event store (prints figures; no pass/fail).

Builds a store of EVENTS events (default 20,000: 4 cameras x 50 days x 100 events, each with a
clip, a snapshot, a sidecar and a lock file, as the recorder leaves them) in a directory on disk,
then times what one guard tick spends scanning it:
- the peer: a fresh scan (every sidecar read, every file sized, every lock tried), as each tick
  did before the cache;
- the guard's Scanner on a repeated tick (one stat per day directory, finished events from memory),
  with one event being written, as on a live site;
and the memory the Scanner's cache holds; then a whole guard tick (scan, index sync, disk usage,
plan, status) with each scanner. Retention is set long enough that the ticks delete nothing.

The page cache is warm here (the store was just written), so the figures show the CPU and system
call cost; on an appliance's hard disk with a cold cache the fresh scan also pays a seek per file.

Usage: python benchmarks/guard_scan_bench.py [--events N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from cllmh import events as ev
from cllmh.guard import ClassRetention, Guard, GuardConfig, Retention

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eventwriter import write_event  # the tests' real event writer

CAMERAS, DAYS = 4, 50


class FreshScanner:
    """The peer: every tick reads the whole store afresh."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def scan(self) -> list[ev.EventInfo]:
        return ev.scan(self.root)


def build(root: Path, total: int) -> None:
    index = ev.Index(root)
    per_day = max(1, total // (CAMERAS * DAYS))
    start = time.time() - DAYS * 86400
    kinds = ("other", "other", "vehicle", "person")
    for d in range(DAYS):
        for c in range(CAMERAS):
            for i in range(per_day):
                write_event(
                    root, index, camera=f"cam{c}", start=start + d * 86400 + i * 60,
                    event_id=f"e{d:02d}{c}{i:04d}", kind=kinds[i % 4], size=1024,
                )  # fmt: skip
    index.close()
    then = time.time() - 3600
    for day in root.glob("*/*"):
        os.utime(day, (then, then))  # days nobody writes to any more


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="where to build the store (on disk)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cllmh-scan-bench-", dir=args.dir))
    try:
        root = work / "recordings"
        t = time.perf_counter()
        build(root, args.events)
        count = len(ev.scan(root))
        print(f"store: {count} events in {root} (built in {time.perf_counter() - t:.1f} s)")

        live = ev.event_path(root, "cam0", time.time(), "live")
        with ev.writing(live):
            (live / "clip-000.mp4").write_bytes(b"\0" * 4096)
            fresh = timed(lambda: ev.scan(root), 3)
            tracemalloc.start()
            scanner = ev.Scanner(root)
            first = timed(scanner.scan, 1)
            cache_bytes = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            repeated = timed(scanner.scan, 5)
        print(f"  peer, fresh scan every tick:   {fresh * 1000:9.1f} ms per tick")
        print(f"  Scanner, first tick:           {first * 1000:9.1f} ms (tracemalloc on)")
        print(
            f"  Scanner, repeated tick:        {repeated * 1000:9.1f} ms per tick "
            f"({fresh / repeated:.0f}x faster than the peer)"
        )
        print(f"  Scanner cache: {cache_bytes / 2**20:.1f} MiB ({cache_bytes / count:.0f} bytes per event)")

        keep = ClassRetention(days=365, max_age_days=365)
        config = GuardConfig(
            recordings_dir=root, cache_dir=work / "cache", floor_percent=1, floor_hours=0,
            retention=Retention(person=keep, vehicle=keep, other=keep),
        )  # fmt: skip
        guard = Guard(config)
        guard.tick()
        cached_tick = timed(guard.tick, 5)
        guard.scanner = FreshScanner(root)  # type: ignore[assignment]
        fresh_tick = timed(guard.tick, 3)
        assert len(ev.scan(root)) == count + 1, "the benchmark's ticks must not delete anything"
        print(f"  whole guard tick, peer (fresh scan): {fresh_tick * 1000:7.1f} ms")
        print(
            f"  whole guard tick, Scanner:           {cached_tick * 1000:7.1f} ms "
            f"({fresh_tick / cached_tick:.0f}x faster)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
