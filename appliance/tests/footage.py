"""Real footage for the analysis tests: OpenCV's samples from Debian's opencv-doc package."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST = DATA / "vtest.avi"  # pedestrians, 768x576, 10 fps, 795 frames
MODELS = Path(__file__).resolve().parents[2] / "files" / "models"


# As a camera sends it: H.264 without B-frames, a keyframe every 2 s at 10 fps.
H264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "20", "-pix_fmt", "yuv420p"]


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` installs opencv-doc")
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=300)


def still_scene(out: Path, name: str, seconds: float, vf: str) -> Path:
    """`seconds` of vtest's first frame (a nearly empty scene) looped at 10 fps through the filter
    `vf`, encoded as a camera would (H264)."""
    still = out / "still.png"
    if not still.exists():
        ffmpeg("-i", str(need(VTEST)), "-frames:v", "1", str(still))
    path = out / name
    ffmpeg(
        "-loop", "1", "-framerate", "10", "-i", str(still), "-t", f"{seconds:g}", "-vf", vf, *H264, str(path)
    )
    return path


def vtest_frames(every: int = 2, limit: int | None = None) -> list[np.ndarray]:
    """vtest.avi decoded at 10 / every fps (every=2: the default 5 fps analysis rate)."""
    cap = cv2.VideoCapture(str(need(VTEST)))
    frames, n = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n % every == 0:
            frames.append(frame)
            if limit and len(frames) >= limit:
                break
        n += 1
    cap.release()
    return frames


def image(name: str) -> np.ndarray:
    img = cv2.imread(str(need(DATA / name)))
    assert img is not None
    return img
