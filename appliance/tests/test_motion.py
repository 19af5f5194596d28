from __future__ import annotations

import numpy as np

from cllmh.motion import MotionConfig, MotionDetector
from footage import vtest_frames

SIZE = (768, 576)


def run(frames: list[np.ndarray], **config) -> list:
    detector = MotionDetector(MotionConfig(**config), SIZE)
    return [detector.process(f) for f in frames]


def noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """The frame with camera-like sensor noise."""
    rng = np.random.default_rng(seed)
    return np.clip(frame.astype(np.int16) + rng.normal(0, 3, frame.shape).astype(np.int16), 0, 255).astype(
        np.uint8
    )


def test_pedestrians_are_motion() -> None:
    results = run(vtest_frames(limit=120))
    moving = [r for r in results[11:] if r.motion]
    assert len(moving) / len(results[11:]) > 0.8
    assert all(0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576 for r in moving for x1, y1, x2, y2 in r.boxes)


def test_a_static_scene_with_sensor_noise_is_not_motion() -> None:
    still = vtest_frames(limit=1)[0]
    results = run([noisy(still, i) for i in range(60)])
    assert not any(r.motion for r in results)


def test_lights_switching_and_dimming_are_not_motion() -> None:
    still = vtest_frames(limit=1)[0]
    frames = [noisy(still, i) for i in range(20)]
    frames += [noisy(np.clip(still * 1.7, 0, 255).astype(np.uint8), i) for i in range(20, 40)]  # lights on
    frames += [
        noisy(np.clip(still * (1.7 - 0.02 * k), 0, 255).astype(np.uint8), k) for k in range(30)
    ]  # dusk
    frames += [noisy(255 - still, i) for i in range(10)]  # IR day/night switch: everything changes
    results = run(frames)
    assert not any(r.motion for r in results), [i for i, r in enumerate(results) if r.motion]
    assert sum(r.suppressed == "whole-frame change" for r in results) >= 2


def test_calibration_ignores_the_first_frames() -> None:
    results = run(vtest_frames(limit=12), calibration_frames=10)
    assert all(r.suppressed == "calibrating" and not r.motion for r in results[:10])
    assert results[10].suppressed is None


def test_a_masked_area_is_ignored() -> None:
    results = run(vtest_frames(limit=60), masks=[[(0, 0), (768, 0), (768, 576), (0, 576)]])
    assert not any(r.motion for r in results)
