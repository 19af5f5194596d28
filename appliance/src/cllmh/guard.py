"""Storage guard: keep free space above a floor so that recording never stops.

The floor is the larger of a percentage of the filesystem and `floor_hours` of recording at
the measured write rate of the cameras (growth of the recorder's segment cache). Space is
reclaimed whole events at a time, lowest retention class first (other, then vehicle, then
person), oldest first, events past their class's retention days before younger ones. Events
older than their class's maximum age always go. An event that is still being written (its
lock is held) is never touched. An event whose event.json is malformed is never deleted by age
(its age and class are unknown) but goes first under space pressure, dated by its directory's
mtime. The decisions are pure functions (`plan`, `plan_cache`, `RateMeter`); `Guard` does the
I/O; `read_status` reads the service's stored status without writing anything.

Logs on the recordings' filesystem (`log_dirs`, e.g. syslog-ng's per-host files on a one-disk
box) count like any other use up to `log_cap_bytes`; what they hold beyond that cap (a LAN log
flood between two logrotate runs) is never reclaimed from recordings: the guard warns instead
and logrotate's size caps take it back (issue 14, finding 6). Logs on another filesystem do not
touch the recordings' free space and are not counted.

An event a technician marked "keep" (`events.set_keep`) is never deleted, by age or for space.
Kept events can therefore fill the disk on their own: the guard then deletes every other event it
may and lets free space stay below the floor, logs an error once and reports `kept_fill` in its
status (the status page shows catalogue message `warn.kept_fill`); recording goes on until the disk
is full, and only unmarking events (or a bigger disk) gives the space back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import psutil
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cllmh import dbread
from cllmh import events as ev
from cllmh.config import load_yaml
from cllmh.events import EventInfo, RetentionClass

LOG = logging.getLogger("cllmh.guard")
DAY = 86400.0


class ClassRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: Annotated[float, Field(gt=0, description="kept this long while space allows")]
    max_age_days: Annotated[float, Field(gt=0, description="never kept longer")]

    @model_validator(mode="after")
    def _max_at_least_days(self) -> ClassRetention:
        if self.max_age_days < self.days:
            raise ValueError(f"max_age_days ({self.max_age_days}) is shorter than days ({self.days})")
        return self


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: ClassRetention = ClassRetention(days=30, max_age_days=90)
    vehicle: ClassRetention = ClassRetention(days=14, max_age_days=60)
    other: ClassRetention = ClassRetention(days=3, max_age_days=14)

    def of(self, retention: RetentionClass) -> ClassRetention:
        return getattr(self, retention.label)

    @model_validator(mode="after")
    def _ordered(self) -> Retention:
        if not self.person.days >= self.vehicle.days >= self.other.days:
            raise ValueError("retention days must not decrease from person to vehicle to other")
        return self


# Directories the guard must never treat as its recordings root or segment cache: it deletes
# what it finds there. Exactly these (the system's own and the appliance's data root, which holds
# recordings, cache and HLS side by side) ...
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/local",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/lib/cllmh",
        "/var/log",
        "/var/spool",
        "/var/tmp",
    }
)
# ... and anything below these.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr")


def system_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be a directory the guard deletes in, or None (pure but for symlinks)."""
    if not path.is_absolute():
        return "must be an absolute path"
    lexical = "/" + os.path.normpath(path).lstrip("/")  # normpath keeps a leading "//"
    for norm in dict.fromkeys((lexical, os.path.realpath(path))):
        if norm in SYSTEM_DIRS or any(norm.startswith(tree + "/") for tree in SYSTEM_TREES):
            shown = norm if norm == lexical else f"{lexical} (which is {norm})"
            return (
                f"{shown} is a system directory: the guard deletes what it finds there; "
                "use a directory of its own, e.g. /var/lib/cllmh/recordings"
            )
    return None


