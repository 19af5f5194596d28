"""The guard on a real, small filesystem (a size-limited tmpfs) with real writer processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cllmh import events as ev

HERE = Path(__file__).parent


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs: a disk that fills in seconds."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a tmpfs and need root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def guard_config(tmp_path: Path, root: Path, **extra) -> Path:
    config = {
        "recordings_dir": str(root / "recordings"),
        "cache_dir": str(root / "cache"),
        "interval_s": 0.1,
        "floor_percent": 25,
        "floor_hours": 0,
        "headroom_percent": 5,
        **extra,
    }
    path = tmp_path / "guard.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def cllmh(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cllmh.cli", *args], **kwargs)


def assert_every_event_is_complete(root: Path, *, index_exact: bool = True) -> list[ev.EventInfo]:
    """Every event directory is whole; the index lists no event whose files are gone
    (and, with index_exact, lists exactly the events on disk)."""
    events = ev.scan(root)
    for event in events:
        sidecar = ev.read_sidecar(event.path)
        assert sidecar is not None, f"{event.path} has no event.json"
        for name, size in sidecar["files"].items():
            assert (event.path / name).stat().st_size == size, f"{event.path / name} is truncated"
    index = ev.Index(root)
    try:
        listed, on_disk = index.event_ids(), {e.event_id for e in events}
        assert listed <= on_disk, f"index lists deleted events: {sorted(listed - on_disk)[:5]}"
        if index_exact:
            assert listed == on_disk
    finally:
        index.close()
    return events


def test_a_writer_faster_than_the_floor_never_hits_enospc(small_fs: Path, tmp_path: Path) -> None:
    root = small_fs / "recordings"
    root.mkdir()
    guard = cllmh(
        "guard", "--config", str(guard_config(tmp_path, small_fs)), stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)
        # 2 MiB events, 10 per second, for 4.5 s: ~90 MiB into a 48 MiB filesystem
        writer = subprocess.run(
            [sys.executable, str(HERE / "eventwriter.py"), str(root), "4.5", "2", "10"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    finally:
        guard.send_signal(signal.SIGTERM)
        _, log = guard.communicate(timeout=30)
    result = json.loads(writer.stdout)
    assert result["failures"] == [], result["failures"][:5]
    assert len(result["written"]) > 30

    remaining = assert_every_event_is_complete(root)
    kept = {e.event_id for e in remaining}
    written = result["written"]
    deleted = [e for e in written if e not in kept]
    assert deleted, "the guard deleted nothing"
    # Only "other" events had to go (person + vehicle are 30 % of ~90 MiB, below the ~33 MiB the
    # floor and headroom leave), and always the oldest: every deleted "other" is older than every
    # kept "other".
    assert all(e.endswith("-other") for e in deleted), [e for e in deleted if not e.endswith("-other")]
    kept_other = [e for e in written if e in kept and e.endswith("-other")]
    assert not kept_other or max(written.index(e) for e in deleted) < min(
        written.index(e) for e in kept_other
    )
    assert "deleted other event" in log
    index = ev.Index(root)
    try:
        count, freed = index.deletions_since(0)
        assert count == len(deleted) and freed > 0
    finally:
        index.close()


def test_killing_the_guard_mid_deletion_leaves_only_whole_events(small_fs: Path, tmp_path: Path) -> None:
    root = small_fs / "recordings"
    sys.path.insert(0, str(HERE))
    from eventwriter import write_event  # noqa: PLC0415

    index = ev.Index(root)
    old = time.time() - 30 * 86400  # past the 14-day maximum age of "other" events
    for n in range(150):
        path = write_event(
            root,
            index,
            camera=f"cam{n % 3}",
            start=old + n,
            event_id=f"old{n:03d}",
            kind="other",
            size=64 * 1024,
        )
        for extra in range(20):  # many files: the deletion takes a while
            (path / f"part-{extra:02d}.ts").write_bytes(b"\0" * 1024)
            sidecar = ev.read_sidecar(path) or {}
            sidecar["files"][f"part-{extra:02d}.ts"] = 1024
            ev.write_json_atomic(path / ev.SIDECAR, sidecar)
    index.close()
    config = guard_config(tmp_path, small_fs)
    left = [150]
    for pause in (0.0, 0.002, 0.005, 0.01):
        proc = cllmh(
            "guard",
            "--config",
            str(config),
            "--once",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        # kill -9 as soon as it reports its first deletion, i.e. in the middle of its work
        while "deleted other event" not in (proc.stderr.readline() or "deleted other event"):
            pass
        time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left.append(len(assert_every_event_is_complete(root, index_exact=False)))
    print(f"events left after each kill -9: {left}")
    assert 0 < left[-1] < 150, left
    done = cllmh("guard", "--config", str(config), "--once", stdout=subprocess.PIPE, text=True)
    status = json.loads(done.communicate(timeout=120)[0])
    assert status["events"] == 0
    assert_every_event_is_complete(root)
    assert ev.scan(root) == []
    assert not any((root / ev.TRASH_NAME).iterdir())
    index = ev.Index(root)
    try:
        assert index.event_ids() == set()
    finally:
        index.close()


def test_a_completely_full_disk_is_freed(small_fs: Path, tmp_path: Path) -> None:
    """Even SQLite cannot write on a 100 % full disk: the guard must free space anyway."""
    root = small_fs / "recordings"
    sys.path.insert(0, str(HERE))
    from eventwriter import write_event  # noqa: PLC0415

    index = ev.Index(root)
    start = time.time() - 3600
    n = 0
    with pytest.raises((OSError, sqlite3.OperationalError)):
        while True:
            write_event(
                root,
                index,
                camera="cam1",
                start=start + n,
                event_id=f"full{n:03d}",
                kind="other",
                size=1024 * 1024,
            )
            n += 1
    index.close()
    # the last few bytes too
    with contextlib.suppress(OSError), open(small_fs / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
    before = sum(e.complete for e in ev.scan(root))
    guard = cllmh(
        "guard",
        "--config",
        str(guard_config(tmp_path, small_fs)),
        "--once",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = guard.communicate(timeout=120)
    assert guard.returncode == 0, err
    status = json.loads(out)
    assert status["free_percent"] >= 25, status
    assert "deleted other event" in err
    # The deletions made while the index could not be written are recorded afterwards.
    index = ev.Index(root)
    try:
        assert index.deletions_since(0)[0] == before - sum(e.complete for e in ev.scan(root))
    finally:
        index.close()


def test_the_segment_cache_is_bounded_but_the_segment_being_written_is_kept(tmp_path: Path) -> None:
    from cllmh.guard import Guard, GuardConfig  # noqa: PLC0415

    cache = tmp_path / "cache"
    for camera in ("cam1", "cam2"):
        (cache / camera).mkdir(parents=True)
        for n in range(6):
            seg = cache / camera / f"seg-{n:03d}.mp4"
            seg.write_bytes(b"\0" * 100_000)
            os.utime(seg, (1000 + n, 1000 + n))
    guard = Guard(GuardConfig(recordings_dir=tmp_path / "rec", cache_dir=cache, cache_max_bytes=450_000))
    guard.tick()
    left = sorted(str(p.relative_to(cache)) for p in cache.glob("*/*"))
    assert sum(p.stat().st_size for p in cache.glob("*/*")) <= 450_000
    assert "cam1/seg-005.mp4" in left and "cam2/seg-005.mp4" in left
    assert "cam1/seg-000.mp4" not in left and "cam2/seg-000.mp4" not in left
