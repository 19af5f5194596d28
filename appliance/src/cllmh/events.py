"""Kept events on disk and their SQLite index: the one layout the recorder, guard and pages share.

Layout under the recordings root::

    <root>/<camera>/<YYYY-MM-DD>/<event_id>/clip-000.mp4 ... snapshot.jpg event.json .lock
    <root>/index.sqlite3          events + deletions + guard status (WAL)
    <root>/.trash/                whole events being deleted (renamed here first, atomically)
    <root>/.keep/<event_id>       "keep" marks: the guard never deletes a marked event (set_keep)

An event directory is *complete* once `event.json` exists (written last, atomically). While a
writer works on it, it holds an exclusive flock on `.lock`; the guard never touches a locked
event. A writer that died leaves an unlocked directory without event.json: an orphan that the
guard removes after a grace period.

An `event.json` that exists but cannot be used (not UTF-8, not JSON, not an object, `start` not
a number, `labels` not an object of scores) makes the event *malformed*: `read_sidecar` says
why, and the guard never deletes such an event by age (nobody can tell its age or class) but
reclaims it under space pressure before every other event, dated by its directory's mtime.

A technician marks an event "keep" on the status page (issue 12): one small file named by the event
id in `<root>/.keep/`, apart from the event's own directory, so the page needs no write access to
recordings (only to that directory) and the sidecar and its readers stay as they are. `set_keep` and
`kept_ids` are the one implementation; the guard reads the marks on every tick.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from cllmh import dbread

LOG = logging.getLogger("cllmh.events")

INDEX_NAME = "index.sqlite3"
TRASH_NAME = ".trash"
KEEP_NAME = ".keep"
# What an event id may be to name a keep mark (the recorder's are 12 hex digits).
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SIDECAR = "event.json"
LOCK = ".lock"

VEHICLE_LABELS = frozenset({"bicycle", "car", "motorcycle", "bus", "truck"})


class RetentionClass(IntEnum):
    """Higher is kept longer; space is reclaimed from the lowest class first."""

    OTHER = 0
    VEHICLE = 1
    PERSON = 2

    @classmethod
    def of(cls, labels: list[str] | set[str] | frozenset[str]) -> RetentionClass:
        if "person" in labels:
            return cls.PERSON
        if VEHICLE_LABELS & set(labels):
            return cls.VEHICLE
        return cls.OTHER

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What the retention plan needs to know about one event directory."""

    event_id: str
    camera: str
    path: Path
    start: float
    size_bytes: int
    retention: RetentionClass
    complete: bool
    in_progress: bool
    mtime: float
    # Why event.json cannot be used (then complete is False and start is the directory's mtime).
    malformed: str | None = None


def event_path(root: Path, camera: str, start: float, event_id: str) -> Path:
    day = time.strftime("%Y-%m-%d", time.localtime(start))
    return root / camera / day / event_id


def dir_size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file():
                total += entry.stat().st_size
    return total


