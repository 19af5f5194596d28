#!/usr/bin/env python3
"""Benchmark of the head office API under a simulated fleet (prints figures; no pass/fail).

SITES simulated sites (default 500) against one head office API: gunicorn (WORKERS workers) on a
unix socket, as in production, but without nginx in front (TLS termination is nginx's cost, not
the app's); the identity headers nginx would set are sent directly. Each site sends a heartbeat
every 30 s and events at EVENTS_PER_HOUR per site (default 8: 4 cameras x 2 person/vehicle events
an hour, each with a SNAPSHOT_KB JPEG-sized snapshot), spread evenly. `--speed N` runs the fleet's
clock N times faster (speed 1 = the real load; higher speeds show the headroom).

Prints: requests/s sustained, latency p50/p95/p99 (heartbeats and events), gunicorn's CPU (% of
one core) and RSS (master + workers), the load generator's own CPU (it shares the machine), the
SQLite size per site-day (with and without snapshots), and the times of the dashboard's typical
event searches at the stored size and on a synthetic store of `--search-events` events (90 days),
to judge from which fleet size Elasticsearch should carry the event search.

Usage: python benchmarks/central_bench.py [--sites 500] [--seconds 60] [--speed 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from centralkit import event, heartbeat  # the tests' contract bodies
from cllmh.central.store import Store

HEARTBEAT_S = 30.0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def schedule(
    sites: int, seconds: float, speed: float, events_per_hour: float
) -> list[tuple[float, str, int]]:
    """(wall time offset, kind, site index), sorted."""
    fleet_seconds = seconds * speed
    plan: list[tuple[float, str, int]] = []
    rng = random.Random(1)
    for i in range(sites):
        t = HEARTBEAT_S * i / sites
        while t < fleet_seconds:
            plan.append((t / speed, "heartbeat", i))
            t += HEARTBEAT_S
        t = rng.expovariate(events_per_hour / 3600)
        while t < fleet_seconds:
            plan.append((t / speed, "event", i))
            t += rng.expovariate(events_per_hour / 3600)
    return sorted(plan)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_load(
    sock: str, plan: list[tuple[float, str, int]], snapshot: str, clients: int
) -> dict[str, list[float]]:
    jobs: queue.Queue[tuple[float, str, int] | None] = queue.Queue()
    latencies: dict[str, list[float]] = {"heartbeat": [], "event": [], "late": []}
    errors: list[str] = []
    start = time.monotonic() + 0.5

    def worker() -> None:
        conn = UnixHTTPConnection(sock)
        while (job := jobs.get()) is not None:
            at, kind, site = job
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                latencies["late"].append(-delay)
            now = time.time()
            if kind == "heartbeat":
                body = heartbeat(now)
                path = "/api/v1/site/heartbeat"
            else:
                body = event(now - 15, camera=f"cam{site % 4}", name=uuid.uuid4().hex)
                body["event"]["snapshot_jpeg_b64"] = snapshot
                path = "/api/v1/site/events"
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
                "X-Cllmh-Client-Verify": "SUCCESS",
                "X-Cllmh-Client-Cn": f"site-{site:04d}",
            }
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body=json.dumps(body), headers=headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status >= 300:
                    errors.append(f"{kind} {answer.status}")
            except OSError as exc:
                errors.append(f"{kind} {exc}")
                conn.close()
                conn = UnixHTTPConnection(sock)
            latencies[kind].append(time.perf_counter() - sent)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for job in plan:
        jobs.put(job)
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    latencies["errors"] = [float(len(errors))]
    if errors:
        print(f"errors: {len(errors)}, e.g. {errors[:3]}")
    return latencies


def best_of(runs: int, call: object) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        call()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


def search_times(database: Path) -> str:
    """The dashboard's typical searches, best of 3, in ms."""
    store = Store(database)
    newest = store.db.execute("SELECT max(start) FROM events").fetchone()[0] or time.time()
    recent = best_of(3, lambda: store.events(None, None, "person", newest - 86400, None, 100))
    one_camera = best_of(
        3, lambda: store.events(("site-0007",), "cam3", None, newest - 90 * 86400, None, 100)
    )
    rare = best_of(3, lambda: store.events(None, None, "bicycle", newest - 30 * 86400, None, 100))
    counts = best_of(
        3,
        lambda: store.db.execute(
            "SELECT label, count(*) FROM events WHERE start >= ? GROUP BY label", (newest - 30 * 86400,)
        ).fetchall(),
    )
    store.close()
    return (
        f"person, last 24 h: {recent * 1000:.1f} ms; one camera, 90 days: {one_camera * 1000:.1f} ms; "
        f"a label never seen, 30 days: {rare * 1000:.1f} ms; count per label, 30 days: {counts * 1000:.1f} ms"
    )


