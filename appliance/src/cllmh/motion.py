"""Cheap motion detection by frame differencing, run on every analysed frame.

Gray -> downscale -> blur -> difference against a running average (after undoing a global
change of brightness) -> threshold -> dilate -> contours -> boxes above a minimum area, with a
per-camera mask, a calibration period after start, and suppression of whole-frame changes
(lights switching, IR day/night switch, camera shake), after which the background is re-learnt
instead of reporting motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in full-frame pixels


class MotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: Annotated[int, Field(ge=80, le=1280)] = 320
    blur: Annotated[int, Field(ge=1, le=31)] = 7
    alpha: Annotated[float, Field(gt=0, lt=1, description="weight of a new frame in the background")] = 0.05
    threshold: Annotated[int, Field(ge=1, le=255)] = 25
    dilate_iterations: Annotated[int, Field(ge=0, le=10)] = 2
    min_area: Annotated[float, Field(gt=0, lt=1, description="fraction of the frame")] = 0.001
    calibration_frames: Annotated[int, Field(ge=0)] = 10
    whole_frame_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    # Polygons (full-frame pixel coordinates) where motion is ignored (trees, a road, a clock).
    masks: list[list[tuple[int, int]]] = []


@dataclass
class MotionResult:
    boxes: list[Box] = field(default_factory=list)
    changed_fraction: float = 0.0
    suppressed: str | None = None  # "calibrating" or "whole-frame change"

    @property
    def motion(self) -> bool:
        return bool(self.boxes)


class MotionDetector:
    def __init__(self, config: MotionConfig, frame_size: tuple[int, int]) -> None:
        self.config = config
        width, height = frame_size
        self.scale = config.width / width
        self.small = (config.width, max(1, round(height * self.scale)))
        self.mask = self._mask(frame_size)
        self.background: np.ndarray | None = None
        self.frames = 0
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        blur = config.blur if config.blur % 2 else config.blur + 1
        self.blur = (blur, blur)

    def _mask(self, frame_size: tuple[int, int]) -> np.ndarray | None:
        if not self.config.masks:
            return None
        mask = np.full((self.small[1], self.small[0]), 255, np.uint8)
        for polygon in self.config.masks:
            points = np.array([[round(x * self.scale), round(y * self.scale)] for x, y in polygon], np.int32)
            cv2.fillPoly(mask, [points], 0)
        return mask

    def reset(self) -> None:
        self.background = None
        self.frames = 0

    def process(self, frame_bgr: np.ndarray) -> MotionResult:
        if frame_bgr.ndim == 2:  # already gray: the Y plane of a yuv420p frame
            gray = cv2.resize(frame_bgr, self.small, interpolation=cv2.INTER_AREA)
        else:
            gray = cv2.cvtColor(
                cv2.resize(frame_bgr, self.small, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
            )
        gray = cv2.GaussianBlur(gray, self.blur, 0)
        if self.mask is not None:
            gray = cv2.bitwise_and(gray, self.mask)
        self.frames += 1
        if self.background is None:
            self.background = gray.astype(np.float32)
            return MotionResult(suppressed="calibrating")
        background = cv2.convertScaleAbs(self.background)
        _, raw = cv2.threshold(cv2.absdiff(gray, background), self.config.threshold, 255, cv2.THRESH_BINARY)
        raw_changed = float(np.count_nonzero(raw)) / raw.size
        # A global change of brightness (dusk, clouds, auto-exposure) scales every pixel: undo it
        # so that only local changes remain.
        gain = float(self.background.mean()) / max(float(gray.mean()), 1.0)
        if abs(gain - 1.0) > 0.02:
            gray = cv2.convertScaleAbs(gray, alpha=gain)
        diff = cv2.absdiff(gray, background)
        _, binary = cv2.threshold(diff, self.config.threshold, 255, cv2.THRESH_BINARY)
        changed = float(np.count_nonzero(binary)) / binary.size
        if self.frames <= self.config.calibration_frames:
            cv2.accumulateWeighted(gray, self.background, 0.5)
            return MotionResult(changed_fraction=changed, suppressed="calibrating")
        if raw_changed >= self.config.whole_frame_fraction:
            # Lights, IR switch or shake: learn the new scene instead of reporting motion.
            self.background = gray.astype(np.float32)
            self.frames = 1
            return MotionResult(changed_fraction=changed, suppressed="whole-frame change")
        cv2.accumulateWeighted(gray, self.background, self.config.alpha)
        binary = cv2.dilate(binary, self.kernel, iterations=self.config.dilate_iterations)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_pixels = self.config.min_area * binary.size
        boxes: list[Box] = []
        for contour in contours:
            if cv2.contourArea(contour) < min_pixels:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            s = 1 / self.scale
            boxes.append((round(x * s), round(y * s), round((x + w) * s), round((y + h) * s)))
        return MotionResult(boxes=boxes, changed_fraction=changed)
