"""Disk use and hours of recording left, from the storage guard's stored status."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path

from cllmh import events as ev

LOG = logging.getLogger("cllmh.collect")


def disk_state(recordings_dir: Path, now: float | None = None) -> tuple[dict, dict]:
    """(disk, guard) as the heartbeat carries them. The guard's status gives the figures and the
    hours left at the measured write rate; without it (guard not running yet) the filesystem is
    measured here and hours_left is None."""
    from cllmh.guard import read_status  # noqa: PLC0415 - the guard's module needs its extra

    now = time.time() if now is None else now
    try:
        stored = read_status(recordings_dir)
        person_deleted = ev.deletions_since(recordings_dir, now - 86400, ev.RetentionClass.PERSON)
    except sqlite3.Error as exc:
        LOG.warning("cannot read the guard's status in %s: %s", recordings_dir, exc)
        stored, person_deleted = None, 0
    disk: dict = {"path": str(recordings_dir), "hours_left": None}
    if stored is not None:
        status = stored.status
        disk |= {k: int(status[k]) for k in ("total_bytes", "used_bytes", "free_bytes")}
        disk["hours_left"] = status.get("hours_left")
    else:
        try:
            usage = shutil.disk_usage(recordings_dir)
            disk |= {"total_bytes": usage.total, "used_bytes": usage.used, "free_bytes": usage.free}
        except OSError:
            disk |= {"total_bytes": 0, "used_bytes": 0, "free_bytes": 0}
    status = stored.status if stored is not None else {}
    guard = {
        "deleted_person_events_24h": person_deleted,
        "last_run": stored.updated if stored is not None else None,
        # Events marked "keep" (never deleted) and whether they hold the floor's space.
        "kept_events": int(status.get("kept_events", 0)),
        "kept_bytes": int(status.get("kept_bytes", 0)),
        "kept_fill": bool(status.get("kept_fill", False)),
    }
    return disk, guard