def synthetic(database: Path, count: int, sites: int) -> None:
    """`count` events over 90 days without snapshots, inserted directly (not through the API)."""
    store = Store.open(database)
    now = time.time()
    rng = random.Random(2)
    rows = []
    for n in range(count):
        start = now - rng.random() * 90 * 86400
        label = rng.choice(["person", "car", "motorcycle", "truck"])
        rows.append((f"site-{n % sites:04d}", f"cam{n % 4}/{n}", f"cam{n % 4}", start, start + 20, label, 0.8,
                     json.dumps({label: 0.8}), 0, "x", 0, now))  # fmt: skip
    with store.write() as db:
        db.executemany(
            "INSERT INTO events (site, id, camera, start, end, label, score, labels, truncated, clip_path, "
            "has_snapshot, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    store.close()


def report(  # noqa: PLR0917
    args: argparse.Namespace,
    lat: dict[str, list[float]],
    wall: float,
    cpu: float,
    rss: int,
    database: Path,
    planned: int,
) -> None:
    fleet_days = args.sites * args.seconds * args.speed / 86400
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = database.stat().st_size
    snap_bytes = db.execute("SELECT coalesce(sum(length(jpeg)), 0) FROM snapshots").fetchone()[0]
    events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    keys = db.execute("SELECT count(*) FROM idempotency").fetchone()[0]
    db.close()
    requests = len(lat["heartbeat"]) + len(lat["event"])
    late = sum(x > 1 for x in lat["late"])
    print(
        f"fleet: {args.sites} sites, heartbeat every {HEARTBEAT_S:g} s, "
        f"{args.events_per_hour:g} events/h/site ({args.snapshot_kb} KB snapshots), "
        f"speed x{args.speed:g}, {args.seconds:g} s, "
        f"gunicorn {args.workers} workers, {args.clients} client threads"
    )
    print(
        f"requests: {requests} in {wall:.1f} s = {requests / wall:.1f}/s "
        f"(planned {planned / args.seconds:.1f}/s); errors {int(lat['errors'][0])}; client late > 1 s: {late}"
    )
    for kind in ("heartbeat", "event"):
        ms = [x * 1000 for x in lat[kind]]
        mean = statistics.fmean(ms) if ms else 0.0
        print(
            f"{kind:9s} n={len(ms):6d} p50 {percentile(ms, 50):6.1f} ms  p95 {percentile(ms, 95):6.1f} ms  "
            f"p99 {percentile(ms, 99):6.1f} ms  mean {mean:6.1f} ms"
        )
    print(f"gunicorn CPU: {100 * cpu / wall:.0f} % of one core; RSS master+workers {rss / 2**20:.0f} MiB")
    print(
        f"SQLite: {size / 2**20:.1f} MiB for {events} events, {keys} idempotency keys, {fleet_days:.2f} "
        f"site-days -> {size / fleet_days / 2**20:.2f} MiB/site-day, "
        f"{(size - snap_bytes) / fleet_days / 2**20:.3f} MiB/site-day without snapshots"
    )
    print(f"event searches on this store: {search_times(database)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--speed", type=float, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--events-per-hour", type=float, default=8)
    parser.add_argument("--snapshot-kb", type=int, default=40)
    parser.add_argument("--search-events", type=int, default=1_000_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="central-bench-"))
    database = work / "central.sqlite3"
    store = Store.open(database)
    for i in range(args.sites):
        store.enroll(f"site-{i:04d}", time.time())
    store.close()
    (work / "central.yaml").write_text(
        f"database: {database}\nsecret_key: bench\ntrust_proxy_headers: true\n"
    )
    sock = work / "api.sock"
    env = {
        **os.environ,
        "CLLMH_CENTRAL_CONFIG": str(work / "central.yaml"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"unix:{sock}", "--workers", str(args.workers),
         "cllmh.central.app:create_app()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not sock.exists():
            time.sleep(0.1)
        time.sleep(1)
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
        cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
        snapshot = base64.b64encode(b"\xff\xd8" + os.urandom(args.snapshot_kb * 1024 - 2)).decode()
        plan = schedule(args.sites, args.seconds, args.speed, args.events_per_hour)
        client_cpu = time.process_time()
        wall = time.monotonic()
        lat = run_load(str(sock), plan, snapshot, args.clients)
        wall = time.monotonic() - wall
        client_cpu = time.process_time() - client_cpu
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in processes) - cpu_before
        rss = sum(p.memory_info().rss for p in processes)
    finally:
        server.terminate()
        server.wait(timeout=30)

    report(args, lat, wall, cpu, rss, database, len(plan))
    print(f"load generator CPU (this process): {100 * client_cpu / wall:.0f} % of one core")
    if args.search_events:
        big = work / "search.sqlite3"
        t = time.perf_counter()
        synthetic(big, args.search_events, args.sites)
        built = time.perf_counter() - t
        print(
            f"synthetic store of {args.search_events} events (90 days) built in {built:.0f} s "
            f"({big.stat().st_size / 2**20:.0f} MiB); event searches: {search_times(big)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
