"""The motion recorder of one camera: sources, Python decisions in between, the event writer.

Split like Frigate's record/:
- `source.Source` (one ffmpeg run) writes short copied fragmented-MP4 segments into a bounded
  cache and/or gives low-rate yuv420p analysis frames, each with its time; its watchdog says when
  the run is broken. With `detect_url` the camera's substream is decoded for analysis while the
  main stream is only copied into segments; without it one ffmpeg does both.
- `timebase.TimeBase`: recorder time is monotonic across runs; wall time is computed when
  something is written, so a clock step after boot gives events the right wall time.
- decisions stay pure (`decide`): when an event starts and ends, which segments nobody can want.
- `events.EventWriter` writes an event while it happens (index row from its start, snapshot
  within seconds), its segments as they complete, and one joined clip at the end.

Every analysed frame goes through motion detection on its Y plane; frames with motion go
(rate-limited) to the detector, converted to BGR only then, on regions around the motion.

Outages: a network source whose ffmpeg exits or whose watchdog fires is stopped (SIGTERM, then
SIGKILL) and started again with backoff, one log line per restart. An event open at a restart is
ended at its last sighting and finished with what is on disk (its post-roll cut short by the
outage): what was recorded before the outage is kept whole at once, and a person seen after the
source returns starts a new event. A file source ends the recording at its end.
"""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import threading
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cllmh import events as ev
from cllmh.config import load_yaml
from cllmh.decide import DEFAULT_LABELS, EventState, interesting
from cllmh.detect import Detection, Detector, regions_around
from cllmh.ingest import Backoff, redact, redact_text
from cllmh.keeper import EventKeeper
from cllmh.motion import MotionConfig, MotionDetector
from cllmh.names import CAMERA_NAME
from cllmh.source import (
    END,
    Frame,
    FrameSpec,
    SegmentSpec,
    Source,
    input_options,
    is_file_source,
)
from cllmh.timebase import Clock, TimeBase

LOG = logging.getLogger("cllmh.recorder")


