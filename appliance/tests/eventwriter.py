"""Writes events the way the recorder does (lock held while writing, event.json last, index row).

Used by the guard's tests as a real writer process; run as a script it fills a filesystem:
    python eventwriter.py ROOT SECONDS MB_PER_EVENT EVENTS_PER_S
and prints one JSON line with what it wrote and whether any write failed.
"""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path

from cllmh import events as ev

CHUNK = 256 * 1024
CLASS_CYCLE = ["other"] * 7 + ["vehicle"] * 2 + ["person"]
LABELS = {"other": {"cat": 0.8}, "vehicle": {"car": 0.9}, "person": {"person": 0.95}}


def write_event(
    root: Path, index: ev.Index, *, camera: str, start: float, event_id: str, kind: str, size: int
) -> Path:
    path = ev.event_path(root, camera, start, event_id)
    with ev.writing(path):
        with open(path / "clip-000.mp4", "wb") as clip:
            left = size
            while left > 0:
                clip.write(b"\0" * min(CHUNK, left))
                left -= CHUNK
        (path / "snapshot.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 2048)
        labels = LABELS[kind]
        ev.write_json_atomic(
            path / ev.SIDECAR,
            {
                "camera": camera,
                "start": start,
                "end": start + 10,
                "labels": labels,
                "files": {"clip-000.mp4": size, "snapshot.jpg": 2051},
            },
        )
    index.add_event(
        event_id=event_id,
        camera=camera,
        start=start,
        end=start + 10,
        labels=labels,
        path=path,
        size_bytes=size + 2051,
    )
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
