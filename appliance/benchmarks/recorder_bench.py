#!/usr/bin/env python3
"""Benchmark of the motion recorder on given footage (prints figures; asserts nothing).

For each clip:
- analysed frames/s on one core: motion only, and motion + detector (the recorder's way:
  detector only on motion regions, rate-limited), and the peer: the detector on every frame;
- the fraction of analysed frames sent to the detector and the detector's ms per call;
- kept bytes / input bytes and the events found (running the real recorder on the file).

Usage: python benchmarks/recorder_bench.py [CLIP ...]
Without arguments it makes and uses vtest.avi (H.264) and a 5-minute mostly static clip.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from cllmh.decide import interesting
from cllmh.detect import Detector, regions_around
from cllmh.motion import MotionConfig, MotionDetector
from cllmh.recorder import CameraRecorder, RecorderConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from footage import H264, MODELS, VTEST, ffmpeg, still_scene  # the tests' footage helpers

cv2.setNumThreads(1)


def make_clips(out: Path) -> list[Path]:
    ffmpeg("-i", str(VTEST), *H264, str(out / "vtest.mp4"))
    # 5 minutes: 280 s of an empty scene with sensor noise, then 20 s of pedestrians
    still_scene(out, "static.mp4", 280, "noise=alls=4:allf=t")
    ffmpeg("-i", str(out / "vtest.mp4"), "-t", "20", "-c", "copy", str(out / "people.mp4"))
    (out / "list.txt").write_text("file 'static.mp4'\nfile 'people.mp4'\n")
    ffmpeg(
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(out / "list.txt"),
        "-c",
        "copy",
        str(out / "mostly-static.mp4"),
    )
    return [out / "vtest.mp4", out / "mostly-static.mp4"]


def frames(path: Path, fps: float = 5.0, width: int = 640):
    cap = cv2.VideoCapture(str(path))
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 10
    step = max(1, round(src_fps / fps))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n % step == 0:
            h, w = frame.shape[:2]
            yield cv2.resize(frame, (width, round(h * width / w) // 2 * 2), interpolation=cv2.INTER_AREA)
        n += 1


def analyse(path: Path, detector: Detector, mode: str) -> dict:
    decoded = list(frames(path))
    h, w = decoded[0].shape[:2]
    motion = MotionDetector(MotionConfig(), (w, h))
    calls = 0
    detect_s = 0.0
    last = -1e9
    started = time.process_time()
    for i, frame in enumerate(decoded):
        t = i / 5.0
        result = motion.process(frame)
        if mode == "every-frame":
            t0 = time.process_time()
            detector.detect(frame)
            detect_s += time.process_time() - t0
            calls += 1
        elif mode == "motion+detect" and result.motion and t - last >= 0.5:
            last = t
            regions = regions_around(result.boxes, (w, h), min_side=min(detector.width, h))
            t0 = time.process_time()
            found = detector.detect(frame, regions)
            detect_s += time.process_time() - t0
            calls += len(regions)
            interesting([(d.label, d.score) for d in found], {"default": 0.5})
    cpu = time.process_time() - started
    return {
        "frames": len(decoded),
        "fps_per_core": len(decoded) / cpu if cpu else 0.0,
        "detector_calls": calls,
        "detector_ms": 1000 * detect_s / calls if calls else 0.0,
    }


def record(path: Path, work: Path) -> dict:
    config = RecorderConfig.model_validate(
        {
            "cameras": [{"name": "bench", "source": str(path)}],
            "model": {
                "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
                "anchors": str(MODELS / "ssdlite_anchors.npy"),
            },
            "recordings_dir": str(work / "rec"),
            "cache_dir": str(work / "cache"),
        }
    )
    detector = Detector(config.model.path, anchors_path=config.model.anchors, threshold=0.5)
    result = CameraRecorder(config, config.cameras[0], detector).run()
    kept = sum(f.stat().st_size for f in (work / "rec").rglob("clip*.mp4"))
    labels = []
    for event in result["kept"]:
        labels.append(json.loads((Path(event) / "event.json").read_text())["labels"])
    return {"events": result["events"], "labels": labels, "kept_ratio": kept / path.stat().st_size}


def main() -> None:
    detector = Detector(
        MODELS / "ssdlite_mnv2_person_int8.tflite",
        anchors_path=MODELS / "ssdlite_anchors.npy",
        threshold=0.5,
        threads=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        clips = [Path(a) for a in sys.argv[1:]] or make_clips(Path(tmp))
        for clip in clips:
            only_motion = analyse(clip, detector, "motion")
            gated = analyse(clip, detector, "motion+detect")
            peer = analyse(clip, detector, "every-frame")
            kept = record(clip, Path(tempfile.mkdtemp(dir=tmp)))
            print(f"\n{clip.name} ({only_motion['frames']} frames analysed at 5 fps, 640 wide)")
            print(f"  motion only:                  {only_motion['fps_per_core']:8.1f} frames/s per core")
            print(f"  motion + detector on motion:  {gated['fps_per_core']:8.1f} frames/s per core")
            print(
                f"  peer, detector on every frame:{peer['fps_per_core']:8.1f} frames/s per core"
                f"  (recorder is {gated['fps_per_core'] / peer['fps_per_core']:.1f}x faster)"
            )
            print(
                f"  detector calls per analysed frame: {gated['detector_calls'] / gated['frames']:.2f}"
                f"  ({gated['detector_ms']:.1f} ms per call)"
            )
            print(f"  kept bytes / input bytes:     {kept['kept_ratio']:.2f}")
            print(f"  events: {kept['events']}  labels: {kept['labels']}")


if __name__ == "__main__":
    main()
