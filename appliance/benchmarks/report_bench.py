#!/usr/bin/env python3
"""Benchmark of `cllmh report`'s event intake and outbox drain (prints figures; no pass/fail).

Builds an event store of EVENTS finished events (default 20,000: 4 cameras over 30 days, each with
a snapshot of SNAPSHOT_KB) with the recorder's own writer, then measures:
- the first poll, which enqueues every event of the window (a site whose reporter starts late, or
  comes back after head office was down): time, outbox size on disk per event;
- a poll with nothing new (every `poll_s` on a live site: the last hour), a full scan of the window
  (every 5 minutes), a poll with one new event, and the memory of the reporter's set of known ids
  (bounded by the window);
- draining DRAIN messages to the real head office (tests/headoffice.py: nginx with mutual TLS,
  gunicorn running cllmh.central with its SQLite store; one TLS connection per message, as the
  reporter does): messages per second.

Usage: python benchmarks/report_bench.py [--events N] [--drain N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from cllmh import events as ev
from cllmh.report import transport
from cllmh.report.config import ReportConfig
from cllmh.report.outbox import Outbox
from cllmh.report.service import Reporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eventwriter import write_event  # the tests' real event writer
from headoffice import head_office
from pki import FleetCA

CAMERAS, DAYS = 4, 30


def build(root: Path, total: int) -> None:
    index = ev.Index(root)
    per_day = max(1, total // (CAMERAS * DAYS))
    start = time.time() - DAYS * 86400 + 3600
    for d in range(DAYS):
        for c in range(CAMERAS):
            for i in range(per_day):
                write_event(
                    root,
                    index,
                    camera=f"cam{c}",
                    start=start + d * 86400 + i * 30,
                    event_id=f"e{d:02d}{c}{i:04d}",
                    kind="person",
                    size=1024,
                )
    index.close()


def intake(reporter: Reporter, config: ReportConfig, root: Path) -> None:
    """The first poll (every event of the window), steady polls, one new event, memory."""
    t0 = time.perf_counter()
    added = reporter.take_events(time.time())
    first = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in config.state_dir.iterdir())
    print(
        f"first poll: {added} events enqueued in {first:.2f} s ({added / first:.0f}/s); outbox "
        f"{size / 1e6:.1f} MB on disk ({size / max(added, 1) / 1024:.1f} KiB per event)"
    )

    for full, what in ((False, "a poll (last hour)"), (True, "a full scan (whole window)")):
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            reporter.take_events(time.time(), full=full)
            times.append(time.perf_counter() - t0)
        print(f"{what}, nothing new: median {statistics.median(times) * 1e3:.1f} ms (20 runs)")

    index = ev.Index(root)
    write_event(root, index, camera="cam0", start=time.time(), event_id="fresh", kind="person", size=1024)
    index.close()
    t0 = time.perf_counter()
    added = reporter.take_events(time.time(), full=False)
    print(f"poll with one new event: {(time.perf_counter() - t0) * 1e3:.1f} ms ({added} enqueued)")

    tracemalloc.start()
    reporter.known = set()
    reporter.take_events(time.time())
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"known ids held in memory: {len(reporter.known)} ids, ~{current / 1e6:.1f} MB traced")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--drain", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cllmh-report-bench-", dir=args.dir))
    try:
        root = work / "rec"
        t0 = time.perf_counter()
        build(root, args.events)
        events = len(ev.finished_events(root, 0))
        print(f"store: {events} finished events built in {time.perf_counter() - t0:.1f} s")

        ca = FleetCA(work / "pki")
        site = ca.site("bench-site")
        with head_office(work / "central", ca) as central:
            central.enroll("bench-site")
            config = ReportConfig(
                url=central.url,
                ca_file=ca.cert_path,
                cert_file=site.cert,
                key_file=site.key,
                state_dir=work / "report",
                recordings_dir=root,
                heartbeat_s=3600,
                log_buffer_dir=work / "none",
            )
            context = transport.client_context(config.ca_file, config.cert_file, config.key_file)
            outbox = Outbox(config.outbox_path)
            reporter = Reporter(config, outbox, transport.Transport(config.url, context, 30))

            intake(reporter, config, root)

            batch = outbox.due(time.time(), limit=args.drain)
            t0 = time.perf_counter()
            delivered = sum(reporter.send(m) for m in batch)
            spent = time.perf_counter() - t0
        print(
            f"drain: {delivered} messages over mutual TLS in {spent:.1f} s ({delivered / spent:.0f}/s; "
            f"a backlog of {events} takes ~{events / (delivered / spent) / 60:.1f} min)"
        )
        outbox.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
