"""The guard on a real, small filesystem (a size-limited tmpfs) with real writer processes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cllmh import events as ev
from conftest import run_cllmh

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
    """Every event directory is whole; the index lists no event whose files are gone, except
    one whose move into the trash a kill interrupted before the commit, which the next start
    records (with index_exact: the index lists exactly the events on disk)."""
    events = ev.scan(root)
    for event in events:
        sidecar = ev.read_sidecar(event.path)
        assert sidecar is not None, f"{event.path} has no event.json"
        for name, size in sidecar["files"].items():
            assert (event.path / name).stat().st_size == size, f"{event.path / name} is truncated"
    trash = root / ev.TRASH_NAME
    being_deleted = {p.name.partition("--")[2] for p in trash.iterdir()} if trash.is_dir() else set()
    index = ev.Index(root)
    try:
        listed, on_disk = index.event_ids(), {e.event_id for e in events}
        gone = sorted(listed - on_disk - being_deleted)
        assert not gone, f"index lists deleted events: {gone[:5]}"
        if index_exact:
            assert listed == on_disk
    finally:
        index.close()
    return events


def deletion_rows(root: Path) -> list[str]:
    index = ev.Index(root)
    try:
        return [row[0] for row in index.db.execute("SELECT event_id FROM deletions ORDER BY at, rowid")]
    finally:
        index.close()


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
    # Every event's deletion is recorded exactly once, however the kills fell.
    rows = deletion_rows(root)
    assert sorted(rows) == [f"old{n:03d}" for n in range(150)], len(rows)


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


def test_a_log_flood_near_the_floor_deletes_no_recording(small_fs: Path, tmp_path: Path) -> None:
    """Logs and recordings on one disk (issue 14, finding 6): a flood that takes free space from
    above the floor to below it costs no recording; logs on another filesystem are not counted."""
    root = small_fs / "recordings"
    sys.path.insert(0, str(HERE))
    from eventwriter import write_event  # noqa: PLC0415

    index = ev.Index(root)
    start = time.time() - 3600
    for n in range(16):  # 16 MiB of events: 48 MiB disk, about 30 MiB (63 %) free
        write_event(
            root, index, camera="cam1", start=start + n, event_id=f"ev{n:02d}", kind="other", size=1 << 20
        )
    index.close()
    logs = small_fs / "log/cctv"
    (logs / "10.0.0.66").mkdir(parents=True)
    other_disk = tmp_path / "log-elsewhere"  # tmp_path is not on the tmpfs
    other_disk.mkdir()
    (other_disk / "big.log").write_bytes(b"x" * (8 << 20))
    # the flood: syslog lines until 10 % is free (the floor is 25 %)
    line = b"Nov 26 12:00:00 10.0.0.66 flood: " + b"A" * 990 + b"\n"
    with open(logs / "10.0.0.66/messages.log", "wb") as flood:
        while shutil.disk_usage(small_fs).free > 0.10 * shutil.disk_usage(small_fs).total:
            flood.write(line * 256)
            flood.flush()
    cap = 1 << 20
    config = guard_config(
        tmp_path, small_fs, log_dirs=[str(small_fs / "log"), str(other_disk)], log_cap_bytes=cap
    )
    guard = cllmh(
        "guard", "--config", str(config), "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = guard.communicate(timeout=60)
    assert guard.returncode == 0, err
    status = json.loads(out)
    assert len(ev.scan(root)) == 16 and status["deletions_24h"] == 0, err
    assert status["free_percent"] < 25 and "over their cap" in err, err
    # counted: the flood on this disk; not counted: the file on the other disk
    flood_bytes = (logs / "10.0.0.66/messages.log").stat().st_blocks * 512
    assert flood_bytes <= status["log_bytes"] < flood_bytes + (1 << 20)
    free = status["free_percent"]
    print(f"flood {flood_bytes / 1e6:.1f} MB, free {free} % (floor 25 %), 16 of 16 events kept")

    # Paired: with the cap above the flood, the same disk makes the guard reclaim from recordings.
    config = guard_config(tmp_path, small_fs, log_dirs=[str(small_fs / "log")], log_cap_bytes=64 << 20)
    guard = cllmh(
        "guard", "--config", str(config), "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, err = guard.communicate(timeout=60)
    assert guard.returncode == 0, err
    assert len(ev.scan(root)) < 16 and "deleted other event" in err


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


# --- bad events: malformed sidecars, events that cannot be deleted ---------------------------

BAD_SIDECARS = [
    b'{"start": 1700000000, "labels": {"\xff": 1}}',  # invalid UTF-8
    b'{"start": "kemarin", "labels": {}}',
    b'{"start": null, "labels": {}}',
    b'{"start": 1700000000, "labels": ["person"]}',
    b'{"start": 1700000000, "labels": "person"}',
    b"[1700000000]",
    b"42",
]


def write_events(root: Path, prefix: str, starts: list[float], size: int = 64 * 1024) -> list[Path]:
    sys.path.insert(0, str(HERE))
    from eventwriter import write_event  # noqa: PLC0415

    index = ev.Index(root)
    try:
        return [
            write_event(
                root, index, camera="cam1", start=start, event_id=f"{prefix}{n}", kind="other", size=size
            )
            for n, start in enumerate(starts)
        ]
    finally:
        index.close()


def spoil(paths: list[Path], *, age_days: float) -> None:
    """Give each event a malformed event.json (a different kind each) and an old directory mtime."""
    for path, content in zip(paths, BAD_SIDECARS, strict=False):
        (path / ev.SIDECAR).write_bytes(content)
        then = time.time() - age_days * 86400
        os.utime(path, (then, then))


def test_malformed_events_are_skipped_reported_once_and_others_still_reclaimed(
    small_fs: Path, tmp_path: Path
) -> None:
    """The guard service keeps running past every kind of malformed event.json: each is reported
    once however many ticks see it, kept (its age is unknown), and old good events still go."""
    from cllmh.guard import read_status  # noqa: PLC0415

    root = small_fs / "recordings"
    now = time.time()
    old = write_events(root, "old", [now - 30 * 86400 + n for n in range(3)])  # past 14 days
    fresh = write_events(root, "fresh", [now - 3600, now - 1800])
    bad = write_events(root, "bad", [now - 3600 + n for n in range(len(BAD_SIDECARS))])
    spoil(bad, age_days=400)  # whatever its age, a malformed event is not deleted by age
    config = guard_config(tmp_path, small_fs)
    guard = cllmh("guard", "--config", str(config), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while any(p.exists() for p in old) and time.monotonic() < deadline and guard.poll() is None:
            time.sleep(0.1)
        seen_done = time.time()
        # let the service tick on (interval 0.1 s) until it has stored a status well after that
        while guard.poll() is None and time.monotonic() < deadline:
            stored = read_status(root)
            if stored is not None and stored.updated > seen_done + 1.0:
                break
            time.sleep(0.1)
        assert guard.poll() is None, "the guard died"
    finally:
        guard.send_signal(signal.SIGTERM)
        _, log = guard.communicate(timeout=30)
    assert guard.returncode == 0, log
    assert not any(p.exists() for p in old), log
    assert all(p.exists() for p in fresh + bad)
    for path in bad:
        assert log.count(f"skipping event {path}: malformed event.json") == 1, log
    assert "tick failed" not in log and "Traceback" not in log, log
    assert sorted(deletion_rows(root)) == ["old0", "old1", "old2"]
    stored = read_status(root)
    assert stored is not None and stored.status["malformed_events"] == len(BAD_SIDECARS)


def test_under_space_pressure_malformed_events_go_first(small_fs: Path, tmp_path: Path) -> None:
    root = small_fs / "recordings"
    now = time.time()
    good = write_events(root, "good", [now - 7200 + n for n in range(5)], size=4 * 1024 * 1024)
    bad = write_events(root, "bad", [now - 3600 + n for n in range(3)], size=4 * 1024 * 1024)
    spoil(bad, age_days=0)
    # Leave ~1.5 MB free: far below the 25 % floor (+5 % headroom), more than the 12.6 MB of the
    # malformed events is needed, so one good event has to go too: the oldest, and only after them.
    st = os.statvfs(small_fs)
    with open(small_fs / "filler", "wb") as filler:
        filler.write(b"\0" * (st.f_bavail * st.f_frsize - 1_500_000))
    config = guard_config(tmp_path, small_fs)
    done = run_cllmh("guard", "--config", str(config), "--once")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["free_percent"] >= 25
    assert not any(p.exists() for p in bad), done.stderr
    assert done.stderr.count("deleted malformed event") == 3
    rows = deletion_rows(root)
    assert sorted(rows[:3]) == ["bad0", "bad1", "bad2"] and rows[3:] == ["good0"], rows
    assert [p.name for p in good if p.exists()] == ["good1", "good2", "good3", "good4"]


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """chattr +i: not even root can rename or delete the directory."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_event_that_cannot_be_deleted_does_not_stop_the_others(small_fs: Path, tmp_path: Path) -> None:
    root = small_fs / "recordings"
    old = write_events(root, "old", [time.time() - 30 * 86400 + n for n in range(6)])
    stuck = old[0]  # the oldest: the first the guard tries
    config = guard_config(tmp_path, small_fs)
    with immutable(stuck):
        done = run_cllmh("guard", "--config", str(config), "--once")
        assert done.returncode == 0, done.stderr
        assert f"cannot delete event {stuck} (Operation not permitted)" in done.stderr
        assert [p for p in old if p.exists()] == [stuck]
        # Left whole, still listed, and no deletion recorded for it.
        assert_every_event_is_complete(root)
        assert sorted(deletion_rows(root)) == ["old1", "old2", "old3", "old4", "old5"]
        assert json.loads(done.stdout)["undeletable_events"] == 1

        # The service does not retry it (nor log it again) on every tick.
        from cllmh.guard import Guard, load_config  # noqa: PLC0415

        service = Guard(load_config(config))
        logged = []
        handler = logging.Handler()
        handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("cllmh.guard").addHandler(handler)
        try:
            for _ in range(3):
                service.tick()
        finally:
            logging.getLogger("cllmh.guard").removeHandler(handler)
        assert sum("cannot delete event" in m for m in logged) == 1, logged
    # Once it can be deleted, it is, and recorded once.
    again = run_cllmh("guard", "--config", str(config), "--once")
    assert again.returncode == 0 and not stuck.exists(), again.stderr
    assert sorted(deletion_rows(root)) == [f"old{n}" for n in range(6)]