class GuardConfig(BaseModel):
    """The guard's YAML configuration (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    recordings_dir: Path = Path("/var/lib/cllmh/recordings")
    cache_dir: Path = Path("/var/lib/cllmh/cache")
    cache_max_bytes: Annotated[int, Field(ge=0)] = 2 * 1024**3
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    floor_percent: Annotated[float, Field(ge=1, le=90)] = 10.0
    floor_hours: Annotated[float, Field(ge=0, le=720)] = 2.0
    # Reclaim a little more than the floor so the guard does not work on every tick.
    headroom_percent: Annotated[float, Field(ge=0, le=50)] = 2.0
    rate_window_s: Annotated[float, Field(gt=0)] = 600.0
    orphan_grace_s: Annotated[float, Field(ge=0)] = 3600.0
    retention: Retention = Retention()
    # Log directories that may share the recordings' filesystem, and what they may hold there
    # before the excess stops counting against recordings.
    log_dirs: list[Path] = [Path("/var/log/cctv")]
    log_cap_bytes: Annotated[int, Field(ge=0)] = 1024**3

    @field_validator("log_dirs")
    @classmethod
    def _absolute(cls, paths: list[Path]) -> list[Path]:
        relative = [str(p) for p in paths if not p.is_absolute()]
        if relative:
            raise ValueError(f"log directories must be absolute paths: {relative}")
        return paths

    @field_validator("recordings_dir", "cache_dir")
    @classmethod
    def _own_directory(cls, path: Path) -> Path:
        problem = system_dir_problem(path)
        if problem is not None:
            raise ValueError(problem)
        return Path(os.path.normpath(path))

    @model_validator(mode="after")
    def _apart(self) -> GuardConfig:
        rec, cache = self.recordings_dir, self.cache_dir
        if rec == cache or rec in cache.parents or cache in rec.parents:
            raise ValueError(
                f"recordings_dir ({rec}) and cache_dir ({cache}) must be separate directories, "
                "neither inside the other: the guard deletes events in one and segments in the other"
            )
        return self


def load_config(path: Path) -> GuardConfig:
    """Read and validate the YAML file; raises ValueError with every problem listed."""
    return load_yaml(path, GuardConfig)


@dataclass(frozen=True)
class Deletion:
    event: EventInfo
    reason: str
    level: int  # logging level: INFO for age/orphans, WARNING for space, ERROR for person events


def floor_bytes(total: int, rate_bytes_per_s: float, config: GuardConfig) -> int:
    """Free space to keep: the larger of the percentage floor and `floor_hours` of recording."""
    return int(max(total * config.floor_percent / 100, rate_bytes_per_s * config.floor_hours * 3600))


def log_excess(log_bytes: int, config: GuardConfig) -> int:
    """Bytes the logs on the recordings' filesystem hold beyond their cap (pure)."""
    return max(0, log_bytes - config.log_cap_bytes)


def plan(
    events: Iterable[EventInfo],
    *,
    now: float,
    total: int,
    free: int,
    rate_bytes_per_s: float,
    config: GuardConfig,
    log_bytes: int = 0,
    kept: frozenset[str] = frozenset(),
) -> list[Deletion]:
    """Which events to delete now, in order (pure). `log_bytes`: what the log directories hold on
    the recordings' filesystem; space they take beyond `log_cap_bytes` is not reclaimed from
    recordings (it counts as free). `kept`: ids of events marked "keep", never deleted."""
    free += log_excess(log_bytes, config)
    chosen: list[Deletion] = []
    keep: list[EventInfo] = []
    malformed: list[EventInfo] = []
    for event in events:
        if event.in_progress:
            continue  # a writer holds it
        if event.event_id in kept:
            continue  # marked "keep" by a technician: neither age nor space takes it
        if event.malformed is not None:
            malformed.append(event)  # age and class unknown: only for space, and first
            continue
        if not event.complete:
            if now - event.mtime >= config.orphan_grace_s:
                chosen.append(Deletion(event, "incomplete event whose writer is gone", logging.INFO))
            continue
        limit = config.retention.of(event.retention).max_age_days * DAY
        if now - event.start >= limit:
            age_days = (now - event.start) / DAY
            chosen.append(Deletion(event, f"older than {limit / DAY:g} days ({age_days:.1f})", logging.INFO))
        else:
            keep.append(event)

    freed = sum(d.event.size_bytes for d in chosen)
    floor = floor_bytes(total, rate_bytes_per_s, config)
    if free + freed >= floor:
        return chosen
    target = floor + total * config.headroom_percent / 100

    def order(event: EventInfo) -> tuple[int, int, float]:
        within_days = now - event.start < config.retention.of(event.retention).days * DAY
        return (int(within_days), int(event.retention), event.start)

    candidates = sorted(malformed, key=lambda e: e.mtime) + sorted(keep, key=order)
    for event in candidates:
        if free + freed >= target:
            break
        level = logging.ERROR if event.retention is RetentionClass.PERSON else logging.WARNING
        reason = (
            f"free space below the floor ({(free + freed) / 1e6:.0f} MB free, floor {floor / 1e6:.0f} MB)"
        )
        if event.malformed is not None:
            reason += f"; its event.json is malformed ({event.malformed})"
        chosen.append(Deletion(event, reason, level))
        freed += event.size_bytes
    return chosen


