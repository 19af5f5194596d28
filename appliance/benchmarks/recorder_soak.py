#!/usr/bin/env python3
"""Soak benchmark of the motion recorder: does its cost grow with uptime? (prints figures; asserts nothing)

The recorder runs in this process on vtest (H.264, half size) looped forever (`-stream_loop -1`)
and served as MPEG-TS over HTTP as fast as the recorder reads it, until HOURS of stream time
have passed. At every hour of stream time it samples the process CPU time (the recorder's
threads, not ffmpeg), the analysed frames and the RSS, and prints for the first and the last
hour: CPU per analysed frame and RSS (they should match within noise), plus the cache size,
restarts and events. Then it measures one tick of the segment bookkeeping with a month-sized
history: the window ffmpeg writes with -segment_list_size, against re-reading a list that kept
every segment (as the recorder did before).

Analysis settings are chosen so that 24 h of stream time fit in well under an hour of wall time
on one core: 1 analysed frame a second, 320 wide, the detector at most every 5 s.

Usage: python benchmarks/recorder_soak.py [HOURS]   (default 24)
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from cllmh.detect import Detector
from cllmh.recorder import CameraRecorder, RecorderConfig
from cllmh.source import LIST_SIZE, SegmentList

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from footage import H264, MODELS, VTEST, ffmpeg  # the tests' footage helpers
from livecamera import LiveCamera

cv2.setNumThreads(1)
MONTH_SEGMENTS = 30 * 24 * 3600 // 4


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(hours: int, work: Path) -> None:
    clip = work / "vtest-half.ts"
    ffmpeg("-i", str(VTEST), "-vf", "scale=384:288", *H264, "-x264-params", "repeat-headers=1", str(clip))
    camera = LiveCamera(clip, paced=False).start()
    config = RecorderConfig.model_validate(
        {
            "cameras": [{"name": "soak", "source": camera.url}],
            "model": {
                "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
                "anchors": str(MODELS / "ssdlite_anchors.npy"),
            },
            "recordings_dir": str(work / "rec"),
            "cache_dir": str(work / "cache"),
            "analysis_fps": 1,
            "analysis_width": 320,
            "detect_max_per_second": 0.2,
            "event_n": 1,
            "event_m": 5,
        }
    )
    detector = Detector(config.model.path, anchors_path=config.model.anchors, threshold=0.5, threads=1)
    recorder = CameraRecorder(config, config.cameras[0], detector)
    stop = threading.Event()
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(recorder.run(stop)), daemon=True)
    started = time.monotonic()
    runner.start()
    samples: list[tuple[int, float, int, float, int]] = []  # hour, cpu s, frames, rss MB, cache files
    hour = 0
    while runner.is_alive():
        time.sleep(1)
        if recorder.first_t is None:
            continue
        stream = recorder.last_t - recorder.first_t
        if stream >= hour * 3600:
            cache_files = len(list((work / "cache" / "soak").glob("*")))
            samples.append((hour, time.process_time(), recorder.stats["frames"], rss_mb(), cache_files))
            print(
                f"  stream {hour:3d} h after {time.monotonic() - started:7.0f} s: frames {samples[-1][2]:7d}"
                f"  RSS {samples[-1][3]:6.1f} MB  cache files {cache_files}"
                f"  events {recorder.keeper.counts['events']}  restarts {recorder.stats['restarts']}",
                flush=True,
            )
            hour += 1
            if hour > hours:
                stop.set()
    runner.join()
    camera.kill()
    wall = time.monotonic() - started
    print(
        f"\n{hours:g} h of stream time in {wall / 60:.1f} min of wall time"
        f" ({hours * 3600 / wall:.0f}x real time)"
    )
    for name, (a, b) in (("first hour", (samples[0], samples[1])), ("last hour", (samples[-2], samples[-1]))):
        cpu_ms = 1000 * (b[1] - a[1]) / max(1, b[2] - a[2])
        print(
            f"  {name:10s} (h {a[0]:2d}-{b[0]:2d}): {cpu_ms:6.2f} ms CPU per analysed frame"
            f" ({b[2] - a[2]} frames), RSS at its end {b[3]:.1f} MB, cache files {b[4]}"
        )
    print(
        f"  events {result.get('events')}, kept {result.get('kept_events')},"
        f" restarts {result.get('restarts')}, detector runs {result.get('detector_runs')}"
    )


def bookkeeping(work: Path) -> None:
    """One tick's segment bookkeeping after a month of 4 s segments, new list vs the old full list."""
    window = work / "window.csv"
    full = work / "full.csv"
    rows = [f"seg-000001-{n:08d}.mp4,{4 * n:.6f},{4 * n + 4:.6f}\n" for n in range(MONTH_SEGMENTS + 1000)]
    full.write_text("".join(rows[:MONTH_SEGMENTS]))
    listing = SegmentList(window)
    listing.new_entries(csv.reader(io.StringIO("".join(rows[MONTH_SEGMENTS - LIST_SIZE : MONTH_SEGMENTS]))))
    ticks = 200
    begin = time.perf_counter()
    for i in range(ticks):  # a new cut at every tick: the window is rewritten and renamed by ffmpeg
        n = MONTH_SEGMENTS + i
        tmp = work / "window.csv.tmp"
        tmp.write_text("".join(rows[n - LIST_SIZE + 1 : n + 1]))
        os.replace(tmp, window)
        assert len(listing.read()) == 1
    new_ms = 1000 * (time.perf_counter() - begin) / ticks
    seen: set[str] = set()
    begin = time.perf_counter()
    for _ in range(5):  # the old way: re-read the whole list, look every name up in a set of all
        with open(full, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if row[0] not in seen:
                    seen.add(row[0])
    old_ms = 1000 * (time.perf_counter() - begin) / 5
    print(f"\nsegment bookkeeping per tick with a month of history ({MONTH_SEGMENTS} segments):")
    print(f"  window of {LIST_SIZE} (now):         {new_ms:8.3f} ms per tick (incl. writing the window)")
    print(f"  whole list + set (before): {old_ms:8.1f} ms per tick, {len(seen)} names held in memory")


def main() -> None:
    hours = max(2, int(sys.argv[1])) if len(sys.argv) > 1 else 24  # whole hours: first and last differ
    with tempfile.TemporaryDirectory(dir=os.environ.get("SOAK_DIR")) as tmp:
        bookkeeping(Path(tmp))
        print(f"\nsoak: {hours:g} h of stream time")
        soak(hours, Path(tmp))


if __name__ == "__main__":
    main()