def is_locked(path: Path) -> bool:
    """True when a writer holds the event's lock (it is still being written)."""
    lock = path / LOCK
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def writing(path: Path) -> Iterator[Path]:
    """Hold the event's lock while its files are written (the guard leaves it alone)."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class SidecarError(ValueError):
    """An event.json that exists but cannot be used; `problem` says what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _is_number(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


# A start time the clock functions can turn into a date (1970 .. 2286).
START_RANGE = (0.0, 1e10)


def sidecar_problem(data: object) -> str | None:
    """What makes a decoded event.json unusable, or None if the guard and index can use it (pure).

    Only what the readers rely on is checked: an object with a numeric `start` (a time), an
    optional numeric (or null) `end`, and `labels` mapping label names to numeric scores; other
    keys are the writer's business.
    """
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    problems = []
    start, end, labels = data.get("start"), data.get("end"), data.get("labels", {})
    if not _is_number(start):
        problems.append("no start" if "start" not in data else f"start is not a number: {start!r:.40}")
    elif not START_RANGE[0] <= start < START_RANGE[1]:
        problems.append(f"start is not a time: {start!r:.40}")
    if end is not None and not _is_number(end):
        problems.append(f"end is not a number: {end!r:.40}")
    if not isinstance(labels, dict):
        problems.append(f"labels is not an object of scores but {type(labels).__name__}")
    else:
        problems += [f"labels.{k:.40} is not a number" for k, v in labels.items() if not _is_number(v)][:1]
    return "; ".join(problems) or None


def read_sidecar(path: Path) -> dict | None:
    """The event's validated event.json; None if there is none yet.

    Raises SidecarError when the file exists but cannot be used (unreadable, not UTF-8, not
    JSON, or see `sidecar_problem`): the one place where a sidecar is judged.
    """
    try:
        raw = (path / SIDECAR).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarError(path / SIDECAR, f"cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SidecarError(path / SIDECAR, f"not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SidecarError(path / SIDECAR, f"not JSON ({exc.msg} at line {exc.lineno})") from exc
    problem = sidecar_problem(data)
    if problem is not None:
        raise SidecarError(path / SIDECAR, problem)
    return data


def inspect(camera: str, path: Path) -> EventInfo | None:
    """Everything about one event directory, read from disk (None if it vanished meanwhile)."""
    malformed = None
    try:
        sidecar = read_sidecar(path)
    except SidecarError as exc:
        sidecar, malformed = None, exc.problem
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    labels = list((sidecar or {}).get("labels", {}))
    return EventInfo(
        event_id=path.name,
        camera=camera,
        path=path,
        start=float((sidecar or {}).get("start", mtime)),
        size_bytes=dir_size(path),
        retention=RetentionClass.of(labels),
        complete=sidecar is not None,
        in_progress=is_locked(path),
        mtime=mtime,
        malformed=malformed,
    )


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


# A directory listing is trusted again only if the directory's mtime is older than this when it
# is listed: filesystems with coarse timestamps (FAT: 2 s) could otherwise hide an entry created
# in the same tick as the listing.
MTIME_MARGIN_S = 3.0


class Scanner:
    """Every event directory under root, without re-reading what cannot have changed.

    A finished event (sidecar written, no writer holding its lock) never changes until it is
    deleted, and a deletion (rename to .trash, rmtree) changes its day directory's mtime. So a
    repeated scan lists only day directories whose mtime moved, re-reads only unfinished events,
    and takes finished ones from memory: one stat per day directory instead of reading every
    sidecar and sizing every file each tick. A malformed event (see `read_sidecar`) is finished
    too: its sidecar is read once, not on every tick.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[Path, tuple[int, list[str]]] = {}  # day dir -> (mtime_ns, event names)
        self._finished: dict[Path, EventInfo] = {}

    def _events_in(self, day_dir: Path) -> list[str] | None:
        try:
            mtime_ns = day_dir.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self._listings.get(day_dir)
        if cached is not None and cached[0] == mtime_ns:
            return cached[1]
        names = _subdirs(day_dir)
        if time.time() - mtime_ns / 1e9 > MTIME_MARGIN_S:
            self._listings[day_dir] = (mtime_ns, names)
        else:
            self._listings.pop(day_dir, None)
        return names

    def scan(self) -> list[EventInfo]:
        events: list[EventInfo] = []
        finished: dict[Path, EventInfo] = {}
        listed: dict[Path, tuple[int, list[str]]] = {}
        for camera in _subdirs(self.root):
            if camera.startswith("."):
                continue
            for day in _subdirs(self.root / camera):
                day_dir = self.root / camera / day
                names = self._events_in(day_dir)
                if names is None:
                    continue
                if day_dir in self._listings:
                    listed[day_dir] = self._listings[day_dir]
                for name in names:
                    path = day_dir / name
                    info = self._finished.get(path) or inspect(camera, path)
                    if info is None:
                        continue
                    if (info.complete or info.malformed) and not info.in_progress:
                        finished[path] = info  # final: a malformed sidecar is read (and reported) once
                    events.append(info)
        self._finished, self._listings = finished, listed
        return events


def scan(root: Path) -> list[EventInfo]:
    """Every event directory under root (complete, in progress, or orphaned), read afresh."""
    return Scanner(root).scan()


def set_keep(root: Path, event_id: str, keep: bool, *, by: str = "") -> bool:
    """Mark (keep=True) or unmark an event "keep"; True when that changed something. The mark is
    `<root>/.keep/<event_id>` holding who set it and when (JSON), written atomically."""
    if not EVENT_ID.match(event_id):
        raise ValueError(f"not an event id: {event_id!r:.80}")
    mark = root / KEEP_NAME / event_id
    if not keep:
        try:
            mark.unlink()
        except FileNotFoundError:
            return False
        return True
    if mark.exists():
        return False
    mark.parent.mkdir(mode=0o770, exist_ok=True)
    write_json_atomic(mark, {"event_id": event_id, "by": by, "at": time.time()})
    return True


def kept_ids(root: Path) -> frozenset[str]:
    """The ids of the events marked "keep" (one directory listing)."""
    try:
        with os.scandir(root / KEEP_NAME) as entries:
            return frozenset(e.name for e in entries if EVENT_ID.match(e.name) and e.is_file())
    except FileNotFoundError:
        return frozenset()


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL,
    labels TEXT NOT NULL DEFAULT '{}',
    retention TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_start ON events (start);
CREATE TABLE IF NOT EXISTS deletions (
    at REAL NOT NULL,
    event_id TEXT NOT NULL,
    camera TEXT NOT NULL,
    retention TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deletions_at ON deletions (at);
CREATE TABLE IF NOT EXISTS guard_status (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    updated REAL NOT NULL,
    status TEXT NOT NULL
);
"""


class Index:
    """The SQLite index of kept events, deletions and the guard's status."""

    def __init__(self, root: Path) -> None:
        self.path = root / INDEX_NAME
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add_event(
        self,
        *,
        event_id: str,
        camera: str,
        start: float,
        end: float | None,
        labels: dict[str, float],
        path: Path,
        size_bytes: int,
    ) -> None:
        retention = RetentionClass.of(set(labels)).label
        self.db.execute(
            "INSERT OR REPLACE INTO events (id, camera, start, end, labels, retention, path, bytes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, camera, start, end, json.dumps(labels), retention, str(path), size_bytes),
        )

    def event_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM events")}

    def remove_event(self, event: EventInfo, reason: str, now: float) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM events WHERE id = ?", (event.event_id,))
            self.db.execute(
                "INSERT INTO deletions (at, event_id, camera, retention, bytes, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, event.event_id, event.camera, event.retention.label, event.size_bytes, reason),
            )

    @contextlib.contextmanager
    def removing(self, event: EventInfo, reason: str, now: float) -> Iterator[None]:
        """Drop the event's row and record its deletion in one transaction that commits only if
        the block (moving the event out of place) succeeds; an exception in the block rolls it
        back, so an event that could not be moved keeps its row and gets no deletion record.
        Raises sqlite3.OperationalError (before the block, or at the commit after it) when the
        index cannot be written."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM events WHERE id = ?", (event.event_id,))
            self.db.execute(
                "INSERT INTO deletions (at, event_id, camera, retention, bytes, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, event.event_id, event.camera, event.retention.label, event.size_bytes, reason),
            )
            yield
            self.db.execute("COMMIT")
        finally:
            if self.db.in_transaction:  # an error (before, in or after the block): nothing changed
                self.db.execute("ROLLBACK")

    def finish_interrupted(self, trash_name: str, reason: str, now: float) -> bool:
        """Record the deletion of an event found in the trash (`<camera>--<id>`) whose row is
        still listed: its guard was killed between the move and the commit. True if recorded."""
        with self.db:
            self.db.execute("BEGIN")
            row = self.db.execute(
                "SELECT id, camera, retention, bytes FROM events WHERE camera || '--' || id = ?",
                (trash_name,),
            ).fetchone()
            if row is None:
                return False
            self.db.execute("DELETE FROM events WHERE id = ?", (row[0],))
            self.db.execute(
                "INSERT INTO deletions (at, event_id, camera, retention, bytes, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, row[0], row[1], row[2], row[3], reason),
            )
        return True

    def sync(self, events: list[EventInfo]) -> tuple[int, int]:
        """Make the index match the directories: the directories are the truth.

        Rows of events whose directory is gone are dropped; complete events without a row (a
        writer or a guard killed at the wrong moment) are added from their sidecar. Returns
        (rows dropped, rows added).
        """
        complete = {e.event_id: e for e in events if e.complete}
        known = self.event_ids()
        gone = known - {e.event_id for e in events}
        for event_id in gone:
            self.db.execute("DELETE FROM events WHERE id = ?", (event_id,))
        added = 0
        for event_id in complete.keys() - known:
            event = complete[event_id]
            try:
                sidecar = read_sidecar(event.path) or {}
            except SidecarError:
                continue  # rewritten badly since it was scanned: the next scan reports it
            self.add_event(
                event_id=event_id,
                camera=event.camera,
                start=event.start,
                end=sidecar.get("end"),
                labels=dict(sidecar.get("labels", {})),
                path=event.path,
                size_bytes=event.size_bytes,
            )
            added += 1
        return len(gone), added

    def deletions_since(self, since: float) -> tuple[int, int]:
        count, total = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM deletions WHERE at >= ?", (since,)
        ).fetchone()
        return int(count), int(total)

    def set_status(self, status: dict, now: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO guard_status (id, updated, status) VALUES (1, ?, ?)",
            (now, json.dumps(status, sort_keys=True)),
        )

    def status(self) -> dict | None:
        row = self.db.execute("SELECT status FROM guard_status WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None


def read_only(root: Path) -> contextlib.AbstractContextManager[sqlite3.Connection | None]:
    """A connection to the index that cannot write anything (None if there is no index yet)."""
    return dbread.read_only(root / INDEX_NAME)


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """A finished event as the index lists it (its files are under `path`)."""

    event_id: str
    camera: str
    start: float
    end: float
    path: Path


def finished_events(root: Path, since: float) -> list[IndexedEvent]:
    """Finished events (end set: event.json written) that started at or after `since`, oldest first,
    read without writing. An event being recorded has no end yet and is listed once it is finished."""
    with read_only(root) as db:
        if db is None:
            return []
        rows = dbread.fetch_all(
            db,
            "SELECT id, camera, start, end, path FROM events"
            " WHERE end IS NOT NULL AND start >= ? ORDER BY start",
            (since,),
        )
    return [IndexedEvent(r[0], r[1], float(r[2]), float(r[3]), Path(r[4])) for r in rows]


def deletions_since(root: Path, since: float, retention: RetentionClass) -> int:
    """How many events of this class were deleted since `since` (read without writing)."""
    with read_only(root) as db:
        if db is None:
            return 0
        row = dbread.fetch_one(
            db, "SELECT COUNT(*) FROM deletions WHERE at >= ? AND retention = ?", (since, retention.label)
        )
    return int(row[0]) if row else 0


# -- writing events ---------------------------------------------------------------------------
# The one writer of the layout above. An event is visible from its start (index row with end NULL,
# snapshot as soon as there is a detection) and recorded progressively: each completed cache segment
# that belongs to it is copied into .parts/ and listed in the open marker. finish() joins the parts
# losslessly into one clip.mp4 (written under a temporary name, renamed), writes event.json last,
# completes the index row, then drops the parts and the marker. A writer killed at any moment leaves
# either a complete event (sidecar present) or an open one (marker present, lock free) that the next
# recorder start finishes from what is on disk (recover_open_events): kept, marked truncated.

OPEN_MARKER = ".open.json"
PARTS = ".parts"
CLIP = "clip.mp4"
SNAPSHOT = "snapshot.jpg"


def _probe_duration(path: Path, ffprobe: str = "ffprobe") -> float | None:
    """Seconds of video in a (possibly truncated, fragmented) MP4, or None if it holds none."""
    try:
        out = subprocess.run(
            [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        duration = float(out.stdout.strip().splitlines()[0])
    except (IndexError, ValueError):
        return None
    return duration if out.returncode == 0 and duration > 0 else None


def join_clips(parts: list[Path], target: Path, ffmpeg: str = "ffmpeg") -> None:
    """Join MP4 segments of one stream into one seekable MP4 without re-encoding (`-c copy`).

    Written to a temporary name and renamed, so `target` is whole or absent. One part is taken as it
    is (a fragmented MP4 segment is already a playable file)."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    if len(parts) == 1:
        os.link(parts[0], tmp)  # same directory tree: no copy; the part is dropped after the sidecar
    else:
        listing = target.with_name(".concat.txt")
        listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts), encoding="utf-8")
        try:
            done = subprocess.run(
                [
                    ffmpeg,
                    "-nostdin",
                    "-hide_banner",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    str(listing),
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                    str(tmp),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            listing.unlink(missing_ok=True)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise OSError(f"joining {len(parts)} segments into {target} failed: {done.stderr.strip()[-500:]}")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


class EventWriter:
    """One event being recorded: visible in the index from its start; whole or absent after any crash."""

    def __init__(self, root: Path, path: Path, lock_fd: int, state: dict, index: Index | None = None) -> None:
        self.root = root
        self.path = path
        self._lock_fd: int | None = lock_fd
        self.state = state
        self._shared_index = index

    @classmethod
    def open(
        cls, root: Path, *, camera: str, event_id: str, start: float, info: dict, index: Index | None = None
    ) -> EventWriter:
        """Create <root>/<camera>/<day>/<event_id>/, hold its lock until finish(), write the open marker
        and an index row with end NULL. `start` is wall time; `info` goes into the final sidecar.
        `index`: a connection to reuse (a long-running writer keeps one) instead of one per write."""
        path = event_path(root, camera, start, event_id)
        (path / PARTS).mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = {
            "camera": camera,
            "event_id": event_id,
            "start": start,
            "info": dict(info),
            "labels": {},
            "boxes": {},
            "motion_area": 0.0,
            "parts": [],
        }
        writer = cls(root, path, fd, state, index)
        writer._save()
        writer._index(end=None)
        return writer

    @property
    def event_id(self) -> str:
        return str(self.state["event_id"])

    def _save(self) -> None:
        write_json_atomic(self.path / OPEN_MARKER, self.state)

    @contextlib.contextmanager
    def _db(self) -> Iterator[Index]:
        if self._shared_index is not None:
            yield self._shared_index
            return
        index = Index(self.root)
        try:
            yield index
        finally:
            index.close()

    def _index(self, *, end: float | None) -> None:
        with self._db() as index:
            index.add_event(
                event_id=self.event_id,
                camera=self.state["camera"],
                start=self.state["start"],
                end=end,
                labels=self.state["labels"],
                path=self.path,
                size_bytes=dir_size(self.path),
            )

    def update(
        self,
        *,
        labels: dict[str, float],
        snapshot_jpeg: bytes | None = None,
        boxes: dict[str, list[int]] | None = None,
        motion_area: float | None = None,
    ) -> None:
        """Best labels so far (index row updated); snapshot.jpg replaced atomically when given."""
        if snapshot_jpeg is not None:
            tmp = self.path / f".{SNAPSHOT}.tmp"
            tmp.write_bytes(snapshot_jpeg)
            os.replace(tmp, self.path / SNAPSHOT)
        changed = dict(labels) != self.state["labels"]
        self.state["labels"] = dict(labels)
        if boxes is not None:
            self.state["boxes"] = {k: list(v) for k, v in boxes.items()}
        if motion_area is not None:
            self.state["motion_area"] = max(float(self.state["motion_area"]), motion_area)
        self._save()
        if changed:
            self._index(end=None)

    def add_segment(self, path: Path, start: float, end: float) -> None:
        """A completed segment (wall times) that belongs to the event, copied into .parts/ in order."""
        name = f"{len(self.state['parts']):06d}.mp4"
        shutil.copyfile(path, self.path / PARTS / name)
        self.state["parts"].append({"file": name, "source": path.name, "start": start, "end": end})
        self._save()

    def finish(self, *, end: float, extra: dict | None = None) -> Path | None:
        """Join the parts into one clip.mp4, write event.json last, complete the index row, drop the
        parts and the marker, release the lock. With no parts the event is removed (returns None)."""
        parts = self.state["parts"]
        if not parts:
            self._discard()
            return None
        # never before the start: a caller's wall clock read later can differ by microseconds (a part
        # that began after the event's last sighting ends where it began)
        end = max(end, float(self.state["start"]))
        join_clips([self.path / PARTS / p["file"] for p in parts], self.path / CLIP)
        files = {CLIP: (self.path / CLIP).stat().st_size}
        if (self.path / SNAPSHOT).exists():
            files[SNAPSHOT] = (self.path / SNAPSHOT).stat().st_size
        sidecar = {
            **self.state["info"],
            **(extra or {}),
            "camera": self.state["camera"],
            "event_id": self.event_id,
            "start": self.state["start"],
            "end": end,
            "labels": {k: round(v, 3) for k, v in self.state["labels"].items()},
            "boxes": self.state["boxes"],
            "motion_area": round(float(self.state["motion_area"]), 4),
            "clips": [{"file": CLIP, "start": parts[0]["start"], "end": parts[-1]["end"]}],
            "files": files,
        }
        write_json_atomic(self.path / SIDECAR, sidecar)
        shutil.rmtree(self.path / PARTS, ignore_errors=True)
        (self.path / OPEN_MARKER).unlink(missing_ok=True)
        self._index(end=end)
        self.close()
        return self.path

    def _discard(self) -> None:
        with self._db() as index:
            index.db.execute("DELETE FROM events WHERE id = ?", (self.event_id,))
        shutil.rmtree(self.path, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Release the event without finishing it (after a failed write): it stays open on disk, and
        the next recorder start keeps what it holds (recover_open_events). Harmless after finish()."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _read_marker(path: Path) -> dict | None:
    try:
        with open(path / OPEN_MARKER, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("parts"), list) else None


def _cache_segments_since(cache_dir: Path, since: float, skip: set[str]) -> list[tuple[float, Path]]:
    """(mtime, path) of the cache's segments last written after `since`, oldest first."""
    found = []
    if cache_dir.is_dir():
        for seg in cache_dir.glob("*.mp4"):
            with contextlib.suppress(FileNotFoundError):
                mtime = seg.stat().st_mtime
                if seg.name not in skip and mtime > since:
                    found.append((mtime, seg))
    return sorted(found)


def _recover(root: Path, camera: str, path: Path, cache_dir: Path) -> Path | None:
    """Finish one event whose writer died (its lock is free and its marker is there)."""
    if (path / SIDECAR).exists():  # killed after the sidecar: only the clean-up was left
        shutil.rmtree(path / PARTS, ignore_errors=True)
        (path / OPEN_MARKER).unlink(missing_ok=True)
        return None
    state = _read_marker(path)
    if state is None:
        LOG.warning("event %s: unreadable open marker; left for the guard", path)
        return None
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    writer = EventWriter(root, path, fd, state)
    state["parts"] = [p for p in state["parts"] if (path / PARTS / p["file"]).exists()]
    parts = state["parts"]
    since = parts[-1]["end"] if parts else float(state["start"]) - float(state["info"].get("pre_roll", 0))
    for mtime, seg in _cache_segments_since(cache_dir, since, {p["source"] for p in parts}):
        duration = _probe_duration(seg)
        if duration is not None:  # else nothing readable: the segment had just been opened
            writer.add_segment(seg, mtime - duration, mtime)
    end = max([float(state["start"])] + [p["end"] for p in state["parts"]])
    finished = writer.finish(end=end, extra={"truncated": True})
    if finished is None:
        LOG.warning("event %s of camera %s: nothing recorded before the recorder stopped", path.name, camera)
    else:
        LOG.warning(
            "event %s of camera %s: recorder stopped mid-event; kept what was written", path.name, camera
        )
    return finished


def recover_open_events(root: Path, camera: str, cache_dir: Path) -> list[Path]:
    """At a recorder's start, before it clears its cache: every event of `camera` left open by a killed
    recorder (open marker, lock free) is finished as a kept, truncated event from its parts plus the
    readable cache segments written since its last part. Returns the kept event directories."""
    kept: list[Path] = []
    for path in sorted((root / camera).glob("*/*/")):
        has_marker = (path / OPEN_MARKER).exists()
        if (path / SIDECAR).exists() and not has_marker:
            continue  # a kept event
        if is_locked(path):
            continue  # a live writer
        if not has_marker:  # killed inside open(), before its marker: nothing in it
            shutil.rmtree(path, ignore_errors=True)
            continue
        finished = _recover(root, camera, path, cache_dir)
        if finished is not None:
            kept.append(finished)
    return kept


# -- reading the index for the status page ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedEvent:
    """An event row of the index, finished or still being written (end None)."""

    event_id: str
    camera: str
    start: float
    end: float | None
    labels: dict[str, float]
    retention: str
    path: Path
    size_bytes: int


def _listed(row: tuple) -> ListedEvent:
    try:
        labels = json.loads(row[4]) if row[4] else {}
    except ValueError:
        labels = {}
    labels = {str(k): float(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    return ListedEvent(row[0], row[1], float(row[2]), row[3], labels, row[5], Path(row[6]), int(row[7]))


_LISTED_COLUMNS = "id, camera, start, end, labels, retention, path, bytes"


def list_events(
    root: Path,
    *,
    camera: str | None = None,
    label: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[ListedEvent]:
    """Events of the index, newest first, filtered by camera, label (one of its labels) and start
    time; read without writing."""
    where, args = ["1 = 1"], []
    if camera:
        where.append("camera = ?")
        args.append(camera)
    if label:
        # The labels column is a JSON object; json_each matches a key exactly.
        where.append("EXISTS (SELECT 1 FROM json_each(events.labels) WHERE json_each.key = ?)")
        args.append(label)
    if since is not None:
        where.append("start >= ?")
        args.append(since)
    if until is not None:
        where.append("start < ?")
        args.append(until)
    with read_only(root) as db:
        if db is None:
            return []
        query = f"SELECT {_LISTED_COLUMNS} FROM events WHERE {' AND '.join(where)}"
        rows = dbread.fetch_all(db, f"{query} ORDER BY start DESC LIMIT ?", (*args, max(1, limit)))
    return [_listed(r) for r in rows]


def find_event(root: Path, event_id: str) -> ListedEvent | None:
    """One event of the index by id (read without writing), or None."""
    with read_only(root) as db:
        if db is None:
            return None
        row = dbread.fetch_one(db, f"SELECT {_LISTED_COLUMNS} FROM events WHERE id = ?", (event_id,))
    return _listed(row) if row else None
