"""The events of one camera while they are recorded, and the cache segments they take.

An event opens an `events.EventWriter` at its start and is given, in order, every completed
segment that overlaps it widened by the pre- and post-roll (the pre-roll already in the cache at
its start, then each new segment as it completes). It is finished once its post-roll is on disk.
Segments no event can want any more are deleted. The decisions are `decide`'s pure functions;
times are recorder times (`timebase`), turned into wall time only when handed to the writer.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cllmh import events as ev
from cllmh.decide import Span, can_discard, segments_to_keep
from cllmh.detect import Detection
from cllmh.source import Segment
from cllmh.timebase import TimeBase

LOG = logging.getLogger("cllmh.recorder")
KEPT_REMEMBERED = 100  # the report lists the last kept events; their count is in `kept_events`


def snapshot(frame_bgr: np.ndarray, det: Detection) -> bytes:
    """JPEG of the frame with the detection's box and label drawn."""
    x1, y1, x2, y2 = det.box
    snap = frame_bgr.copy()
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
    ok, jpeg = cv2.imencode(".jpg", snap)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()


@dataclass
class Event:
    """An event being recorded (times are recorder times)."""

    event_id: str
    start: float
    writer: ev.EventWriter
    end: float | None = None  # set when it ended; finished once its post-roll is on disk
    added_until: float = -math.inf  # end of the last segment given to the writer
    detections: dict[str, Detection] = field(default_factory=dict)
    motion_area: float = 0.0
    # A later part of a long event: the labels that made the event (seen in earlier parts). The part
    # is labelled with them even when its own frames see nothing new (the person stood still or left
    # during the quiet period), so that it is kept and listed as what it is: part of a person event.
    inherited: dict[str, float] = field(default_factory=dict)

    def labels(self) -> dict[str, float]:
        """The event's labels: its own best scores, and the inherited ones where higher."""
        best = dict(self.inherited)
        for label, d in self.detections.items():
            best[label] = max(d.score, best.get(label, 0.0))
        return {label: round(score, 3) for label, score in best.items()}

    def wants(self, seg: Span, *, pre_roll: float, post_roll: float) -> bool:
        """A segment not given yet that overlaps the event (open: until now) widened by the rolls."""
        if seg.end <= self.added_until:
            return False
        span = Span(self.start, math.inf if self.end is None else self.end)
        return segments_to_keep([seg], [span], pre_roll=pre_roll, post_roll=post_roll)[0]


