"""The motion recorder of one camera: one ffmpeg, two outputs, Python decisions in between.

ffmpeg reads the camera (the local RTMP restream) once and writes
  1. short fragmented-MP4 segments, copied (`-c copy`, no re-encode), into a bounded cache,
     listed as they complete in segments.csv (file, start, end in stream time);
  2. low-resolution, low-rate raw frames (fps + scale + showinfo) on a pipe for analysis.
Both outputs share the input's timeline, so frame times and segment times compare directly.

Every analysed frame goes through motion detection; frames with motion go (rate-limited) to the
detector on regions around the motion; an event starts when a label of interest is seen in n of
m frames and ends after a quiet period. Segments overlapping an event plus pre/post roll are
copied into the event's directory, with a snapshot of the best detection and a JSON sidecar
written last; the index row follows. Segments no event can want any more are deleted.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cllmh import events as ev
from cllmh.config import load_yaml
from cllmh.decide import DEFAULT_LABELS, EventState, Span, can_discard, interesting, segments_to_keep
from cllmh.detect import Detection, Detector, regions_around
from cllmh.ingest import redact
from cllmh.motion import MotionConfig, MotionDetector

LOG = logging.getLogger("cllmh.recorder")
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\b.*?\bpts_time:\s*([-0-9.]+)")


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    anchors: Path | None = None
    threads: Annotated[int, Field(ge=1, le=8)] = 1
    # per-label score thresholds; "default" for the others
    thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] = {"default": 0.5}

    @model_validator(mode="after")
    def _files_exist(self) -> ModelConfig:
        for name in ("path", "anchors"):
            value = getattr(self, name)
            if value is not None and not value.is_file():
                raise ValueError(f"model {name} {value} does not exist")
        return self


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    source: str
    motion: MotionConfig = MotionConfig()

    @field_validator("source")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(rtmps?|rtsps?|https?|file)://\S+$|^/\S+$", value):
            raise ValueError(f"not a stream URL or file: {redact(value)}")
        return value


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

    @model_validator(mode="after")
    def _consistent(self) -> RecorderConfig:
        if self.event_n > self.event_m:
            raise ValueError(f"event_n ({self.event_n}) cannot exceed event_m ({self.event_m})")
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


def probe_size(source: str, timeout_s: float = 30) -> tuple[int, int]:
    args = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0",
    ]
    if source.startswith("rtsp"):
        args += ["-rtsp_transport", "tcp"]
    out = subprocess.run([*args, source], capture_output=True, text=True, timeout=timeout_s, check=True)
    width, height = (int(v) for v in out.stdout.strip().splitlines()[0].split(",")[:2])
    return width, height


def ffmpeg_command(
    source: str, cache: Path, *, segment_s: float, fps: float, size: tuple[int, int], realtime: bool = False
) -> list[str]:
    """One ffmpeg: copied fMP4 segments + raw analysis frames on stdout (pure)."""
    width, height = size
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info"]
    if realtime:
        args += ["-re"]
    if source.startswith("rtsp"):
        args += ["-rtsp_transport", "tcp"]
    args += [
        "-i",
        source,
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        f"{segment_s:g}",
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        "movflags=+frag_keyframe+empty_moov+default_base_moof",
        "-segment_list",
        str(cache / "segments.csv"),
        "-segment_list_type",
        "csv",
        "-segment_list_flags",
        "+live",
        str(cache / "seg-%08d.mp4"),
        "-map",
        "0:v:0",
        "-vf",
        f"fps={fps:g},scale={width}:{height},showinfo",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "pipe:1",
    ]
    return args


@dataclass
class Segment:
    path: Path
    span: Span


@dataclass
class OpenEvent:
    event_id: str
    start: float  # stream time
    wall_start: float
    state: EventState
    best: tuple[np.ndarray, Detection] | None = None
    detections: dict[str, Detection] = field(default_factory=dict)
    motion_area: float = 0.0
    end: float | None = None


class CameraRecorder:
    def __init__(
        self,
        config: RecorderConfig,
        camera: CameraConfig,
        detector: Detector,
        *,
        realtime_input: bool = False,
    ) -> None:
        self.config = config
        self.camera = camera
        self.detector = detector
        self.realtime_input = realtime_input
        self.cache = config.cache_dir / camera.name
        self.root = config.recordings_dir
        self.segments: list[Segment] = []
        self.closed: list[OpenEvent] = []  # ended, waiting for their post-roll segments
        self.event: OpenEvent | None = None
        self.state = EventState(n=config.event_n, m=config.event_m, quiet_s=config.event_quiet_s)
        self.frame_times: dict[int, float] = {}
        self.cond = threading.Condition()
        self.last_detect = -1e9
        self.stats = {"frames": 0, "motion_frames": 0, "detector_calls": 0, "events": 0}
        self.kept: list[Path] = []
        self.stream_epoch = time.time()

    # -- ffmpeg side ------------------------------------------------------------------------
    def _read_stderr(self, stream) -> None:  # a text line iterator
        for line in stream:
            match = _SHOWINFO.search(line)
            if match:
                with self.cond:
                    self.frame_times[int(match.group(1))] = float(match.group(2))
                    self.cond.notify_all()
            elif "showinfo" not in line and ("error" in line.lower() or "warning" in line.lower()):
                LOG.warning("%s: ffmpeg: %s", self.camera.name, redact(line.strip()))

    def _frame_time(self, n: int) -> float:
        with self.cond:
            self.cond.wait_for(lambda: n in self.frame_times, timeout=5)
            return self.frame_times.pop(n, n / self.config.analysis_fps)

    def _new_segments(self, seen: set[str]) -> None:
        listing = self.cache / "segments.csv"
        if not listing.exists():
            return
        with open(listing, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) >= 3 and row[0] not in seen:
                    seen.add(row[0])
                    self.segments.append(Segment(self.cache / row[0], Span(float(row[1]), float(row[2]))))

    # -- decisions --------------------------------------------------------------------------
    def analyse(self, t: float, frame: np.ndarray, motion: MotionDetector) -> None:
        self.stats["frames"] += 1
        result = motion.process(frame)
        seen: dict[str, float] = {}
        found: list[Detection] = []
        if result.motion:
            self.stats["motion_frames"] += 1
            if t - self.last_detect >= 1 / self.config.detect_max_per_second:
                self.last_detect = t
                regions = regions_around(
                    result.boxes,
                    (frame.shape[1], frame.shape[0]),
                    min_side=min(self.detector.width, frame.shape[0]),
                )
                self.stats["detector_calls"] += len(regions)
                found = self.detector.detect(frame, regions)
                seen = interesting(
                    [(d.label, d.score) for d in found],
                    self.config.model.thresholds,
                    frozenset(self.config.labels),
                )
        transition = self.state.update(t, seen)
        if transition == "start":
            self.event = OpenEvent(
                uuid.uuid4().hex[:12],
                self.state.start or t,
                self.stream_epoch + (self.state.start or t),
                self.state,
            )
            self.stats["events"] += 1
            LOG.info("%s: event %s started (%s)", self.camera.name, self.event.event_id, ", ".join(seen))
        if self.event is not None:
            self.event.motion_area = max(self.event.motion_area, result.changed_fraction)
            for d in found:
                if d.label in seen and (
                    d.label not in self.event.detections or d.score > self.event.detections[d.label].score
                ):
                    self.event.detections[d.label] = d
                    if self.event.best is None or d.score > self.event.best[1].score:
                        self.event.best = (frame.copy(), d)
            too_long = t - self.event.start >= self.config.max_event_s
            if transition == "end" or too_long:
                self.event.end = self.state.last_seen or t
                self.closed.append(self.event)
                LOG.info(
                    "%s: event %s ended after %.1f s",
                    self.camera.name,
                    self.event.event_id,
                    self.event.end - self.event.start,
                )
                self.event = None
                self.state.reset()

    def housekeeping(self, now_stream: float, final: bool = False) -> None:
        """Finish events whose post-roll is on disk; delete segments nobody can want."""
        newest_end = max((s.span.end for s in self.segments), default=0.0)
        for event in list(self.closed):
            assert event.end is not None
            if final or newest_end >= event.end + self.config.post_roll:
                self.finish(event)
                self.closed.remove(event)
        pending_start = min(
            [e.start for e in self.closed] + ([self.event.start] if self.event else []), default=None
        )
        for seg in list(self.segments):
            if final or can_discard(
                seg.span, now=now_stream, open_event_start=pending_start, pre_roll=self.config.pre_roll
            ):
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
                self.segments.remove(seg)

    def finish(self, event: OpenEvent) -> None:
        assert event.end is not None
        spans = [s.span for s in self.segments]
        keep = segments_to_keep(
            spans,
            [Span(event.start, event.end)],
            pre_roll=self.config.pre_roll,
            post_roll=self.config.post_roll,
        )
        chosen = [s for s, k in zip(self.segments, keep, strict=True) if k and s.path.exists()]
        if not chosen:
            LOG.warning("%s: event %s has no segments on disk", self.camera.name, event.event_id)
            return
        path = ev.event_path(self.root, self.camera.name, event.wall_start, event.event_id)
        files: dict[str, int] = {}
        with ev.writing(path):
            for i, seg in enumerate(chosen):
                name = f"clip-{i:03d}.mp4"
                shutil.copyfile(seg.path, path / name)  # copied bytes: no re-encode
                files[name] = (path / name).stat().st_size
            if event.best is not None:
                frame, det = event.best
                x1, y1, x2, y2 = det.box
                snap = frame.copy()
                cv2.rectangle(snap, (x1, y1), (x2, y2), (0, 0, 255), 2)
                cv2.putText(
                    snap,
                    f"{det.label} {det.score:.2f}",
                    (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.5,
                    (0, 0, 255),
                    1,
                )
                cv2.imwrite(str(path / "snapshot.jpg"), snap)
                files["snapshot.jpg"] = (path / "snapshot.jpg").stat().st_size
            labels = {label: round(d.score, 3) for label, d in event.detections.items()}
            sidecar = {
                "camera": self.camera.name,
                "event_id": event.event_id,
                "start": event.wall_start,
                "end": event.wall_start + (event.end - event.start),
                "stream_start": event.start,
                "stream_end": event.end,
                "pre_roll": self.config.pre_roll,
                "post_roll": self.config.post_roll,
                "labels": labels,
                "boxes": {label: list(d.box) for label, d in event.detections.items()},
                "analysis_size": [int(event.best[0].shape[1]), int(event.best[0].shape[0])]
                if event.best
                else None,
                "motion_area": round(event.motion_area, 4),
                "model": self.config.model.path.name,
                "clips": [
                    {"file": f"clip-{i:03d}.mp4", "start": s.span.start, "end": s.span.end}
                    for i, s in enumerate(chosen)
                ],
                "files": files,
            }
            ev.write_json_atomic(path / ev.SIDECAR, sidecar)
        index = ev.Index(self.root)
        try:
            index.add_event(
                event_id=event.event_id,
                camera=self.camera.name,
                start=sidecar["start"],
                end=sidecar["end"],
                labels=labels,
                path=path,
                size_bytes=sum(files.values()),
            )
        finally:
            index.close()
        self.kept.append(path)
        LOG.info("%s: kept event %s (%s) in %s", self.camera.name, event.event_id, labels, path)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> dict:
        stop = stop or threading.Event()
        self.cache.mkdir(parents=True, exist_ok=True)
        for stale in self.cache.glob("*"):  # a previous run's leftovers: nothing can want them
            stale.unlink()
        src_w, src_h = probe_size(self.camera.source)
        width = min(self.config.analysis_width, src_w) // 2 * 2
        height = round(src_h * width / src_w) // 2 * 2
        cmd = ffmpeg_command(
            self.camera.source,
            self.cache,
            segment_s=self.config.segment_seconds,
            fps=self.config.analysis_fps,
            size=(width, height),
            realtime=self.realtime_input,
        )
        self.stream_epoch = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
        assert proc.stdout is not None and proc.stderr is not None
        reader = threading.Thread(
            target=self._read_stderr,
            args=(iter(lambda: proc.stderr.readline().decode("utf-8", "replace"), ""),),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        motion = MotionDetector(self.camera.motion, (width, height))
        frame_bytes = width * height * 3
        seen_segments: set[str] = set()
        n = 0
        t = 0.0
        try:
            while not stop.is_set():
                data = proc.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    break
                t = self._frame_time(n)
                n += 1
                frame = np.frombuffer(data, np.uint8).reshape(height, width, 3)
                self.analyse(t, frame, motion)
                if n % max(1, int(self.config.analysis_fps)) == 0:
                    self._new_segments(seen_segments)
                    self.housekeeping(t)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.stdout.close()  # an ffmpeg blocked writing frames gets EPIPE and exits
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            reader.join(timeout=5)
        self._new_segments(seen_segments)
        if self.event is not None:
            self.event.end = self.state.last_seen or t
            self.closed.append(self.event)
            self.event = None
        self.housekeeping(t, final=True)
        return {**self.stats, "kept": [str(p) for p in self.kept], "exit": proc.returncode}


def report(stats: dict) -> str:
    return json.dumps(stats, indent=2, sort_keys=True)
