"""Real footage for the analysis tests: OpenCV's samples from Debian's opencv-doc package."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST = DATA / "vtest.avi"  # pedestrians, 768x576, 10 fps, 795 frames
MODELS = Path(__file__).resolve().parents[2] / "files" / "models"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` installs opencv-doc")
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