class EventKeeper:
    def __init__(
        self, root: Path, camera: str, *, pre_roll: float, post_roll: float, timebase: TimeBase
    ) -> None:
        self.root = root
        self.camera = camera
        self.pre_roll = pre_roll
        self.post_roll = post_roll
        self.timebase = timebase
        self.info: dict = {}  # copied into every sidecar (model, rolls, analysis and record sizes)
        self.segments: list[Segment] = []  # completed, in the cache, oldest first
        self.closed: list[Event] = []  # ended, waiting for their post-roll segments
        self.event: Event | None = None
        self.kept: deque[Path] = deque(maxlen=KEPT_REMEMBERED)
        self.counts = {"events": 0, "kept_events": 0}

    def open(self, start: float, seen: dict[str, float], part: bool = False) -> None:
        """A new event at `start`, or with `part` the next part of a long one (see `split`), which
        is labelled from the start with `seen`, the labels of the event so far."""
        event_id = uuid.uuid4().hex[:12]
        writer = ev.EventWriter.open(
            self.root, camera=self.camera, event_id=event_id, start=self.timebase.wall(start), info=self.info
        )
        self.event = Event(event_id, start, writer, inherited=dict(seen) if part else {})
        self.counts["events"] += 1
        LOG.info(
            "%s: event %s %s (%s)",
            self.camera,
            event_id,
            "continues in a new part" if part else "started",
            ", ".join(seen),
        )
        if part and self.closed:
            # the part before's snapshot and boxes until this part's own detection replaces them
            before = self.closed[-1]
            snap = before.writer.path / ev.SNAPSHOT
            writer.update(
                labels=self.event.labels(),
                snapshot_jpeg=snap.read_bytes() if snap.is_file() else None,
                boxes={label: list(box) for label, box in before.writer.state["boxes"].items()},
            )
        self._give(self.event, self.segments)  # the pre-roll already in the cache

    def split(self, t: float, labels: dict[str, float]) -> None:
        """A long event is recorded in parts: the open part ends at `t`, the next starts there,
        labelled with `labels` (the event's so far)."""
        self.close(t)
        self.open(t, labels, part=True)

    def sighting(
        self, found: list[Detection], seen: dict[str, float], frame_bgr: np.ndarray | None, motion_area: float
    ) -> None:
        """An analysed frame of the open event: better detections go to the writer, with a snapshot
        when the best score so far improved."""
        event = self.event
        assert event is not None
        event.motion_area = max(event.motion_area, motion_area)
        better = [
            d
            for d in found
            if d.label in seen
            and (d.label not in event.detections or d.score > event.detections[d.label].score)
        ]
        if not better or frame_bgr is None:
            return
        best_before = max((d.score for d in event.detections.values()), default=0.0)
        for d in better:
            event.detections[d.label] = d
        top = max(better, key=lambda d: d.score)
        event.writer.update(
            labels=event.labels(),
            snapshot_jpeg=snapshot(frame_bgr, top) if top.score > best_before else None,
            boxes={label: list(d.box) for label, d in event.detections.items()},
            motion_area=round(event.motion_area, 4),
        )

    def close(self, end: float) -> None:
        event = self.event
        assert event is not None
        event.end = max(end, event.start)
        self.closed.append(event)
        self.event = None
        LOG.info("%s: event %s ended after %.1f s", self.camera, event.event_id, event.end - event.start)

    def _give(self, event: Event, segments: list[Segment]) -> None:
        for seg in segments:
            if event.wants(seg.span, pre_roll=self.pre_roll, post_roll=self.post_roll):
                if not seg.path.exists():
                    LOG.warning(
                        "%s: segment %s vanished before event %s took it",
                        self.camera,
                        seg.path.name,
                        event.event_id,
                    )
                    continue
                event.writer.add_segment(
                    seg.path, self.timebase.wall(seg.span.start), self.timebase.wall(seg.span.end)
                )
                event.added_until = seg.span.end

    def add_segments(self, new: list[Segment]) -> None:
        """Newly completed segments, oldest first: given to every event that wants them."""
        if not new:
            return
        self.segments.extend(new)
        for event in [*self.closed, *([self.event] if self.event else [])]:
            self._give(event, new)

    def _finish(self, event: Event) -> None:
        assert event.end is not None
        path = event.writer.finish(end=self.timebase.wall(event.end))
        if path is None:
            LOG.warning("%s: event %s had no segments on disk", self.camera, event.event_id)
            return
        self.kept.append(path)
        self.counts["kept_events"] += 1
        LOG.info("%s: kept event %s (%s) in %s", self.camera, event.event_id, event.labels(), path)

    def housekeeping(self, final: bool = False) -> None:
        """Finish events whose post-roll is on disk (all ended ones if `final`); delete segments
        nobody can want (all of them if `final`)."""
        newest_end = self.segments[-1].span.end if self.segments else -math.inf
        for event in list(self.closed):
            assert event.end is not None
            if final or newest_end >= event.end + self.post_roll:
                self._finish(event)
                self.closed.remove(event)
        pending = [e.start for e in self.closed] + ([self.event.start] if self.event else [])
        now = self.timebase.latest
        keep: list[Segment] = []
        for seg in self.segments:
            if final or can_discard(
                seg.span, now=now, open_event_start=min(pending, default=None), pre_roll=self.pre_roll
            ):
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
            else:
                keep.append(seg)
        self.segments = keep

    def end_all(self, last_seen: float) -> None:
        """The source is gone: the open event ends at `last_seen`; every event is finished with the
        segments on disk."""
        if self.event is not None:
            self.close(last_seen)
        self.housekeeping(final=True)
