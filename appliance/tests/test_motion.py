from __future__ import annotations

import subprocess
from collections.abc import Callable
from functools import cache

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from cllmh.detect import Detector, regions_around
from cllmh.motion import Change, MotionConfig, MotionDetector, MotionResult, needs_shift, whole_frame_change
from footage import MODELS, VTEST, need, vtest_frames

SIZE = (768, 576)
FPS = 5  # vtest_frames() is vtest.avi at the default analysis rate
WITHIN = 3 * FPS  # after a change, motion must be seen again within 3 s
CHANGE_AT = 150  # index of the first changed frame
END = 350  # 200 frames after the change

Alteration = Callable[[int, np.ndarray], np.ndarray]  # (frames since the change, frame) -> changed frame


def run(frames: list[np.ndarray], size: tuple[int, int] = SIZE, **config) -> list[MotionResult]:
    detector = MotionDetector(MotionConfig(**config), size)
    return [detector.process(f) for f in frames]


def noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """The frame with camera-like sensor noise."""
    rng = np.random.default_rng(seed)
    return np.clip(frame.astype(np.int16) + rng.normal(0, 3, frame.shape).astype(np.int16), 0, 255).astype(
        np.uint8
    )


@cache
def pedestrians() -> tuple[np.ndarray, ...]:
    return tuple(vtest_frames())


def scaled(frame: np.ndarray, gain: float) -> np.ndarray:
    return cv2.convertScaleAbs(frame, alpha=gain)


def shifted(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The frame as seen by a camera moved by (dx, dy) pixels."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def infrared(gain: float) -> Alteration:
    """Day/night switch: colour to gray (the IR image) and a change of brightness."""
    return lambda _, f: scaled(cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), gain)


SHAKE = [(5, 3), (-4, 6), (6, -5), (-3, -4)]  # a few frames of a camera hit by the wind, then back

# name -> (change, indices (since the change) of the frames in which the picture jumps)
CHANGES: dict[str, tuple[Alteration, list[int]]] = {
    "lights on": (lambda _, f: scaled(f, 1.35), [0]),
    "lights off": (lambda _, f: scaled(f, 0.6), [0]),
    "IR switch, darker": (infrared(0.7), [0]),
    "IR switch, brighter": (infrared(1.3), [0]),
    "slow dusk": (lambda k, f: scaled(f, 1 - 0.6 * min(1.0, (k + 1) / 60)), []),  # to 0.4 over 12 s
    "camera shake": (
        lambda k, f: shifted(f, *SHAKE[k]) if k < len(SHAKE) else f,
        list(range(len(SHAKE) + 1)),
    ),
    "camera moved": (lambda _, f: shifted(f, 6, 4), [0]),
}


def changed_from(frames: list[np.ndarray] | tuple[np.ndarray, ...], start: int, change: Alteration) -> list:
    return [f if i < start else change(i - start, f) for i, f in enumerate(frames)]


def longest_gap(results: list[MotionResult]) -> int:
    """The longest run of frames without motion."""
    longest = run_ = 0
    for r in results:
        run_ = 0 if r.motion else run_ + 1
        longest = max(longest, run_)
    return longest


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


@pytest.mark.parametrize("name", CHANGES)
def test_a_lighting_or_camera_change_of_a_still_scene_is_not_motion(name: str) -> None:
    change, jumps = CHANGES[name]
    still = pedestrians()[0]  # vtest's first frame: the street before anyone walks in
    frames = changed_from([noisy(still, i) for i in range(100)], 30, change)
    results = run(frames)
    assert not any(r.motion for r in results), [i for i, r in enumerate(results) if r.motion]
    if jumps:
        assert all(results[30 + k].suppressed == "whole-frame change" for k in jumps)


@pytest.mark.parametrize("name", CHANGES)
def test_pedestrians_are_motion_again_within_3_s_of_a_lighting_or_camera_change(name: str) -> None:
    change, jumps = CHANGES[name]
    frames = changed_from(pedestrians()[:END], CHANGE_AT, change)
    results = run(frames)
    assert all(r.motion for r in results[CHANGE_AT - 20 : CHANGE_AT])  # people walk in every frame
    # the jump itself is not motion
    assert all(not results[CHANGE_AT + k].motion for k in jumps)
    after = results[CHANGE_AT:]
    assert longest_gap(after) <= WITHIN, [i + CHANGE_AT for i, r in enumerate(after) if not r.motion]
    settled = results[CHANGE_AT + WITHIN + max(jumps, default=0) :]
    assert sum(r.motion for r in settled) / len(settled) > 0.9


def test_whole_frame_changes_are_told_from_motion_without_io() -> None:
    config = MotionConfig()
    people = Change(raw=0.05, local=0.05, spread=0.3)
    assert not whole_frame_change(people, config) and not needs_shift(people, config)
    lights = Change(raw=0.9, local=0.02, spread=0.4)  # brightness undone, little is left
    assert whole_frame_change(lights, config)
    ir = Change(raw=0.6, local=0.7, spread=1.0)  # even at equal brightness everything differs
    assert whole_frame_change(ir, config)
    spread = Change(raw=0.08, local=0.08, spread=0.6)
    assert not whole_frame_change(spread, config) and needs_shift(spread, config)
    # a shake: undoing the global shift leaves only the people walking
    assert whole_frame_change(Change(raw=0.08, local=0.08, spread=0.6, shift=1.2, residual=0.03), config)
    # a crowd: the "shift" phase correlation finds explains nothing
    assert not whole_frame_change(Change(raw=0.08, local=0.08, spread=0.6, shift=0.9, residual=0.09), config)
    # a shift below half a working pixel is not trusted
    assert not whole_frame_change(Change(raw=0.08, local=0.08, spread=0.6, shift=0.3, residual=0.0), config)


