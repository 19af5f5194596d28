#!/usr/bin/env python3
"""Benchmark of the motion stage (prints figures; asserts nothing).

For vtest.avi at the 5 fps analysis rate, resized to 640x480 and 1280x720, on one core:
- CLLMH's MotionDetector: ms per analysed frame on the Y plane (as the recorder gives it) and on
  the BGR frame;
- recall: the fraction of frames reported as motion (pedestrians move in every frame of vtest),
  after a 2 s warm-up, on the footage as it is and with the lights switched on (x1.35) at 30 s;
- with `--frigate FILE` (a local copy of frigate/motion/improved_motion.py from the public
  blakeblackshear/frigate repository, fetched by you), the same for Frigate's
  ImprovedMotionDetector with its default configuration, in the same process on the same frames,
  and the ratio of the costs. Frigate's module is loaded with minimal stand-ins for the Frigate
  objects it imports (its configuration, PTZ metrics, base class, contour helper); its own
  dependencies numpy, OpenCV and scipy must be installed. As in Frigate's frame loop, its motion
  boxes count only when it is not calibrating.

Usage: python benchmarks/motion_bench.py [--frigate FILE] [--repeat N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from cllmh.motion import MotionConfig, MotionDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from footage import vtest_frames  # the tests' footage helpers

cv2.setNumThreads(1)

SIZES = [(640, 480), (1280, 720)]
WARMUP = 10  # frames (2 s) before recall is counted: calibration of either detector
LIGHTS_ON_AT = 150  # frame (30 s) from which the footage is 1.35x brighter

# Frigate's MotionConfig defaults (frigate/config/camera/motion.py)
FRIGATE_DEFAULTS = {
    "enabled": True,
    "threshold": 30,
    "lightning_threshold": 0.8,
    "improve_contrast": True,
    "contour_area": 10,
    "delta_alpha": 0.2,
    "frame_alpha": 0.01,
    "frame_height": 100,
    "mqtt_off_delay": 30,
}
STAND_INS = (
    "frigate.config.MotionConfig (a namespace of Frigate's defaults, mask all 255), "
    "frigate.camera.PTZMetrics (autotracking off), frigate.motion.MotionDetector (empty base), "
    "frigate.util.image.grab_cv2_contours / imutils.grab_contours (OpenCV 4+ tuple), "
    "frigate.comms.config_updater.ConfigSubscriber (never an update)"
)


def load_frigate(path: Path) -> type:
    """Frigate's ImprovedMotionDetector class from `path`, with stand-ins for Frigate's modules."""
    try:
        import scipy.ndimage  # noqa: F401, PLC0415 - Frigate's own dependency
    except ImportError:
        sys.exit("Frigate's detector needs scipy: pip install scipy")

    def grab_contours(found: tuple) -> list:
        return found[0] if len(found) == 2 else found[1]

    class Subscriber:
        def __init__(self, *_: object) -> None:
            pass

        def check_for_update(self) -> tuple[None, None]:
            return None, None

        def stop(self) -> None:
            pass

    modules = {
        "frigate": {},
        "frigate.camera": {"PTZMetrics": object},
        "frigate.config": {"MotionConfig": object},
        "frigate.motion": {"MotionDetector": type("MotionDetector", (), {})},
        "frigate.util": {},
        "frigate.util.image": {"grab_cv2_contours": grab_contours},
        "frigate.comms": {},
        "frigate.comms.config_updater": {"ConfigSubscriber": Subscriber},
    }
    try:
        import imutils  # noqa: F401, PLC0415
    except ImportError:
        modules["imutils"] = {"grab_contours": grab_contours}
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules.setdefault(name, module)
    spec = importlib.util.spec_from_file_location("frigate_improved_motion", path)
    if spec is None or spec.loader is None:
        sys.exit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ImprovedMotionDetector


def frigate_factory(cls: type, width: int, height: int) -> Callable[[], Callable[[np.ndarray], bool]]:
    def make() -> Callable[[np.ndarray], bool]:
        mask = np.full((height, width), 255, np.uint8)
        config = types.SimpleNamespace(**FRIGATE_DEFAULTS, mask=mask, rasterized_mask=mask)
        ptz = types.SimpleNamespace(autotracker_enabled=types.SimpleNamespace(value=False))
        detector = cls((height, width), config, 5, ptz)
        return lambda frame: bool(detector.detect(frame)) and not detector.is_calibrating()

    return make


def cllmh_factory(width: int, height: int) -> Callable[[], Callable[[np.ndarray], bool]]:
    def make() -> Callable[[np.ndarray], bool]:
        detector = MotionDetector(MotionConfig(), (width, height))
        return lambda frame: detector.process(frame).motion

    return make


def measure(
    make: Callable[[], Callable[[np.ndarray], bool]], frames: list[np.ndarray]
) -> tuple[float, float, list[bool]]:
    """(ms per frame, recall, motion per frame) of one run of a fresh detector over the frames."""
    process = make()
    start = time.perf_counter()
    moving = [process(frame) for frame in frames]
    ms = (time.perf_counter() - start) / len(frames) * 1000
    return ms, sum(moving[WARMUP:]) / len(moving[WARMUP:]), moving


def blind(moving: list[bool], start: int) -> int:
    """Frames from `start` until the first one with motion."""
    return next((i for i, m in enumerate(moving[start:]) if m), len(moving) - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frigate", type=Path, help="a local copy of Frigate's improved_motion.py")
    parser.add_argument("--repeat", type=int, default=7, help="runs per detector (the best is reported)")
    args = parser.parse_args()
    frigate = load_frigate(args.frigate) if args.frigate else None
    source = vtest_frames()
    print(f"vtest.avi: {len(source)} frames at 5 fps, pedestrians moving in every frame; one core")
    print(f"recall counted after {WARMUP} frames; '1st motion': first frame with motion (calibration)")
    print(f"'lights on': x1.35 from frame {LIGHTS_ON_AT}; 'blind after': frames from then to the next motion")
    if frigate:
        print(f"Frigate: {args.frigate} with stand-ins for {STAND_INS}")
    for width, height in SIZES:
        bgr = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in source]
        yuv = [cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420) for f in bgr]  # (h * 3/2, w), as Frigate gets it
        runs: dict[str, tuple[Callable, list[np.ndarray]]] = {
            "CLLMH, Y plane": (cllmh_factory(width, height), [f[:height] for f in yuv]),
            "CLLMH, BGR": (cllmh_factory(width, height), bgr),
        }
        if frigate:
            runs["Frigate improved, Y plane"] = (frigate_factory(frigate, width, height), yuv)
        times: dict[str, list[float]] = {name: [] for name in runs}
        recall: dict[str, float] = {}
        first: dict[str, int] = {}
        for _ in range(args.repeat):  # interleaved, so that load on the machine hits all alike
            for name, (make, frames) in runs.items():
                ms, recall[name], moving = measure(make, frames)
                times[name].append(ms)
                first[name] = blind(moving, 0)
        lit: dict[str, tuple[float, int]] = {}
        for name, (make, frames) in runs.items():
            brighter = [
                f if i < LIGHTS_ON_AT else cv2.convertScaleAbs(f, alpha=1.35) for i, f in enumerate(frames)
            ]
            _, lit_recall, moving = measure(make, brighter)
            lit[name] = (lit_recall, blind(moving, LIGHTS_ON_AT))
        print(f"\n{width}x{height}")
        print(
            f"  {'detector':26} {'best ms/frame':>13} {'median':>7} {'recall':>7} {'1st motion':>10}"
            f" {'recall, lights on':>17} {'blind after':>11}"
        )
        for name in runs:
            print(
                f"  {name:26} {min(times[name]):13.3f} {statistics.median(times[name]):7.3f}"
                f" {recall[name]:7.3f} {first[name]:10d} {lit[name][0]:17.3f} {lit[name][1]:11d}"
            )
        if frigate:
            peer = min(times["Frigate improved, Y plane"])
            for name in ("CLLMH, Y plane", "CLLMH, BGR"):
                print(f"  cost ratio {name} / Frigate: {min(times[name]) / peer:.2f}")


if __name__ == "__main__":
    main()
