"""Cheap motion detection by frame differencing, run on every analysed frame.

Gray (the Y plane as ffmpeg hands it, or a BGR frame converted after the downscale) -> downscale
-> blur -> difference against a running average seen at the frame's brightness -> threshold ->
dilate -> contours -> boxes above a minimum area, with a per-camera mask, a calibration period
after start, and suppression of whole-frame changes:

- lighting (lights, an IR day/night switch, auto-exposure jumps): most pixels changed before the
  background was brought to the frame's brightness;
- a changed scene: most pixels changed even after that;
- camera shake or a moved camera: change spread over most of the picture that a global shift of
  the picture explains (phase correlation, computed only when the change is that widespread).

After a whole-frame change the background is re-learnt from the frame as it is now (its new
brightness, its new position), so the next frames are compared with the new scene. A change that
goes on (a camera that keeps shaking, a flickering light, something filling the view) is
suppressed for at most `relearn_limit` frames (counted down again by ordinary frames); after that
its frames are reported as motion, so the stage is never blind for long. A slow change (dusk,
clouds) needs no re-learn: the background follows the real brightness and is compared at the
frame's brightness meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in full-frame pixels

SAME_LEVEL = 0.02  # frame and background brightness within 2 %: nothing to undo
SETTLE_FRAMES = 3  # after a re-learn, the background learns fast (as in calibration) for these frames
GRID = (8, 6)  # cells over which the spread of a change is measured
CELL_CHANGED = 0.02  # a cell with at least this fraction of changed pixels counts as changed
MIN_SHIFT = 0.5  # working-resolution pixels of global shift that make a change a camera movement
# A shift explains a change when undoing it leaves at most this part of the changed pixels (people
# walking stay changed: on vtest, undoing a shift that was not there leaves 1.04-1.55 of them).
EXPLAINED = 0.9


class MotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: Annotated[int, Field(ge=80, le=1280, description="working width in pixels")] = 160
    blur: Annotated[int, Field(ge=1, le=31)] = 3
    alpha: Annotated[float, Field(gt=0, lt=1, description="weight of a new frame in the background")] = 0.05
    threshold: Annotated[int, Field(ge=1, le=255)] = 25
    dilate_iterations: Annotated[int, Field(ge=0, le=10)] = 1
    min_area: Annotated[float, Field(gt=0, lt=1, description="fraction of the frame")] = 0.001
    calibration_frames: Annotated[int, Field(ge=0)] = 10
    whole_frame_fraction: Annotated[
        float, Field(gt=0, le=1, description="fraction of the unmasked picture changed at once")
    ] = 0.5
    shake_spread: Annotated[
        float,
        Field(
            gt=0, le=1, description="fraction of the picture's cells changed that asks: did the camera move?"
        ),
    ] = 0.4
    relearn_limit: Annotated[
        int,
        Field(
            ge=1,
            description="whole-frame changes suppressed before they count as motion "
            "(each ordinary frame takes one off)",
        ),
    ] = 5
    # Polygons (full-frame pixel coordinates) where motion is ignored (trees, a road, a clock).
    masks: list[list[tuple[int, int]]] = []

    @field_validator("masks")
    @classmethod
    def _polygons(cls, masks: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
        for i, polygon in enumerate(masks):
            if len(polygon) < 3:
                raise ValueError(
                    f"mask {i} has {len(polygon)} point(s): a mask is a polygon of at least 3 points [x, y]"
                )
        return masks


@dataclass
class MotionResult:
    boxes: list[Box] = field(default_factory=list)
    changed_fraction: float = 0.0
    suppressed: str | None = None  # "calibrating" or "whole-frame change"

    @property
    def motion(self) -> bool:
        return bool(self.boxes)


@dataclass(frozen=True)
class Change:
    """What one frame changed against the background (all fractions of the unmasked picture)."""

    raw: float  # changed pixels before the background is brought to the frame's brightness
    local: float  # changed pixels after
    spread: float  # fraction of grid cells with changed pixels
    shift: float | None = None  # global shift in working pixels (None: not estimated)
    residual: float | None = None  # changed pixels once the background is moved by that shift


def whole_frame_change(change: Change, config: MotionConfig) -> bool:
    """Is this a change of the whole picture (lighting, IR switch, a moved camera) rather than
    something moving in it? (pure)"""
    if max(change.raw, change.local) >= config.whole_frame_fraction:
        return True
    if change.shift is None or change.residual is None:
        return False
    return change.shift >= MIN_SHIFT and change.residual <= EXPLAINED * change.local


def needs_shift(change: Change, config: MotionConfig) -> bool:
    """Is the change spread widely enough to ask whether the camera moved? (pure)"""
    return change.spread >= config.shake_spread


class MotionDetector:
    """Feed every analysed frame to `process`: a gray frame (H, W), e.g. the Y plane of a YUV420
    frame, or a BGR frame (H, W, 3), of the `frame_size` (width, height) given here."""

    def __init__(self, config: MotionConfig, frame_size: tuple[int, int]) -> None:
        self.config = config
        self.frame_size = frame_size
        width, height = frame_size
        self.scale = config.width / width
        self.small = (config.width, max(1, round(height * self.scale)))
        self.mask = self._mask()
        self.pixels = self.small[0] * self.small[1]
        self.area = float(cv2.countNonZero(self.mask)) if self.mask is not None else float(self.pixels)
        self.min_pixels = config.min_area * self.pixels
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        blur = config.blur if config.blur % 2 else config.blur + 1
        self.blur = (blur, blur)
        self.window = cv2.createHanningWindow(self.small, cv2.CV_32F)
        # grid cells that are mostly unmasked: the spread of a change is counted over these
        self.cells = np.full(GRID[::-1], 255, np.uint8)
        if self.mask is not None:
            self.cells = cv2.threshold(
                cv2.resize(self.mask, GRID, interpolation=cv2.INTER_AREA), 127, 255, cv2.THRESH_BINARY
            )[1]
        self.background: np.ndarray | None = None  # float32 running average at working size
        self.frames = 0
        self.settle = 0  # frames left of fast learning after a re-learn
        self.relearns = 0  # recent whole-frame changes: +1 for each, -1 for each ordinary frame

    def _mask(self) -> np.ndarray | None:
        if not self.config.masks:
            return None
        mask = np.full((self.small[1], self.small[0]), 255, np.uint8)
        for polygon in self.config.masks:
            points = np.array([[round(x * self.scale), round(y * self.scale)] for x, y in polygon], np.int32)
            cv2.fillPoly(mask, [points], 0)
        return mask

    def reset(self) -> None:
        self.background = None
        self.frames = self.settle = self.relearns = 0

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        """The frame at working size, gray, blurred and masked (uint8)."""
        width, height = self.frame_size
        if frame.shape[:2] != (height, width):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the detector expects {width}x{height}"
            )
        if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
            raise ValueError(
                f"expected a gray (H, W) or BGR (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}"
            )
        small = cv2.resize(frame, self.small, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self.blur[0] > 1:
            small = cv2.GaussianBlur(small, self.blur, 0)
        if self.mask is not None:
            small = cv2.bitwise_and(small, self.mask)
        return small

    def _changed(self, gray: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
        _, binary = cv2.threshold(
            cv2.absdiff(gray, background), self.config.threshold, 255, cv2.THRESH_BINARY
        )
        return binary, cv2.countNonZero(binary) / max(self.area, 1.0)

    def _compare(self, gray: np.ndarray, background: np.ndarray, ratio: float) -> tuple[np.ndarray, float]:
        """Changed pixels (binary, fraction) once a global change of brightness is undone.

        The darker of frame and background is brought to the brighter one's level, so both
        saturate in the same places."""
        if abs(ratio - 1.0) <= SAME_LEVEL:
            return self._changed(gray, cv2.convertScaleAbs(background))
        if ratio > 1.0:
            return self._changed(gray, cv2.convertScaleAbs(background, alpha=ratio))
        return self._changed(cv2.convertScaleAbs(gray, alpha=1.0 / ratio), cv2.convertScaleAbs(background))

    def _shift(self, gray: np.ndarray, ratio: float) -> tuple[float, float]:
        """The global shift of the frame against the background (phase correlation) and the
        fraction of pixels still changed once the background is moved by it."""
        assert self.background is not None
        # (phaseCorrelate windows its first input in place: give it a copy)
        (dx, dy), _ = cv2.phaseCorrelate(self.background.copy(), gray.astype(np.float32), self.window)
        shift = float(np.hypot(dx, dy))
        if shift < MIN_SHIFT:
            return shift, 1.0
        moved = cv2.warpAffine(
            self.background, np.float32([[1, 0, dx], [0, 1, dy]]), self.small, borderMode=cv2.BORDER_REPLICATE
        )
        return shift, self._compare(gray, moved, ratio)[1]

    def _spread(self, binary: np.ndarray) -> float:
        """The fraction of (unmasked) grid cells in which pixels changed."""
        cells = cv2.threshold(
            cv2.resize(binary, GRID, interpolation=cv2.INTER_AREA), 255 * CELL_CHANGED, 255, cv2.THRESH_BINARY
        )[1]
        return cv2.countNonZero(cv2.bitwise_and(cells, self.cells)) / max(cv2.countNonZero(self.cells), 1)

    def _relearn(self, gray: np.ndarray, settle: int) -> None:
        self.background = gray.astype(np.float32)
        self.settle = settle

    def process(self, frame: np.ndarray) -> MotionResult:
        gray = self._gray(frame)
        self.frames += 1
        if self.background is None:
            self._relearn(gray, 0)
            return MotionResult(suppressed="calibrating")
        # A global change of brightness (dusk, clouds, auto-exposure) is undone so that only local
        # changes remain. The background itself follows the real brightness, so this only
        # bridges its lag.
        ratio = max(cv2.mean(gray)[0], 1.0) / max(cv2.mean(self.background)[0], 1.0)
        binary, local = self._compare(gray, self.background, ratio)
        if self.frames <= self.config.calibration_frames:
            cv2.accumulateWeighted(gray, self.background, 0.5)
            return MotionResult(changed_fraction=local, suppressed="calibrating")
        raw = (
            local
            if abs(ratio - 1.0) <= SAME_LEVEL
            else self._changed(gray, cv2.convertScaleAbs(self.background))[1]
        )
        spread = self._spread(binary)
        change = Change(raw=raw, local=local, spread=spread)
        if not whole_frame_change(change, self.config) and needs_shift(change, self.config):
            shift, residual = self._shift(gray, ratio)
            change = Change(raw=raw, local=local, spread=spread, shift=shift, residual=residual)
        if whole_frame_change(change, self.config):
            # Lights, IR switch or shake: learn the scene as it is now instead of reporting motion,
            # unless the change goes on: then it is reported (someone may be moving in it).
            self._relearn(gray, SETTLE_FRAMES)
            self.relearns += 1
            if self.relearns <= self.config.relearn_limit:
                return MotionResult(changed_fraction=local, suppressed="whole-frame change")
        else:
            self.relearns = max(0, self.relearns - 1)
            # Fast after a re-learn (the frame it was learnt from had people in it), and the faster
            # the further the frame's brightness is from the background's (dusk, dawn).
            alpha = 0.5 if self.settle else min(0.5, self.config.alpha + abs(ratio - 1.0))
            cv2.accumulateWeighted(gray, self.background, alpha)
            self.settle = max(0, self.settle - 1)
        return MotionResult(boxes=self._boxes(binary), changed_fraction=local)

    def _boxes(self, binary: np.ndarray) -> list[Box]:
        if self.config.dilate_iterations:
            binary = cv2.dilate(binary, self.kernel, iterations=self.config.dilate_iterations)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Box] = []
        s = 1 / self.scale
        for contour in contours:
            if cv2.contourArea(contour) < self.min_pixels:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append((round(x * s), round(y * s), round((x + w) * s), round((y + h) * s)))
        return boxes