def _stream_url(value: str) -> str:
    if not re.match(r"^(rtmps?|rtsps?|https?|file)://\S+$|^/\S+$", value):
        raise ValueError(f"not a stream URL or file: {redact(value)}")
    return value


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    anchors: Path | None = None
    threads: Annotated[int, Field(ge=1, le=8)] = 1
    # per-label score thresholds; "default" for the others (0.5 when not given)
    thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] = {"default": 0.5}

    @field_validator("thresholds")
    @classmethod
    def _not_empty(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError(
                'is empty: give "default" and/or per-label scores, e.g. {default: 0.5, person: 0.6}'
            )
        return value

    @model_validator(mode="after")
    def _files_exist(self) -> ModelConfig:
        for name in ("path", "anchors"):
            value = getattr(self, name)
            if value is not None and not value.is_file():
                raise ValueError(f"model {name} {value} does not exist")
        return self

    @property
    def detector_threshold(self) -> float:
        """The lowest score any label can be kept at: the detector reports nothing below it."""
        return min([*self.thresholds.values(), self.thresholds.get("default", 0.5)])


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=CAMERA_NAME)]
    source: str
    # optional substream for analysis: frames are decoded from it, `source` is only copied
    detect_url: str | None = None
    motion: MotionConfig = MotionConfig()

    @field_validator("source", "detect_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _stream_url(value)


class RecorderConfig(BaseModel):
    """One YAML file per site (rendered by the motion_recorder role); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[CameraConfig]
    model: ModelConfig
    labels: list[str] = sorted(DEFAULT_LABELS)
    recordings_dir: Path = Path("/var/lib/cllmh/recordings")
    cache_dir: Path = Path("/var/lib/cllmh/cache")
    analysis_fps: Annotated[float, Field(gt=0, le=30)] = 5.0
    analysis_width: Annotated[int, Field(ge=160, le=1920)] = 640
    segment_seconds: Annotated[float, Field(ge=1, le=60)] = 4.0
    pre_roll: Annotated[float, Field(ge=0, le=120)] = 5.0
    post_roll: Annotated[float, Field(ge=0, le=300)] = 10.0
    detect_max_per_second: Annotated[float, Field(gt=0, le=30)] = 2.0
    event_n: Annotated[int, Field(ge=1)] = 2
    event_m: Annotated[int, Field(ge=1)] = 5
    event_quiet_s: Annotated[float, Field(gt=0)] = 10.0
    max_event_s: Annotated[float, Field(gt=0)] = 600.0
    # a source that gives no frame for this long (no segment for max(3 x segment_seconds, this))
    # is restarted
    stall_s: Annotated[float, Field(ge=2, le=300)] = 15.0
    backoff_initial: Annotated[float, Field(gt=0, le=60)] = 1.0
    backoff_max: Annotated[float, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> RecorderConfig:
        if self.event_n > self.event_m:
            raise ValueError(f"event_n ({self.event_n}) cannot exceed event_m ({self.event_m})")
        if self.backoff_initial > self.backoff_max:
            raise ValueError(
                f"backoff_initial ({self.backoff_initial}) exceeds backoff_max ({self.backoff_max})"
            )
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique: {names}")
        return self

    def camera(self, name: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise ValueError(f"no camera {name!r} in the configuration (have: {[c.name for c in self.cameras]})")


def load_config(path: Path) -> RecorderConfig:
    """Read and validate the YAML file; raises ValueError with every problem listed."""
    return load_yaml(path, RecorderConfig)


class StreamNotUpError(Exception):
    """The stream cannot be probed (yet)."""


def probe_size(source: str, stop: threading.Event, timeout_s: float = 20) -> tuple[int, int]:
    """Width and height of the first video stream; a stop ends the wait at once."""
    args = ["ffprobe", "-v", "error", *input_options(source, io_timeout_s=timeout_s / 2)]
    args += ["-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", source]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waited = 0.0
    while True:
        try:
            out, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            waited += 0.2
            if stop.is_set() or waited >= timeout_s:
                proc.kill()
                proc.communicate()
                why = "stopped" if stop.is_set() else f"no answer in {timeout_s:g} s"
                raise StreamNotUpError(why) from None
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (err.strip().splitlines() or ["no video stream"])[-1]
        raise StreamNotUpError(redact_text(last))
    width, height = (int(v) for v in lines[0].split(",")[:2])
    return width, height


def analysis_size(source_size: tuple[int, int], width: int) -> tuple[int, int]:
    """Analysis frame size: at most `width` wide, the source's aspect, even sides (pure)."""
    src_w, src_h = source_size
    w = min(width, src_w) // 2 * 2
    return w, max(2, round(src_h * w / src_w) // 2 * 2)


def to_bgr(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    yuv = np.frombuffer(frame.data, np.uint8).reshape(height * 3 // 2, width)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)


def y_plane(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.frombuffer(frame.data, np.uint8, count=width * height).reshape(height, width)


class CameraRecorder:
    def __init__(
        self,
        config: RecorderConfig,
        camera: CameraConfig,
        detector: Detector,
        *,
        realtime_input: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.camera = camera
        self.detector = detector
        self.realtime_input = realtime_input
        self.timebase = TimeBase(clock)
        self.cache = config.cache_dir / camera.name
        self.root = config.recordings_dir
        self.keeper = EventKeeper(
            self.root,
            camera.name,
            pre_roll=config.pre_roll,
            post_roll=config.post_roll,
            timebase=self.timebase,
        )
        self.state = EventState(n=config.event_n, m=config.event_m, quiet_s=config.event_quiet_s)
        self.last_detect = -math.inf
        self.detect_second = (-1, 0)  # (second of recorder time, detector runs in it)
        self.stats = {
            "frames": 0,
            "motion_frames": 0,
            "detector_runs": 0,
            "detector_calls": 0,
            "max_detector_runs_in_a_second": 0,
            "restarts": 0,
            "stream_seconds": 0.0,
        }
        self.size = (0, 0)
        self.run_number = 0
        self.frames_source: Source | None = None
        self.segments_source: Source | None = None
        self.first_t: float | None = None
        self.last_t = 0.0

    # -- sources -------------------------------------------------------------------------------
    @property
    def sources(self) -> list[Source]:
        found = [s for s in (self.segments_source, self.frames_source) if s is not None]
        return list(dict.fromkeys(found))  # one object when one ffmpeg does both

    def _probe(self, stop: threading.Event, backoff: Backoff) -> bool:
        """Analysis (and record) sizes, retried with backoff while the stream is not up."""
        failures = 0
        while not stop.is_set():
            try:
                analysed = probe_size(self.camera.detect_url or self.camera.source, stop)
                recorded = probe_size(self.camera.source, stop) if self.camera.detect_url else analysed
            except StreamNotUpError as exc:
                if stop.is_set():
                    break
                failures += 1
                wait = backoff.delay(failures)
                LOG.warning(
                    "%s: stream %s not readable yet (%s); retrying in %.1f s",
                    self.camera.name,
                    redact(self.camera.detect_url or self.camera.source),
                    exc,
                    wait,
                )
                stop.wait(wait)
                continue
            self.size = analysis_size(analysed, self.config.analysis_width)
            self.keeper.info = {
                "model": self.config.model.path.name,
                "pre_roll": self.config.pre_roll,
                "post_roll": self.config.post_roll,
                "analysis_size": list(self.size),
                "record_size": list(recorded),
            }
            return True
        return False

    def _start_sources(self) -> None:
        self.run_number += 1
        segments = SegmentSpec(self.cache, self.config.segment_seconds)
        frames = FrameSpec(*self.size, self.config.analysis_fps)
        common = {
            "run": self.run_number,
            "timebase": self.timebase,
            "stall_s": self.config.stall_s,
            "realtime": self.realtime_input,
        }
        if self.camera.detect_url:
            self.segments_source = Source(
                self.camera.name, self.camera.source, segments=segments, frames=None, **common
            )
            self.frames_source = Source(
                f"{self.camera.name}/detect", self.camera.detect_url, segments=None, frames=frames, **common
            )
        else:
            self.segments_source = self.frames_source = Source(
                self.camera.name, self.camera.source, segments=segments, frames=frames, **common
            )
        for source in self.sources:
            source.start()

    def _stop_sources(self) -> None:
        for source in self.sources:
            source.stop()
        if any(source.timeline_broken for source in self.sources) and self.segments_source is not None:
            # the segment being written when the timestamps went back holds packets from both
            # timelines (ffmpeg clamps their dts): it would break any clip it is joined into
            dropped = self.segments_source.new_segments()
            for seg in dropped:
                seg.path.unlink(missing_ok=True)
            if dropped:
                LOG.warning(
                    "%s: dropped %d segment(s) written across the timestamp break",
                    self.camera.name,
                    len(dropped),
                )
        else:
            self._collect_segments()  # the last cut, written at ffmpeg's exit
        known = {seg.path for seg in self.keeper.segments}
        for source in self.sources:
            if source.segments is not None:
                source.segments.listing(source.run_number).unlink(missing_ok=True)
                for leftover in source.segments.cache.glob(
                    source.segments.pattern(source.run_number).name.replace("%08d", "*")
                ):
                    if leftover not in known:  # never listed: ffmpeg was killed while writing it
                        leftover.unlink(missing_ok=True)
        self.frames_source = self.segments_source = None

    def _collect_segments(self) -> None:
        if self.segments_source is not None:
            self.keeper.add_segments(self.segments_source.new_segments())

    def _health(self) -> str | None:
        for source in self.sources:
            code = source.exited()
            if code is not None and source is not self.frames_source:
                return f"ffmpeg exited with code {code}"
            problem = source.health()
            if problem:
                return problem
        return None

    # -- decisions -----------------------------------------------------------------------------
    def analyse(self, t: float, frame: Frame, motion: MotionDetector) -> None:
        self.stats["frames"] += 1
        result = motion.process(y_plane(frame, self.size))
        seen: dict[str, float] = {}
        found: list[Detection] = []
        bgr: np.ndarray | None = None
        if result.motion:
            self.stats["motion_frames"] += 1
            if t - self.last_detect >= 1 / self.config.detect_max_per_second:
                self.last_detect = t
                self._count_detector_run(t)
                bgr = to_bgr(frame, self.size)
                regions = regions_around(
                    result.boxes, self.size, min_side=min(self.detector.width, self.size[1])
                )
                self.stats["detector_calls"] += len(regions)
                found = self.detector.detect(bgr, regions)
                seen = interesting(
                    [(d.label, d.score) for d in found],
                    self.config.model.thresholds,
                    frozenset(self.config.labels),
                )
        transition = self.state.update(t, seen)
        if transition == "start":
            self.keeper.open(self.state.start if self.state.start is not None else t, seen)
        event = self.keeper.event
        if event is None:
            return
        self.keeper.sighting(found, seen, bgr, result.changed_fraction)
        if transition == "end":
            self.keeper.close(self.state.last_seen if self.state.last_seen is not None else t)
            self.state.reset()
        elif t - event.start >= self.config.max_event_s:
            # a long event is recorded in parts: this part ends here, the next starts here
            self.keeper.split(t, dict(self.state.labels))

    def _count_detector_run(self, t: float) -> None:
        self.stats["detector_runs"] += 1
        second, runs = self.detect_second
        runs = runs + 1 if int(t) == second else 1
        self.detect_second = (int(t), runs)
        self.stats["max_detector_runs_in_a_second"] = max(self.stats["max_detector_runs_in_a_second"], runs)

    def _end_events(self) -> None:
        self.keeper.end_all(self.state.last_seen if self.state.last_seen is not None else self.last_t)
        self.state.reset()

    # -- the loop ------------------------------------------------------------------------------
    def _clear_cache(self) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        for kept in ev.recover_open_events(self.root, self.camera.name, self.cache):
            LOG.warning(
                "%s: kept event %s left open by a killed recorder (truncated)", self.camera.name, kept
            )
        for stale in self.cache.glob("*"):  # a previous run's leftovers: nothing can want them now
            stale.unlink()

    def run(self, stop: threading.Event | None = None) -> dict:
        stop = stop or threading.Event()
        backoff = Backoff(initial=self.config.backoff_initial, maximum=self.config.backoff_max)
        self._clear_cache()
        file_source = is_file_source(self.camera.detect_url or self.camera.source)
        failures = 0
        if self._probe(stop, backoff):
            motion = MotionDetector(self.camera.motion, self.size)
            while not stop.is_set():
                started = self.timebase.now()
                self._start_sources()
                reason = self._record(stop, motion)
                last_words = " | ".join(line for source in self.sources for line in list(source.tail)[-2:])
                ended_normally = reason is None or (file_source and reason == "end of input")
                self._stop_sources()
                self._end_events()
                motion.reset()
                if stop.is_set() or ended_normally:
                    break
                lasted = self.timebase.now() - started
                failures = backoff.failures_after(failures, lasted)
                wait = backoff.delay(failures)
                self.stats["restarts"] += 1
                LOG.warning(
                    "%s: restarting ffmpeg: %s (run %d lasted %.0f s); next try in %.1f s; last words: %s",
                    self.camera.name,
                    reason,
                    self.run_number,
                    lasted,
                    wait,
                    last_words or "-",
                )
                stop.wait(wait)
        self._stop_sources()
        self._end_events()
        self.stats["stream_seconds"] = round(self.last_t - (self.first_t or self.last_t), 3)
        return {**self.stats, **self.keeper.counts, "kept": [str(p) for p in self.keeper.kept]}

    def _record(self, stop: threading.Event, motion: MotionDetector) -> str | None:
        """One run of the sources; returns why it ended (None: stopped)."""
        assert self.frames_source is not None
        next_tick = self.timebase.now()
        while not stop.is_set():
            frame = self.frames_source.next_frame(timeout=0.5)
            if frame is END:
                code = self.frames_source.stop()
                return "end of input" if code == 0 else f"ffmpeg exited with code {code}"
            every = max(1, round(self.config.analysis_fps))  # about once a second of stream time
            if isinstance(frame, Frame):
                self.first_t = frame.t if self.first_t is None else self.first_t
                self.last_t = frame.t
                self.analyse(frame.t, frame, motion)
            if self.timebase.now() >= next_tick or (
                isinstance(frame, Frame) and self.stats["frames"] % every == 0
            ):
                next_tick = self.timebase.now() + 1.0
                self._collect_segments()
                self.keeper.housekeeping()
                problem = self._health()
                if problem:
                    return problem
        return None


def report(stats: dict) -> str:
    return json.dumps(stats, indent=2, sort_keys=True)
