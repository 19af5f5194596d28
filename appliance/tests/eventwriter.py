"""Writes events with the recorder's own writer (cllmh.events.EventWriter).

Used by the guard's tests as a real writer process; run as a script it fills a filesystem:
    python eventwriter.py ROOT SECONDS MB_PER_EVENT EVENTS_PER_S
and prints one JSON line with what it wrote and whether any write failed.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from cllmh import events as ev

CHUNK = 256 * 1024
CLASS_CYCLE = ["other"] * 7 + ["vehicle"] * 2 + ["person"]
LABELS = {"other": {"cat": 0.8}, "vehicle": {"car": 0.9}, "person": {"person": 0.95}}


def zeros(size: int) -> Path:
    """A file of `size` zero bytes standing in for a recorded segment (made once per size)."""
    path = Path(tempfile.gettempdir()) / "cllmh-test-segments" / f"{size}.bin"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as clip:
            left = size
            while left > 0:
                clip.write(b"\0" * min(CHUNK, left))
                left -= CHUNK
        os.replace(tmp, path)
    return path


def write_event(
    root: Path, index: ev.Index, *, camera: str, start: float, event_id: str, kind: str, size: int
) -> Path:
    """One whole event through the recorder's own writer: a `size`-byte clip, a snapshot, 10 s long."""
    writer = ev.EventWriter.open(root, camera=camera, event_id=event_id, start=start, info={}, index=index)
    try:
        writer.update(labels=LABELS[kind], snapshot_jpeg=b"\xff\xd8\xff" + b"\0" * 2048)
        writer.add_segment(zeros(size), start, start + 10)
        path = writer.finish(end=start + 10)
    finally:
        writer.close()
    assert path is not None
    return path


def main() -> int:
    root, seconds, mb, per_s = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    index = ev.Index(root)
    written, failures, n = [], [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kind = CLASS_CYCLE[n % len(CLASS_CYCLE)]
        event_id = f"ev{n:05d}-{kind}"
        try:
            write_event(
                root,
                index,
                camera="cam1",
                start=time.time(),
                event_id=event_id,
                kind=kind,
                size=int(mb * 1024 * 1024),
            )
            written.append(event_id)
        except OSError as exc:
            failures.append(f"{event_id}: {errno.errorcode.get(exc.errno, exc.errno)}")
        n += 1
        time.sleep(1 / per_s)
    print(json.dumps({"written": written, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
