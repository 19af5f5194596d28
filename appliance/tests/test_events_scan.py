"""The guard's cached scan of the event store, on real directories: always what a fresh scan sees."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from cllmh import events as ev
from eventwriter import write_event

DAY = 86400.0
START = time.time() - 10 * DAY


def same(scanner: ev.Scanner, root: Path) -> list[ev.EventInfo]:
    cached = sorted(scanner.scan(), key=lambda e: e.path)
    fresh = sorted(ev.scan(root), key=lambda e: e.path)
    assert cached == fresh
    return cached


def age(path: Path, seconds: float = 3600) -> None:
    """Make a directory's mtime old, as a day directory that nobody has written to for a while."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def store(root: Path) -> tuple[ev.Index, list[Path]]:
    index = ev.Index(root)
    paths = [
        write_event(
            root, index, camera=cam, start=START + d * DAY + i, event_id=f"{cam}-{d}-{i}", kind=k, size=4096
        )
        for cam in ("gerbang", "gudang")
        for d in range(2)
        for i, k in enumerate(("other", "person", "vehicle"))
    ]
    for path in paths:
        age(path.parent)
    return index, paths


def test_a_repeated_scan_sees_every_change_a_fresh_scan_sees(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    index, paths = store(root)
    scanner = ev.Scanner(root)
    assert len(same(scanner, root)) == 12
    assert len(same(scanner, root)) == 12  # now from memory

    # a new event in an old day directory
    write_event(root, index, camera="gerbang", start=START + 5, event_id="late", kind="person", size=100)
    assert "late" in {e.event_id for e in same(scanner, root)}

    # an event being written: in progress, growing, then finished
    path = ev.event_path(root, "gudang", START + DAY + 50, "live")
    with ev.writing(path):
        (path / "clip-000.mp4").write_bytes(b"\0" * 1000)
        live = next(e for e in same(scanner, root) if e.event_id == "live")
        assert live.in_progress and not live.complete and live.size_bytes == 1000
        with open(path / "clip-000.mp4", "ab") as clip:
            clip.write(b"\0" * 5000)
        assert next(e for e in same(scanner, root) if e.event_id == "live").size_bytes == 6000
        ev.write_json_atomic(path / ev.SIDECAR, {"start": START + DAY + 50, "labels": {"car": 0.9}})
        live = next(e for e in same(scanner, root) if e.event_id == "live")
        assert live.complete and live.in_progress  # the writer still holds it
    live = next(e for e in same(scanner, root) if e.event_id == "live")
    assert live.complete and not live.in_progress and live.retention is ev.RetentionClass.VEHICLE

    # deleted as the guard deletes (rename into .trash), and a whole camera removed
    trash = root / ev.TRASH_NAME
    trash.mkdir()
    paths[0].rename(trash / paths[0].name)
    assert paths[0].name not in {e.event_id for e in same(scanner, root)}
    shutil.rmtree(root / "gudang")
    assert {e.camera for e in same(scanner, root)} == {"gerbang"}


def test_finished_events_in_an_unchanged_day_are_taken_from_memory(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    _, paths = store(root)
    scanner = ev.Scanner(root)
    scanner.scan()
    # Rewrite a finished event's labels behind the scanner's back (the day directory's entries
    # do not change): the cached view keeps what it read, a fresh scan reads the new file.
    target = paths[0]
    ev.write_json_atomic(target / ev.SIDECAR, {"start": START, "labels": {"person": 0.99}})
    age(target.parent)
    cached = next(e for e in scanner.scan() if e.path == target)
    fresh = next(e for e in ev.scan(root) if e.path == target)
    assert cached.retention is ev.RetentionClass.OTHER and fresh.retention is ev.RetentionClass.PERSON


def test_a_listing_taken_while_its_directory_was_fresh_is_not_trusted(tmp_path: Path) -> None:
    # On a filesystem with coarse timestamps a new entry may leave the mtime unchanged: a
    # directory changed within the margin before its listing is listed again next time.
    root = tmp_path / "recordings"
    index = ev.Index(root)
    first = write_event(root, index, camera="gerbang", start=START, event_id="a", kind="person", size=10)
    day = first.parent
    stamp = day.stat().st_mtime_ns
    scanner = ev.Scanner(root)
    assert [e.event_id for e in scanner.scan()] == ["a"]
    write_event(root, index, camera="gerbang", start=START + 1, event_id="b", kind="person", size=10)
    os.utime(day, ns=(stamp, stamp))  # as if the clock tick had not moved
    assert [e.event_id for e in scanner.scan()] == ["a", "b"]


# --- malformed sidecars: read once, judged in one place -------------------------------------

MALFORMED = {
    "invalid UTF-8": (b'{"start": 1700000000, "labels": {"\xff\xfe": 0.9}}', "not UTF-8"),
    "truncated JSON": (b'{"start": 1700000000, "lab', "not JSON"),
    "start is a string": (b'{"start": "kemarin", "labels": {"person": 0.9}}', "start is not a number"),
    "start is null": (b'{"start": null, "labels": {"person": 0.9}}', "start is not a number"),
    "no start": (b'{"labels": {"person": 0.9}}', "no start"),
    "start beyond any date": (b'{"start": 1e300, "labels": {}}', "start is not a time"),
    "labels is a list": (b'{"start": 1700000000, "labels": ["person"]}', "labels is not an object"),
    "labels is a string": (b'{"start": 1700000000, "labels": "person"}', "labels is not an object"),
    "a score is not a number": (b'{"start": 1700000000, "labels": {"person": "high"}}', "labels.person"),
    "top-level list": (b"[1700000000]", "not a JSON object but list"),
    "a number": (b"42", "not a JSON object but int"),
}


def spoil(path: Path, content: bytes) -> None:
    """Replace a written event's event.json with `content` (as a buggy writer or a disk error)."""
    (path / ev.SIDECAR).write_bytes(content)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_sidecar_is_named_and_the_event_marked_not_used(tmp_path: Path, case: str) -> None:
    content, problem = MALFORMED[case]
    root = tmp_path / "recordings"
    index, paths = store(root)
    bad = paths[1]  # a person event, as its labels said before it was spoiled
    spoil(bad, content)
    with pytest.raises(ev.SidecarError) as exc:
        ev.read_sidecar(bad)
    assert problem in exc.value.problem and str(bad / ev.SIDECAR) in str(exc.value)

    events = {e.path: e for e in ev.scan(root)}
    assert len(events) == 12  # the scan goes on past it
    info = events[bad]
    assert info.malformed is not None and problem in info.malformed
    assert not info.complete and not info.in_progress
    assert info.start == info.mtime == bad.stat().st_mtime  # dated by its directory
    assert info.retention is ev.RetentionClass.OTHER  # its labels cannot be trusted
    assert all(e.malformed is None and e.complete for p, e in events.items() if p != bad)
    # The index is re-synced without it and without failing on it.
    index.db.execute("DELETE FROM events")
    assert index.sync(list(events.values())) == (0, 11)
    assert bad.name not in index.event_ids()


def test_a_good_sidecar_has_no_problem() -> None:
    assert ev.sidecar_problem({"start": 1_700_000_000.5, "end": None, "labels": {}, "extra": [1]}) is None
    assert ev.sidecar_problem({"start": 1_700_000_000, "end": 1_700_000_010, "labels": {"car": 1}}) is None
    assert ev.sidecar_problem({"start": True, "labels": {}}) == "start is not a number: True"


def test_a_malformed_event_is_read_once_by_the_cached_scan(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    _, paths = store(root)
    spoil(paths[0], b"[]")
    age(paths[0].parent)
    scanner = ev.Scanner(root)
    first = next(e for e in same(scanner, root) if e.path == paths[0])
    assert first.malformed is not None
    # Repaired behind the scanner's back (the day directory's entries do not change): the cached
    # view keeps the verdict it read, like any finished event; a fresh scan reads the new file.
    ev.write_json_atomic(paths[0] / ev.SIDECAR, {"start": START, "labels": {"cat": 0.5}})
    age(paths[0].parent)
    assert next(e for e in scanner.scan() if e.path == paths[0]).malformed is not None
    assert next(e for e in ev.scan(root) if e.path == paths[0]).malformed is None