def kept_fill(free_after: int, floor: int, kept_bytes: int) -> bool:
    """Whether kept events hold the space the floor needs (pure): after this tick's deletions free
    space is still below the floor while events marked "keep" hold some. (The plan deleted all it
    could to reach the floor, so what is left besides events being written is kept or logs.)"""
    return kept_bytes > 0 and free_after < floor


# A keep mark whose event is not on disk (deleted by hand, or never finished) is removed after this
# long; the grace covers a mark set for an event the scan has not listed yet.
STALE_MARK_S = 3600.0


def stale_marks(marks: dict[str, float], on_disk: set[str], now: float) -> list[str]:
    """Keep marks (id -> mark mtime) of events that are gone, old enough to remove (pure)."""
    return sorted(i for i, at in marks.items() if i not in on_disk and now - at >= STALE_MARK_S)


@dataclass(frozen=True)
class Segment:
    path: Path
    size: int
    mtime: float


def plan_cache(segments: Iterable[Segment], max_bytes: int) -> list[Segment]:
    """Oldest cache segments to delete so the cache fits `max_bytes`; the newest segment of each
    camera directory (the one ffmpeg is writing) is never chosen (pure)."""
    by_dir: dict[Path, list[Segment]] = {}
    for seg in segments:
        by_dir.setdefault(seg.path.parent, []).append(seg)
    total = sum(s.size for group in by_dir.values() for s in group)
    deletable = sorted(
        (s for group in by_dir.values() for s in sorted(group, key=lambda s: s.mtime)[:-1]),
        key=lambda s: s.mtime,
    )
    chosen: list[Segment] = []
    for seg in deletable:
        if total <= max_bytes:
            break
        chosen.append(seg)
        total -= seg.size
    return chosen


class RateMeter:
    """Write rate of the cameras, from the growth of the segment files seen on each tick."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.last: dict[str, int] = {}
        self.samples: deque[tuple[float, int]] = deque()

    def update(self, sizes: dict[str, int], now: float) -> float:
        grown = sum(max(0, size - self.last.get(name, 0)) for name, size in sizes.items())
        if self.last or not self.samples:
            self.samples.append((now, grown if self.last else 0))
        self.last = dict(sizes)
        while self.samples and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        return self.rate()

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        span = self.samples[-1][0] - self.samples[0][0]
        return sum(b for _, b in list(self.samples)[1:]) / span if span > 0 else 0.0


def disk_bytes(dirs: Iterable[Path], device: int) -> tuple[int, list[str]]:
    """Bytes allocated to the files under `dirs` that live on filesystem `device` (st_dev), and the
    paths that could not be read. Files elsewhere (another disk) do not take the recordings' space."""
    total = 0
    problems: list[str] = []
    stack = [d for d in dirs if d.exists()]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # rotated away meanwhile
                    if st.st_dev != device:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        total += st.st_blocks * 512
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{directory}: {exc.strerror or exc}")
    return total, problems


# How long an event that could not be deleted is left out of the plan before it is tried again.
RETRY_STUCK_S = 600.0


