"""The one event writer, on real segments: visible from its start, one playable file, whole or absent."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cllmh import events as ev
from conftest import need, probe_video
from footage import H264, VTEST, ffmpeg
from footage import need as need_file

SEGMENT_S = 4.0
T0 = 1_790_000_000.0  # a fixed wall time for the events of these tests


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """vtest cut the way the recorder's ffmpeg cuts it: 4 s fragmented-MP4 segments, copied."""
    out = tmp_path_factory.mktemp("segments")
    ffmpeg("-i", str(need_file(VTEST)), *H264, str(out / "vtest.mp4"))
    ffmpeg(
        "-i", str(out / "vtest.mp4"), "-map", "0:v:0", "-c", "copy", "-f", "segment",
        "-segment_time", f"{SEGMENT_S:g}", "-reset_timestamps", "1", "-segment_format", "mp4",
        "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
        str(out / "seg-%08d.mp4"),
    )  # fmt: skip
    return sorted(out.glob("seg-*.mp4"))


def duration(path: Path) -> float:
    out = subprocess.run(
        [need("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return float(out.stdout)


def decodes_to_the_end(path: Path) -> int:
    """Frames decoded from the whole file; fails on any decoding error."""
    out = subprocess.run(
        [need("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert out.stderr.strip() == "", out.stderr
    return int(out.stdout)


def index_row(root: Path, event_id: str) -> tuple | None:
    db = sqlite3.connect(root / ev.INDEX_NAME)
    try:
        return db.execute(
            "SELECT camera, start, end, labels FROM events WHERE id = ?", (event_id,)
        ).fetchone()
    finally:
        db.close()


def assert_whole(path: Path) -> dict:
    """A kept event: sidecar, one clip that decodes end to end and covers its clips' span, no leftovers."""
    sidecar = ev.read_sidecar(path)
    assert sidecar is not None
    assert [c["file"] for c in sidecar["clips"]] == [ev.CLIP]
    clip = path / ev.CLIP
    assert probe_video(str(clip))["codec_name"] == "h264"
    assert decodes_to_the_end(clip) > 0
    span = sidecar["clips"][0]["end"] - sidecar["clips"][0]["start"]
    assert abs(duration(clip) - span) < 0.5, (duration(clip), span)
    assert sidecar["files"][ev.CLIP] == clip.stat().st_size
    assert not (path / ev.PARTS).exists() and not (path / ev.OPEN_MARKER).exists()
    assert not ev.is_locked(path)
    return sidecar


def test_an_event_is_visible_from_its_start_and_kept_as_one_seekable_file(
    segments: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    writer = ev.EventWriter.open(
        root, camera="gerbang", event_id="e1", start=T0, info={"model": "m.tflite", "pre_roll": 5.0}
    )
    # open: an index row without an end, the directory locked, no sidecar yet
    assert index_row(root, "e1") == ("gerbang", T0, None, "{}")
    assert ev.is_locked(writer.path) and not (writer.path / ev.SIDECAR).exists()
    writer.update(
        labels={"person": 0.91}, snapshot_jpeg=b"\xff\xd8\xff\xe0jpeg", boxes={"person": [1, 2, 3, 4]}
    )
    assert json.loads(index_row(root, "e1")[3]) == {"person": 0.91}
    assert (writer.path / ev.SNAPSHOT).read_bytes().startswith(b"\xff\xd8")
    (info,) = ev.scan(root)
    assert info.in_progress and not info.complete

    chosen = segments[3:8]
    for i, seg in enumerate(chosen):
        writer.add_segment(seg, T0 - 5 + i * SEGMENT_S, T0 - 5 + (i + 1) * SEGMENT_S)
    path = writer.finish(end=T0 + 12, extra={"record_size": [768, 576]})
    assert path is not None
    sidecar = assert_whole(path)
    assert abs(duration(path / ev.CLIP) - len(chosen) * SEGMENT_S) < 0.5
    # copied, not re-encoded: the joined clip holds exactly the segments' frames
    assert decodes_to_the_end(path / ev.CLIP) == sum(decodes_to_the_end(s) for s in chosen)
    # seekable: a frame from the middle decodes directly
    middle = [need("ffmpeg"), "-v", "error", "-ss", "11", "-i", str(path / ev.CLIP), "-frames:v", "1"]
    subprocess.run([*middle, "-f", "null", "-"], check=True, timeout=60)
    assert sidecar["labels"] == {"person": 0.91} and sidecar["boxes"] == {"person": [1, 2, 3, 4]}
    assert sidecar["model"] == "m.tflite" and sidecar["record_size"] == [768, 576]
    assert (sidecar["start"], sidecar["end"]) == (T0, T0 + 12)
    assert index_row(root, "e1")[2] == T0 + 12
    assert [e.complete for e in ev.scan(root)] == [True]


def test_an_event_without_video_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    writer = ev.EventWriter.open(root, camera="gerbang", event_id="e2", start=T0, info={})
    writer.update(labels={"person": 0.8})
    assert writer.finish(end=T0 + 1) is None
    assert not writer.path.exists() and index_row(root, "e2") is None


def test_an_open_event_of_a_killed_recorder_is_kept_truncated(segments: list[Path], tmp_path: Path) -> None:
    root, cache = tmp_path / "rec", tmp_path / "cache"
    cache.mkdir()
    writer = ev.EventWriter.open(root, camera="gerbang", event_id="e3", start=T0, info={"pre_roll": 5.0})
    writer.update(labels={"person": 0.95}, snapshot_jpeg=b"\xff\xd8\xff\xe0")
    for i, seg in enumerate(segments[:2]):
        writer.add_segment(seg, T0 + i * SEGMENT_S, T0 + (i + 1) * SEGMENT_S)
    # the recorder dies: its lock goes with it; the cache holds the segments written since, the last
    # one cut short in the middle of a fragment, and one from long before the event
    os.close(writer._lock_fd)  # what the kernel does for a killed process
    for i, seg in enumerate(segments[2:5]):
        data = seg.read_bytes()
        copy = cache / f"seg-1-{i:08d}.mp4"
        copy.write_bytes(data if i < 2 else data[: len(data) // 2])
        written = SEGMENT_S if i < 2 else SEGMENT_S / 2  # its mtime: when it was last written to
        os.utime(copy, (T0 + (i + 2) * SEGMENT_S + written,) * 2)
    old = cache / "seg-0-00000099.mp4"
    old.write_bytes(segments[6].read_bytes())
    os.utime(old, (T0 - 3600,) * 2)
    (cache / "seg-1-00000003.mp4").write_bytes(b"")  # just opened when the power went

    kept = ev.recover_open_events(root, "gerbang", cache)
    assert kept == [writer.path]
    sidecar = assert_whole(writer.path)
    assert sidecar["truncated"] is True and sidecar["labels"] == {"person": 0.95}
    # the two parts, the two whole cache segments and about half of the cut one; not the old one
    assert 4 * SEGMENT_S + 0.5 < duration(writer.path / ev.CLIP) < 5 * SEGMENT_S
    assert index_row(root, "e3")[2] == sidecar["end"] and sidecar["end"] > T0 + 4 * SEGMENT_S
    assert ev.recover_open_events(root, "gerbang", cache) == []  # nothing left to do


def test_a_writer_killed_after_its_sidecar_is_only_cleaned_up(segments: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "rec"
    writer = ev.EventWriter.open(root, camera="gerbang", event_id="e4", start=T0, info={})
    writer.add_segment(segments[0], T0, T0 + SEGMENT_S)
    path = writer.finish(end=T0 + 3)
    assert path is not None
    before = (path / ev.SIDECAR).read_bytes()
    (path / ev.PARTS).mkdir()  # as if killed between the sidecar and the clean-up
    (path / ev.OPEN_MARKER).write_text("{}")
    assert ev.recover_open_events(root, "gerbang", tmp_path / "no-cache") == []
    assert (path / ev.SIDECAR).read_bytes() == before
    assert_whole(path)


KILLED_WRITER = r"""
import sys, time
from pathlib import Path
from cllmh import events as ev
root, segs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
for n in range(1000):
    w = ev.EventWriter.open(root, camera="cam", event_id=f"k{n:03d}", start=1.79e9 + n * 60, info={})
    w.update(labels={"person": 0.9}, snapshot_jpeg=b"\xff\xd8\xff\xe0")
    for i, seg in enumerate(segs):
        w.add_segment(seg, 1.79e9 + n * 60 + 4 * i, 1.79e9 + n * 60 + 4 * (i + 1))
    w.finish(end=1.79e9 + n * 60 + 4 * len(segs))
    print(n, flush=True)
"""


def test_kill_9_at_any_moment_leaves_every_event_whole_or_recoverable(
    segments: list[Path], tmp_path: Path
) -> None:
    rng = random.Random(9)
    root = tmp_path / "rec"
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    recovered = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), *map(str, segments[:4])],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and any ffmpeg it runs
        proc.wait(timeout=10)
        recovered += len(ev.recover_open_events(root, "cam", tmp_path / "no-cache"))
        for event in ev.scan(root):
            assert event.complete, f"{event.path} neither whole nor gone after recovery"
            assert_whole(event.path)
        # a previous run's events are finished, not reopened: their ids repeat, so clear for the next
        for event in ev.scan(root):
            os.rename(event.path, tmp_path / f"done-{rng.random()}")
    print(f"6 kills, {recovered} events recovered as truncated")


def test_a_writer_killed_inside_open_leaves_nothing_after_recovery(
    segments: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    kept = ev.EventWriter.open(root, camera="gerbang", event_id="kept", start=T0, info={})
    kept.add_segment(segments[0], T0, T0 + SEGMENT_S)
    kept.finish(end=T0 + 2)
    half = ev.event_path(root, "gerbang", T0 + 60, "half")
    (half / ev.PARTS).mkdir(parents=True)  # the directory made, the lock and marker not yet
    (half / ev.LOCK).touch()
    assert ev.recover_open_events(root, "gerbang", tmp_path / "no-cache") == []
    assert not half.exists()
    assert [e.event_id for e in ev.scan(root)] == ["kept"]
