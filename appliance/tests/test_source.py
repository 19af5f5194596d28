"""The recorder's source: the ffmpeg command, the segment list window, the watchdog, real frames."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from cllmh.source import (
    END,
    LIST_SIZE,
    Frame,
    FrameSpec,
    SegmentList,
    SegmentSpec,
    Source,
    Watchdog,
    ffmpeg_command,
)
from cllmh.timebase import TimeBase
from footage import H264, VTEST, ffmpeg, need


@pytest.fixture(scope="module")
def vtest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "vtest.mp4"
    ffmpeg("-i", str(need(VTEST)), "-t", "30", *H264, str(path))
    return path


def window(first: int, last: int, run: int = 1) -> list[list[str]]:
    """ffmpeg's segment list as -segment_list_size writes it: the last LIST_SIZE entries."""
    return [
        [f"seg-{run:06d}-{n:08d}.mp4", f"{4 * n:.6f}", f"{4 * n + 4:.6f}"]
        for n in range(max(first, last - LIST_SIZE + 1), last + 1)
    ]


def test_segment_bookkeeping_per_tick_does_not_depend_on_the_history() -> None:
    month = 30 * 24 * 3600 // 4  # a month of 4 s segments
    fresh, old = SegmentList(Path("/nonexistent/a.csv")), SegmentList(Path("/nonexistent/b.csv"))
    old.new_entries(window(0, month - 1))  # a recorder running for a month
    for history, listing in ((0, fresh), (month, old)):
        taken, rows = [], 0
        for last in range(history, history + 1000):
            taken += [name for name, _, _ in listing.new_entries(window(0, last))]
            rows += listing.rows_read
            assert listing.rows_read <= LIST_SIZE  # what one tick reads is a window
        assert taken == [f"seg-000001-{n:08d}.mp4" for n in range(history, history + 1000)]  # each once
        assert rows == 1000 * LIST_SIZE - (LIST_SIZE * (LIST_SIZE - 1) // 2 if history == 0 else 0)
        assert vars(listing).keys() == {"path", "last", "_stamp", "rows_read", "missed"}  # no growing set


def test_segments_that_left_the_window_unseen_are_reported_missed() -> None:
    listing = SegmentList(Path("/nonexistent/segments.csv"))
    listing.new_entries(window(0, 3))
    new = listing.new_entries(window(0, 20))  # 17 cuts between two reads, the window holds 8
    assert next(segment for segment, _, _ in new) == "seg-000001-00000013.mp4"
    assert listing.missed == range(4, 13)


def test_ffmpeg_writes_a_bounded_list_window_by_rename(vtest: Path, tmp_path: Path) -> None:
    """What SegmentList relies on, as ffmpeg 5.1 does it: the window, complete, never appended to."""
    spec = SegmentSpec(tmp_path, 2)
    command = ffmpeg_command(str(vtest), run=7, segments=spec, frames=None)
    done = subprocess.run(
        ["strace", "-f", "-e", "trace=rename,openat", "-o", str(tmp_path / "trace"), *command],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.reader(io.StringIO(spec.listing(7).read_text())))
    assert len(rows) == LIST_SIZE
    assert rows[-1][0] == f"seg-000007-{len(list(tmp_path.glob('seg-000007-*.mp4'))) - 1:08d}.mp4"
    trace = (tmp_path / "trace").read_text()
    assert trace.count(f'rename("{spec.listing(7)}.tmp", "{spec.listing(7)}")') >= 10
    assert f'openat(AT_FDCWD, "{spec.listing(7)}", O_WRONLY' not in trace  # never written in place


def test_segment_names_and_lists_are_unique_per_run(tmp_path: Path) -> None:
    spec = SegmentSpec(tmp_path, 4)
    first, second = (
        ffmpeg_command("rtmp://127.0.0.1/live/cam", run=n, segments=spec, frames=None) for n in (1, 2)
    )
    assert str(spec.pattern(1)) in first and str(spec.pattern(2)) in second
    assert str(spec.listing(1)) in first and str(spec.listing(2)) in second
    assert spec.pattern(1) != spec.pattern(2) and spec.listing(1) != spec.listing(2)
    assert "pipe:1" not in first and "-vf" not in first  # segments only: nothing decoded


def test_watchdog_sees_stalled_frames() -> None:
    dog = Watchdog(stall_s=15, segment_s=4, frames=True, segments=False, started=100)
    assert dog.check(129) is None  # connecting and probing: twice stall_s for the first frame
    assert dog.check(130) == "no frame for 30 s"
    assert dog.on_frame(0.0, 130) is None
    assert dog.check(144) is None
    assert dog.check(145) == "no frame for 15 s"


def test_watchdog_sees_stalled_segments() -> None:
    dog = Watchdog(stall_s=15, segment_s=10, frames=False, segments=True, started=100)
    assert dog.check(144) is None  # max(3 x 10, 15), and stall_s more for the first one
    assert dog.check(145) == "no new segment for 45 s"
    assert dog.on_segment(0.0, 10.0, 145) is None
    assert dog.check(174) is None
    assert dog.check(175) == "no new segment for 30 s"


def test_watchdog_sees_timestamps_going_back_or_jumping() -> None:
    dog = Watchdog(stall_s=15, segment_s=4, frames=True, segments=True, started=100)
    assert dog.on_frame(10.0, 100) is None
    assert dog.on_frame(10.2, 100.2) is None
    assert dog.on_frame(0.0, 100.4) == "frame timestamps went back by 10.2 s"  # a new publisher
    assert dog.on_frame(9.0, 100.6) == "frame timestamps jumped 9.0 s forward"
    assert dog.on_frame(13.0, 100.8) is None  # within the jump tolerance
    assert dog.on_segment(0.0, 4.0, 101) is None
    assert dog.on_segment(1.0, 5.0, 102) is None  # within the jump tolerance
    assert dog.on_segment(-10.0, -6.0, 103) == "segment timestamps went back by 15.0 s"


def test_frames_are_yuv420p_and_their_y_plane_is_the_gray_image(vtest: Path, tmp_path: Path) -> None:
    spec = FrameSpec(384, 288, 5)
    source = Source(
        "cam",
        str(vtest),
        run=1,
        timebase=TimeBase(),
        segments=SegmentSpec(tmp_path, 4),
        frames=spec,
        stall_s=15,
    )
    source.start()
    frames: list[Frame] = []
    while (item := source.next_frame(timeout=30)) is not END:
        assert isinstance(item, Frame), "no frame within 30 s"
        frames.append(item)
    assert source.stop() == 0
    assert len(frames) == 150  # 30 s at 5 fps
    assert all(len(f.data) == 384 * 288 * 3 // 2 for f in frames)  # 1.5 bytes per pixel
    assert [round(f.pts, 3) for f in frames[:3]] == [0.0, 0.2, 0.4]
    assert all(b.t - a.t == pytest.approx(0.2, abs=1e-3) for a, b in itertools.pairwise(frames))
    cap = cv2.VideoCapture(str(vtest))
    ok, first = cap.read()
    assert ok
    expected = cv2.cvtColor(cv2.resize(first, (384, 288), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    y = np.frombuffer(frames[0].data, np.uint8, count=384 * 288).reshape(288, 384)
    limited = 16 + expected.astype(float) * 219 / 255  # Y is limited range, gray full range
    assert np.abs(y.astype(float) - limited).mean() < 3
    segments = source.new_segments()
    assert segments and segments[0].span.start == frames[0].t  # frames and segments share the run's time
    assert all(s.path.exists() for s in segments)