class Guard:
    """Runs the plan against the real filesystem and keeps the status in the index.

    `publish_status=False` (a one-off `cllmh guard --once`) acts the same but leaves the stored
    status alone: that is the running service's, with its measured write rate.
    """

    def __init__(self, config: GuardConfig, *, publish_status: bool = True) -> None:
        self.config = config
        self.publish_status = publish_status
        self.root = config.recordings_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.trash = self.root / ev.TRASH_NAME
        self.index = ev.Index(self.root)
        self.scanner = ev.Scanner(self.root)
        self.rate = RateMeter(config.rate_window_s)
        # Deletions not yet recorded in the index because the disk was completely full.
        self.unrecorded: list[tuple[Deletion, float]] = []
        # Events that could not be moved out of place (path -> when): left out of the plan for
        # RETRY_STUCK_S so the space comes from others; bounded by the events on disk.
        self.stuck: dict[Path, float] = {}
        # Malformed events already reported (path -> problem); bounded by the events on disk.
        self.reported: dict[Path, str] = {}
        # Whether the logs were over their cap on the last tick, and the unreadable log paths
        # already reported (each warned once, not on every tick).
        self.logs_over_cap = False
        self.log_problems: set[str] = set()
        # Whether kept events held the floor's space on the last tick (the error is logged once).
        self.kept_fill = False
        self.empty_trash()

    def empty_trash(self, now: float | None = None) -> None:
        """Finish deletions a killed guard left behind; record those it had not recorded yet."""
        now = time.time() if now is None else now
        if not self.trash.is_dir():
            return
        for entry in self.trash.iterdir():
            try:
                if self.index.finish_interrupted(entry.name, "deletion interrupted by a restart", now):
                    LOG.warning("finished deleting %s (interrupted by a restart)", entry.name)
            except sqlite3.OperationalError as exc:
                LOG.warning("cannot record the interrupted deletion of %s: %s", entry.name, exc)
            shutil.rmtree(entry, ignore_errors=True)

    def cache_segments(self) -> list[Segment]:
        segments = []
        if self.config.cache_dir.is_dir():
            for path in self.config.cache_dir.glob("*/*"):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if path.is_file():
                    segments.append(Segment(path, st.st_size, st.st_mtime))
        return segments

    def delete_event(self, deletion: Deletion, now: float) -> None:
        """Delete one whole event. Raises OSError, with nothing changed (files and index row in
        place, no deletion recorded), when the event cannot be moved out of place."""
        event = deletion.event
        self.trash.mkdir(exist_ok=True)
        doomed = self.trash / f"{event.camera}--{event.event_id}"
        # One atomic rename inside the index transaction that drops the row and records the
        # deletion: the transaction commits only if the rename succeeded. An event is either whole
        # in place or in the trash; a kill between the rename and the commit leaves the row of an
        # event in the trash, which the next start records as deleted (empty_trash).
        moved = False
        try:
            with self.index.removing(event, deletion.reason, now):
                os.rename(event.path, doomed)
                moved = True
        except sqlite3.OperationalError as exc:
            # A completely full disk cannot take even the index update: free the space first;
            # the next sync drops the row and the deletion is recorded once there is room.
            LOG.warning("index not writable (%s); deleting %s first", exc, event.event_id)
            if not moved:
                os.rename(event.path, doomed)
            self.unrecorded.append((deletion, now))
        shutil.rmtree(doomed, ignore_errors=True)
        LOG.log(
            deletion.level,
            "deleted %s event %s of camera %s (%.1f MB, started %s): %s",
            "malformed" if event.malformed is not None else event.retention.label,
            event.event_id,
            event.camera,
            event.size_bytes / 1e6,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.start)),
            deletion.reason,
        )

    def report_malformed(self, events: list[EventInfo]) -> None:
        """Log each malformed event once (not on every tick)."""
        current = {e.path: e.malformed for e in events if e.malformed is not None and not e.in_progress}
        for path, problem in current.items():
            if self.reported.get(path) != problem:
                LOG.error(
                    "skipping event %s: malformed event.json (%s); it is never deleted by age, "
                    "only first when space is short",
                    path,
                    problem,
                )
        self.reported = current

    def tick(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        segments = self.cache_segments()
        rate = self.rate.update({str(s.path): s.size for s in segments}, now)
        for seg in plan_cache(segments, self.config.cache_max_bytes):
            try:
                seg.path.unlink()
                LOG.warning(
                    "deleted cache segment %s: cache above %d bytes", seg.path, self.config.cache_max_bytes
                )
            except FileNotFoundError:
                pass
        events = self.scanner.scan()
        self.report_malformed(events)
        try:
            self.index.sync(events)
        except sqlite3.OperationalError as exc:
            LOG.warning("cannot update the index before deleting (%s)", exc)
        on_disk = {e.path for e in events}
        self.stuck = {p: at for p, at in self.stuck.items() if p in on_disk and now - at < RETRY_STUCK_S}
        usage = psutil.disk_usage(str(self.root))
        logs = self.measure_logs()
        kept = self.keep_marks(events, now)
        deleted = 0
        for deletion in plan(
            [e for e in events if e.path not in self.stuck],
            now=now,
            total=usage.total,
            free=usage.free,
            rate_bytes_per_s=rate,
            config=self.config,
            log_bytes=logs,
            kept=kept,
        ):
            try:
                self.delete_event(deletion, now)
                deleted += 1
            except FileNotFoundError:
                continue
            except OSError as exc:  # this one stays; the others are still deleted
                self.stuck[deletion.event.path] = now
                LOG.error(
                    "cannot delete event %s (%s); left in place and in the index, retried in %g s",
                    deletion.event.path,
                    exc.strerror or exc,
                    RETRY_STUCK_S,
                )
        self.record_unrecorded(events)
        usage = psutil.disk_usage(str(self.root))
        count, deleted_bytes = self.index.deletions_since(now - DAY)
        kept_events = [e for e in events if e.event_id in kept]
        kept_bytes = sum(e.size_bytes for e in kept_events)
        floor = floor_bytes(usage.total, rate, self.config)
        free_counted = usage.free + log_excess(logs, self.config)  # as the plan counts it
        self.report_kept_fill(kept_fill(free_counted, floor, kept_bytes), kept_bytes)
        status = {
            "total_bytes": usage.total,
            "used_bytes": usage.used,
            "free_bytes": usage.free,
            "free_percent": round(100 * usage.free / usage.total, 2) if usage.total else 0.0,
            "write_rate_bytes_per_s": round(rate, 1),
            "hours_left": round(usage.free / rate / 3600, 2) if rate > 0 else None,
            "floor_bytes": floor,
            "deletions_24h": count,
            "deleted_bytes_24h": deleted_bytes,
            "events": len(events) - deleted,
            "malformed_events": len(self.reported),
            "undeletable_events": len(self.stuck),
            "log_bytes": logs,
            "log_cap_bytes": self.config.log_cap_bytes,
            "kept_events": len(kept_events),
            "kept_bytes": kept_bytes,
            "kept_fill": self.kept_fill,
        }
        if self.publish_status:
            try:
                self.index.set_status(status, now)
            except sqlite3.OperationalError as exc:
                LOG.warning("cannot store the status: %s", exc)
        return status

    def keep_marks(self, events: list[EventInfo], now: float) -> frozenset[str]:
        """The events marked "keep"; marks of events long gone are removed (bounded)."""
        kept = ev.kept_ids(self.root)
        marks = {}
        for event_id in kept:
            with contextlib.suppress(FileNotFoundError):
                marks[event_id] = (self.root / ev.KEEP_NAME / event_id).stat().st_mtime
        for event_id in stale_marks(marks, {e.event_id for e in events}, now):
            with contextlib.suppress(OSError):
                ev.set_keep(self.root, event_id, False)
                LOG.info("removed the keep mark of event %s: the event is gone", event_id)
        return kept

    def report_kept_fill(self, filling: bool, kept_bytes: int) -> None:
        if filling and not self.kept_fill:
            LOG.error(
                "free space is below the floor and events marked keep hold %.1f MB: they are never "
                "deleted; unmark events that need not be kept, or recording stops when the disk is full",
                kept_bytes / 1e6,
            )
        elif self.kept_fill and not filling:
            LOG.warning("free space is above the floor again beside the kept events")
        self.kept_fill = filling

    def measure_logs(self) -> int:
        """What the log directories hold on the recordings' filesystem; warns when they go over
        their cap (and when they are back under it) and about unreadable paths, once each."""
        logs, problems = disk_bytes(self.config.log_dirs, self.root.stat().st_dev)
        for problem in sorted(set(problems) - self.log_problems):
            LOG.warning(
                "cannot measure log directory %s; what it holds counts as ordinary used space", problem
            )
        self.log_problems = set(problems)
        over = log_excess(logs, self.config) > 0
        if over and not self.logs_over_cap:
            LOG.error(
                "logs on the recordings' disk hold %.1f MB, over their cap of %.1f MB (a log flood?): "
                "no recording is deleted for that space; logrotate's size limits take it back",
                logs / 1e6,
                self.config.log_cap_bytes / 1e6,
            )
        elif self.logs_over_cap and not over:
            LOG.warning("logs on the recordings' disk are back under their cap (%.1f MB)", logs / 1e6)
        self.logs_over_cap = over
        return logs

    def record_unrecorded(self, events: list[EventInfo]) -> None:
        if not self.unrecorded:
            return
        try:
            self.index.sync([e for e in events if e.path.exists()])
            for deletion, at in self.unrecorded:
                self.index.remove_event(deletion.event, deletion.reason, at)
            self.unrecorded.clear()
        except sqlite3.OperationalError as exc:
            LOG.warning("index still not writable: %s", exc)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except (OSError, sqlite3.Error) as exc:  # a transient error must not stop the guard
                LOG.error("guard tick failed: %s", exc)
            stop.wait(max(0.0, self.config.interval_s - (time.monotonic() - started)))
        self.index.close()


@dataclass(frozen=True)
class StoredStatus:
    """The running service's last status, as stored in the index."""

    updated: float
    status: dict

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.updated)

    def to_json(self, now: float) -> dict:
        return {
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.updated)),
            "age_s": round(self.age_s(now), 1),
            **self.status,
        }


def read_status(root: Path) -> StoredStatus | None:
    """The status the guard service stored, read without writing anything: the index is opened
    read-only, and without locking when no writer has it open (no -wal file), so neither the
    database nor its -wal/-shm files are created or changed. None if nothing is stored yet.
    Raises sqlite3.Error if the index cannot be read."""
    with ev.read_only(root) as db:
        if db is None:
            return None
        row = dbread.fetch_one(db, "SELECT updated, status FROM guard_status WHERE id = 1")
    return StoredStatus(float(row[0]), json.loads(row[1])) if row else None
