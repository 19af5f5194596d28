#!/usr/bin/env python3
"""Whole-recorder CPU per camera, end to end, on live cameras (prints figures; asserts nothing).

A live RTSP camera is served on this machine by the lab's sample camera (GStreamer, real
pedestrian footage at real-time pace, a main stream and a smaller substream), and `cllmh record`
runs on it exactly as its service does. Over a measuring window (default 60 s, after a warm-up)
the CPU time of the recorder's Python process and of every ffmpeg it runs is read from /proc
(psutil), and printed as % of one core and as the number of such cameras one core carries.

Configurations: the 768x576 camera analysed on its main stream, then on its 384x288 substream;
the same footage as a 1920x1080 camera, analysed on its main stream, then on a 640x360 substream.

Usage: python benchmarks/recorder_cpu_bench.py [--seconds 60] [--warmup 15] [--only NAME]
                                              [--analysis both|main|substream]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from footage import MODELS, VTEST, ffmpeg, need  # the tests' footage helpers

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CAMERA = ROOT / "roles" / "sample_camera" / "files" / "sample_camera.py"
# As the sample camera role encodes it: H.264 main profile, no B-frames, keyframe every 2 s at 10 fps.
CAMERA_H264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0", "-g", "20"]
CAMERA_H264 += ["-keyint_min", "20", "-sc_threshold", "0", "-frames:v", "780", "-pix_fmt", "yuv420p"]

CAMERAS = {  # name: (main stream size, substream size)
    "768x576": ("768:576", "384:288"),
    "1080p": ("1920:1080", "640:360"),
}


def encode(out: Path, size: str) -> Path:
    path = out / f"vtest-{size.replace(':', 'x')}.mp4"
    if not path.exists():
        ffmpeg("-i", str(need(VTEST)), "-vf", f"scale={size}", *CAMERA_H264, str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_camera(main: Path, sub: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(SAMPLE_CAMERA), "--file", str(main), "--port", str(port),
         "--path", "/cam1", "--substream-file", str(sub), "--substream-path", "/cam1_sub"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"rtsp://127.0.0.1:{port}"
        time.sleep(0.2)
    raise SystemExit("the sample camera did not start")


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """(python, ffmpeg) CPU seconds so far of the recorder and its children (threads included)."""
    times = proc.cpu_times()
    python = times.user + times.system
    children = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            children += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return python, children


def measure(url: str, substream: bool, work: Path, seconds: float, warmup: float) -> dict:
    camera = {"name": "cam", "source": f"{url}/cam1"}
    if substream:
        camera["detect_url"] = f"{url}/cam1_sub"
    config = {
        "cameras": [camera],
        "model": {
            "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
            "anchors": str(MODELS / "ssdlite_anchors.npy"),
        },
        "recordings_dir": str(work / "recordings"),
        "cache_dir": str(work / "cache"),
    }
    path = work / "recorder.yaml"
    path.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rec = subprocess.Popen(
        [sys.executable, "-m", "cllmh.cli", "record", "--config", str(path), "--camera", "cam"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        proc = psutil.Process(rec.pid)
        time.sleep(warmup)
        py0, ff0 = cpu_seconds(proc)
        t0 = time.monotonic()
        time.sleep(seconds)
        py1, ff1 = cpu_seconds(proc)
        elapsed = time.monotonic() - t0
    finally:
        rec.terminate()
        rec.wait(timeout=60)
    python, ffmpeg_ = (py1 - py0) / elapsed * 100, (ff1 - ff0) / elapsed * 100
    return {"python_pct": python, "ffmpeg_pct": ffmpeg_, "total_pct": python + ffmpeg_}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--only", choices=sorted(CAMERAS))
    parser.add_argument(
        "--analysis",
        choices=("both", "main", "substream"),
        default="both",
        help="rows to run (main: also for a recorder without substream support, to compare)",
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.seconds:g} s measured after {args.warmup:g} s of warm-up per row")
    print(f"{'camera':<10} {'analysed on':<22} {'python':>8} {'ffmpeg':>8} {'total':>8} {'cameras/core':>13}")
    with tempfile.TemporaryDirectory(prefix="cllmh-cpu-") as tmp:
        out = Path(tmp)
        for name, (main_size, sub_size) in CAMERAS.items():
            if args.only and name != args.only:
                continue
            camera, url = start_camera(encode(out, main_size), encode(out, sub_size))
            try:
                for substream in {"both": (False, True), "main": (False,), "substream": (True,)}[
                    args.analysis
                ]:
                    work = out / f"{name}-{substream}"
                    work.mkdir()
                    r = measure(url, substream, work, args.seconds, args.warmup)
                    where = f"substream {sub_size.replace(':', 'x')}" if substream else "main stream"
                    print(
                        f"{name:<10} {where:<22} {r['python_pct']:7.1f}% {r['ffmpeg_pct']:7.1f}% "
                        f"{r['total_pct']:7.1f}% {100 / r['total_pct']:13.1f}",
                        flush=True,
                    )
            finally:
                camera.terminate()
                camera.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