def test_a_deletion_killed_between_the_move_and_the_commit_is_recorded_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The one moment a kill -9 leaves the index listing a moved event: the next start records
    its deletion (once) and empties the trash."""
    from cllmh.guard import Guard, GuardConfig  # noqa: PLC0415

    root = tmp_path / "recordings"
    moved, kept = write_events(root, "ev", [time.time() - 3600, time.time() - 1800])
    trash = root / ev.TRASH_NAME
    trash.mkdir()
    moved.rename(trash / f"cam1--{moved.name}")  # renamed; the transaction never committed
    Guard(GuardConfig(recordings_dir=root, cache_dir=tmp_path / "cache", floor_percent=1))
    assert deletion_rows(root) == ["ev0"]
    assert not any(trash.iterdir()) and kept.exists()
    assert_every_event_is_complete(root)
    Guard(GuardConfig(recordings_dir=root, cache_dir=tmp_path / "cache", floor_percent=1))
    assert deletion_rows(root) == ["ev0"]


def test_status_reads_the_service_s_figures_read_only_and_once_leaves_them_alone(
    small_fs: Path, tmp_path: Path
) -> None:
    root = small_fs / "recordings"
    write_events(root, "ev", [time.time() - 3600])
    config = guard_config(tmp_path, small_fs)
    segment = small_fs / "cache" / "cam1" / "seg-000.mp4"
    segment.parent.mkdir(parents=True)

    def status(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cllmh("guard", "--config", str(config), *extra, timeout=60)

    assert status("--status").returncode == 1  # nothing stored yet: said, not invented
    service = cllmh("guard", "--config", str(config), stderr=subprocess.PIPE, text=True)
    try:
        # a camera writing 100 kB per 0.1 s into the cache, as the recorder does, while it runs
        with open(segment, "wb") as seg:
            for _ in range(20):
                seg.write(b"\0" * 100_000)
                seg.flush()
                time.sleep(0.1)
            live = status("--status")
        assert service.poll() is None
    finally:
        service.send_signal(signal.SIGTERM)
        _, log = service.communicate(timeout=30)
    assert service.returncode == 0, log
    assert live.returncode == 0, live.stderr
    figures = json.loads(live.stdout)
    assert figures["write_rate_bytes_per_s"] > 0 and figures["hours_left"] is not None, figures
    assert 0 <= figures["age_s"] < 60 and figures["events"] == 1

    def db_files() -> dict[str, tuple[bytes, int]]:
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob(ev.INDEX_NAME + "*")}

    before = db_files()
    stopped = status("--status")
    assert stopped.returncode == 0, stopped.stderr
    after = json.loads(stopped.stdout)
    assert after["updated"] >= figures["updated"] and after["write_rate_bytes_per_s"] > 0
    assert db_files() == before  # read-only: not a byte nor an mtime changed, no file created

    once = status("--once")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)["write_rate_bytes_per_s"] == 0  # its own, one-tick figures
    assert {k: v for k, v in json.loads(status("--status").stdout).items() if k != "age_s"} == {
        k: v for k, v in after.items() if k != "age_s"
    }  # the service's stored status is untouched


def test_a_kept_old_event_survives_pressure_that_deletes_newer_unkept_ones(
    small_fs: Path, tmp_path: Path
) -> None:
    """Marked "keep" with the one implementation (events.set_keep, as the status page does), the
    oldest event stays while a real guard reclaims space from newer ones; the kept events alone then
    hold the floor's space: the guard reports it (kept_fill) and deletes no kept event."""
    root = small_fs / "recordings"
    now = time.time()
    # 6 x 1.5 MiB; with ~1.5 MB free the five unkept ones cannot bring back the 12 MiB floor.
    events = write_events(root, "ev", [now - 7200 + n for n in range(6)], size=1536 * 1024)
    assert ev.set_keep(root, "ev0", True, by="teknisi") and not ev.set_keep(root, "ev0", True)
    assert ev.set_keep(root, "ev1", True) and ev.set_keep(root, "ev1", False)  # unmarked again
    assert ev.kept_ids(root) == {"ev0"}
    st = os.statvfs(small_fs)
    with open(small_fs / "filler", "wb") as filler:  # ~1.5 MB free: far below the 25 % floor
        filler.write(b"\0" * (st.f_bavail * st.f_frsize - 1_500_000))
    config = guard_config(tmp_path, small_fs)
    done = run_cllmh("guard", "--config", str(config), "--once")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert [p.name for p in events if p.exists()] == ["ev0"], done.stderr
    assert deletion_rows(root) == ["ev1", "ev2", "ev3", "ev4", "ev5"]
    # Still below the floor (the filler): the kept event holds space it may not take, and says so.
    assert status["kept_events"] == 1 and status["kept_bytes"] >= 1536 * 1024
    assert status["kept_fill"] is True and status["free_percent"] < 25, status
    assert "events marked keep hold" in done.stderr