def test_a_whole_frame_change_that_goes_on_does_not_blind_the_motion_stage() -> None:
    """A camera that keeps shaking: after a few suppressed frames the change is reported, not
    re-learnt forever."""
    rng = np.random.default_rng(7)
    frames = list(pedestrians()[:200])
    for i in range(CHANGE_AT, 200):
        frames[i] = shifted(frames[i], *(int(v) for v in rng.integers(-8, 9, 2)))
    results = run(frames)
    assert sum(r.motion for r in results[CHANGE_AT + WITHIN : 200]) / (200 - CHANGE_AT - WITHIN) > 0.8


@pytest.fixture(scope="module")
def ssd() -> Detector:
    return Detector(
        need(MODELS / "ssdlite_mnv2_person_int8.tflite"),
        anchors_path=need(MODELS / "ssdlite_anchors.npy"),
        threshold=0.5,
    )


@pytest.mark.parametrize("name", ["lights on", "lights off", "IR switch, darker", "camera moved"])
def test_a_person_is_found_within_3_s_of_a_change_through_motion_regions(name: str, ssd: Detector) -> None:
    change, _ = CHANGES[name]
    frames = changed_from(pedestrians()[: CHANGE_AT + WITHIN + 1], CHANGE_AT, change)
    motion = MotionDetector(MotionConfig(), SIZE)
    first_person = None
    for i, frame in enumerate(frames):
        result = motion.process(frame)
        if i < CHANGE_AT or not result.motion:
            continue
        regions = regions_around(result.boxes, SIZE, min_side=ssd.width)
        if any(d.label == "person" for d in ssd.detect(frame, regions)):
            first_person = i
            break
    assert first_person is not None and first_person - CHANGE_AT <= WITHIN


def y_planes(width: int, height: int, limit: int) -> list[np.ndarray]:
    """vtest.avi at 5 fps as ffmpeg hands it to the recorder (yuv420p), Y plane only."""
    raw = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-i", str(need(VTEST)), "-vf", f"fps=5,scale={width}:{height}",
            "-frames:v", str(limit), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout  # fmt: skip
    frame_bytes = width * height * 3 // 2
    assert len(raw) == frame_bytes * limit
    frames = np.frombuffer(raw, np.uint8).reshape(limit, height * 3 // 2, width)
    return [frame[:height] for frame in frames]


def test_a_gray_y_plane_is_analysed_like_a_bgr_frame() -> None:
    planes = y_planes(640, 480, 120)
    results = run(planes, size=(640, 480))
    moving = [r for r in results[11:] if r.motion]
    assert len(moving) / len(results[11:]) > 0.9
    assert all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 for r in moving for x1, y1, x2, y2 in r.boxes)
    # the same scene in colour gives motion in the same frames
    bgr = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in vtest_frames(limit=120)]
    colour = run(bgr, size=(640, 480))
    agree = sum(a.motion == b.motion for a, b in zip(results[11:], colour[11:], strict=True))
    assert agree / len(results[11:]) > 0.95


def test_a_still_gray_scene_with_noise_is_not_motion_and_lights_on_is_suppressed() -> None:
    still = y_planes(640, 480, 1)[0]
    frames = [noisy(still, i) for i in range(40)] + [noisy(scaled(still, 1.35), i) for i in range(40)]
    results = run(frames, size=(640, 480))
    assert not any(r.motion for r in results)
    assert results[40].suppressed == "whole-frame change"


def test_a_frame_of_another_size_or_layout_is_refused() -> None:
    detector = MotionDetector(MotionConfig(), (640, 480))
    with pytest.raises(ValueError, match="640x480"):
        detector.process(np.zeros((576, 768), np.uint8))
    with pytest.raises(ValueError, match=r"gray .* or BGR"):
        detector.process(np.zeros((480, 640, 4), np.uint8))


def test_calibration_ignores_the_first_frames() -> None:
    results = run(vtest_frames(limit=12), calibration_frames=10)
    assert all(r.suppressed == "calibrating" and not r.motion for r in results[:10])
    assert results[10].suppressed is None


def test_a_masked_area_is_ignored() -> None:
    results = run(vtest_frames(limit=60), masks=[[(0, 0), (768, 0), (768, 576), (0, 576)]])
    assert not any(r.motion for r in results)


def test_a_whole_frame_change_is_judged_on_the_unmasked_area() -> None:
    """With 60 % of the picture masked, an IR switch still changes the whole (unmasked) picture."""
    still = pedestrians()[0]
    frames = [noisy(still, i) for i in range(30)] + [noisy(255 - still, i) for i in range(30)]
    results = run(frames, masks=[[(0, 0), (461, 0), (461, 576), (0, 576)]])
    assert not any(r.motion for r in results), [i for i, r in enumerate(results) if r.motion]
    assert results[30].suppressed == "whole-frame change"


@pytest.mark.parametrize("points", [[], [(0, 0)], [(0, 0), (10, 10)]])
def test_a_mask_of_fewer_than_3_points_is_refused(points: list) -> None:
    with pytest.raises(ValidationError, match="at least 3 points"):
        MotionConfig(masks=[[(0, 0), (100, 0), (0, 100)], points])


def test_a_triangle_mask_is_accepted() -> None:
    assert MotionConfig(masks=[[(0, 0), (100, 0), (0, 100)]]).masks[0][2] == (0, 100)
