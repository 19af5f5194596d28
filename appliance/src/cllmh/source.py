"""One ffmpeg reading a camera for the recorder: copied segments, analysis frames, or both.

The process is watched, never trusted:
- frames are read on a thread into a small bounded queue, so the recorder waits with a timeout
  and always honours a stop;
- stderr is read on another thread: showinfo's pts give each frame its time, every other line is
  logged, credentials removed (warnings and errors as such, the rest at debug level);
- the segment list is a small window (`-segment_list_size`): ffmpeg 5.1 rewrites it whole into
  `<list>.tmp` and renames it over the list at every cut, so a read sees a complete window of
  the last entries, and only entries past the last one taken are new. The cost of a read does
  not depend on how long ffmpeg has been running;
- `Watchdog` (pure) says when the run is broken: no frame for `stall_s`, no new segment for
  max(3 x segment_s, stall_s) (both `stall_s` longer before the first one, for connecting and
  probing), or timestamps going back or jumping forward.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import queue
import re
import subprocess
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cllmh.decide import Span
from cllmh.ingest import redact, redact_text
from cllmh.timebase import Run, TimeBase

LOG = logging.getLogger("cllmh.recorder")

LIST_SIZE = 8  # entries in ffmpeg's segment list window: far more than cuts between two reads
JUMP_S = 5.0  # a step between analysed frames larger than this is a broken timeline
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\b.*?\bpts_time:\s*([-0-9.]+)")
_LEVEL = re.compile(r"\[(panic|fatal|error|warning|info|verbose|debug)\]")
_SEGMENT_NUMBER = re.compile(r"(\d+)\.mp4$")


def is_file_source(url: str) -> bool:
    """A file ends: its end is the end of the recording, not an outage."""
    return url.startswith(("/", "file:"))


def input_options(url: str, *, io_timeout_s: float) -> list[str]:
    """Options before `-i` that make a dead network peer an error instead of a hang (pure)."""
    if url.startswith("rtsp"):
        return ["-rtsp_transport", "tcp", "-timeout", str(int(io_timeout_s * 1_000_000))]
    if url.startswith(("rtmp", "http")):
        return ["-rw_timeout", str(int(io_timeout_s * 1_000_000))]
    return []


@dataclass(frozen=True)
class FrameSpec:
    """Raw analysis frames: yuv420p at `width` x `height`, about `fps` per second."""

    width: int
    height: int
    fps: float

    @property
    def nbytes(self) -> int:
        return self.width * self.height * 3 // 2


@dataclass(frozen=True)
class SegmentSpec:
    """Copied fragmented-MP4 segments of about `seconds`, in `cache`, named per run."""

    cache: Path
    seconds: float

    def pattern(self, run: int) -> Path:
        return self.cache / f"seg-{run:06d}-%08d.mp4"

    def listing(self, run: int) -> Path:
        return self.cache / f"segments-{run:06d}.csv"


def ffmpeg_command(
    url: str,
    *,
    run: int,
    segments: SegmentSpec | None,
    frames: FrameSpec | None,
    realtime: bool = False,
    io_timeout_s: float = 15.0,
) -> list[str]:
    """The ffmpeg of one run: segments (copied, no decode), frames (decoded, sampled), or both (pure)."""
    if segments is None and frames is None:
        raise ValueError("a source needs segments, frames or both")
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"]
    if realtime:
        args += ["-re"]
    args += [*input_options(url, io_timeout_s=io_timeout_s), "-i", url]
    if segments is not None:
        args += [
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_time",
            f"{segments.seconds:g}",
            "-reset_timestamps",
            "1",
            "-segment_format",
            "mp4",
            "-segment_format_options",
            "movflags=+frag_keyframe+empty_moov+default_base_moof",
            "-segment_list",
            str(segments.listing(run)),
            "-segment_list_type",
            "csv",
            "-segment_list_flags",
            "+live",
            "-segment_list_size",
            str(LIST_SIZE),
            str(segments.pattern(run)),
        ]
    if frames is not None:
        # select, not fps: fps fills a forward jump with copies and drops frames after a jump
        # back until the old time is reached again; select passes the real timestamps through
        # (at most `fps` a second, and any frame going back), so the watchdog can see them.
        rate = f"{frames.fps:g}"
        select = (
            f"select='isnan(prev_selected_t)+gt(floor(t*{rate}),floor(prev_selected_t*{rate}))"
            f"+lt(t,prev_selected_t)'"
        )
        args += [
            "-map",
            "0:v:0",
            "-vf",
            f"{select},scale={frames.width}:{frames.height},showinfo",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "pipe:1",
        ]
    return args


def segment_number(name: str) -> int:
    match = _SEGMENT_NUMBER.search(name)
    return int(match.group(1)) if match else -1


class SegmentList:
    """The new entries of one run's segment list; remembers only the last number taken."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = -1
        self._stamp: tuple[int, int, int] | None = None
        self.rows_read = 0  # rows parsed by the last read (a window, whatever the history)
        self.missed = range(0)  # numbers that left the window before a read saw them

    def new_entries(self, rows: Iterable[list[str]]) -> list[tuple[str, float, float]]:
        """Rows (file, start, end) of a window, oldest first -> those not taken yet (pure).

        Numbers skipped between the last one taken and the first new one went out of the window
        unseen (reads too slow for the cuts); they are listed in `missed`.
        """
        found: list[tuple[str, float, float]] = []
        self.rows_read = 0
        self.missed = range(0)
        for row in rows:
            self.rows_read += 1
            if len(row) < 3:
                continue
            number = segment_number(row[0])
            if number > self.last:
                try:
                    found.append((row[0], float(row[1]), float(row[2])))
                except ValueError:
                    continue
                if not found[:-1]:  # a window is consecutive: only its first new entry can skip
                    self.missed = range(self.last + 1, number)
                self.last = number
        return found

    def read(self) -> list[tuple[str, float, float]]:
        """Read the list if it changed since the last read (one stat otherwise)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return []
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        self._stamp = stamp
        return self.new_entries(csv.reader(io.StringIO(text)))


@dataclass
class Watchdog:
    """When is a run broken? Pure: times are passed in (recorder's monotonic seconds)."""

    stall_s: float
    segment_s: float
    frames: bool
    segments: bool
    started: float
    jump_s: float = JUMP_S
    last_frame: float | None = None
    last_segment: float | None = None
    last_pts: float | None = None
    last_segment_end: float | None = None

    @property
    def segment_limit(self) -> float:
        return max(3 * self.segment_s, self.stall_s)

    def on_frame(self, pts: float, now: float) -> str | None:
        problem = None
        if self.last_pts is not None:
            step = pts - self.last_pts
            if step < 0:
                problem = f"frame timestamps went back by {-step:.1f} s"
            elif step > self.jump_s:
                problem = f"frame timestamps jumped {step:.1f} s forward"
        self.last_pts, self.last_frame = pts, now
        return problem

    def on_segment(self, start: float, end: float, now: float) -> str | None:
        problem = None
        if self.last_segment_end is not None and start < self.last_segment_end - self.jump_s:
            problem = f"segment timestamps went back by {self.last_segment_end - start:.1f} s"
        self.last_segment_end, self.last_segment = end, now
        return problem

    def check(self, now: float) -> str | None:
        # before the first frame or segment, connecting and probing the stream get `stall_s` more
        if self.frames:
            limit = self.stall_s if self.last_frame is not None else 2 * self.stall_s
            since = now - (self.last_frame if self.last_frame is not None else self.started)
            if since >= limit:
                return f"no frame for {since:.0f} s"
        if self.segments:
            limit = self.segment_limit + (0 if self.last_segment is not None else self.stall_s)
            since = now - (self.last_segment if self.last_segment is not None else self.started)
            if since >= limit:
                return f"no new segment for {since:.0f} s"
        return None


@dataclass(frozen=True)
class Frame:
    t: float  # recorder time
    pts: float
    data: bytes  # yuv420p


@dataclass(frozen=True)
class Segment:
    path: Path
    span: Span  # recorder time


END = object()  # the frame queue's end marker: ffmpeg closed its output


class Source:
    """One run of one ffmpeg; make a new one to restart."""

    STOP_TIMEOUT_S = 10.0

    def __init__(
        self,
        name: str,
        url: str,
        *,
        run: int,
        timebase: TimeBase,
        segments: SegmentSpec | None,
        frames: FrameSpec | None,
        stall_s: float,
        realtime: bool = False,
    ) -> None:
        self.name = name
        self.url = url
        self.run_number = run
        self.run: Run = timebase.run()
        self.timebase = timebase
        self.segments = segments
        self.frames = frames
        self.command = ffmpeg_command(
            url, run=run, segments=segments, frames=frames, realtime=realtime, io_timeout_s=2 * stall_s
        )
        self.watchdog = Watchdog(
            stall_s=stall_s,
            segment_s=segments.seconds if segments else 0.0,
            frames=frames is not None,
            segments=segments is not None,
            started=timebase.now(),
        )
        self.listing = SegmentList(segments.listing(run)) if segments else None
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.tail: deque[str] = deque(maxlen=8)  # ffmpeg's last words, for the restart message
        self._pts: dict[int, float] = {}
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self.problem: str | None = None  # the first sign that this run is broken
        self.timeline_broken = False  # its timestamps went back or jumped

    # -- process -----------------------------------------------------------------------------
    def start(self) -> None:
        LOG.info("%s: starting ffmpeg run %d on %s", self.name, self.run_number, redact(self.url))
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.frames else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True)]
        if self.frames:
            self._threads.append(threading.Thread(target=self._read_frames, daemon=True))
        for thread in self._threads:
            thread.start()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        """Terminate ffmpeg (it closes its segment and list), kill it if it does not exit."""
        self._stopping.set()
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                LOG.warning("%s: ffmpeg run %d ignored SIGTERM; killing it", self.name, self.run_number)
                proc.kill()
                proc.wait(timeout=self.STOP_TIMEOUT_S)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return proc.returncode

    # -- threads -----------------------------------------------------------------------------
    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = redact_text(raw.decode("utf-8", "replace").rstrip())
            if "showinfo" in line:
                match = _SHOWINFO.search(line)
                if match:
                    with self._cond:
                        self._pts[int(match.group(1))] = float(match.group(2))
                        if len(self._pts) > 256:  # numbering restarted: forget the stale ones
                            for n in sorted(self._pts)[:-64]:
                                del self._pts[n]
                        self._cond.notify_all()
                continue
            if not line.strip():
                continue
            level = _LEVEL.search(line)
            self.tail.append(line)
            if level and level.group(1) in ("panic", "fatal", "error", "warning"):
                LOG.warning("%s: ffmpeg: %s", self.name, line)
            else:
                LOG.debug("%s: ffmpeg: %s", self.name, line)

    def _pts_of(self, n: int) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: n in self._pts or self._stopping.is_set(), timeout=5)
            return self._pts.pop(n, None)

    def _put(self, item: object) -> bool:
        while not self._stopping.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _read_frames(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self.frames is not None
        stdout: IO[bytes] = self.proc.stdout
        size = self.frames.nbytes
        n = 0
        while len(data := stdout.read(size)) == size:
            if self._stopping.is_set():
                continue  # stopping: drain, so that an ffmpeg blocked writing sees SIGTERM and exits
            pts = self._pts_of(n)
            n += 1
            if pts is None:
                LOG.warning("%s: frame %d came without its showinfo time; skipped", self.name, n - 1)
                continue
            self._put((pts, data))
        self._put(END)

    def health(self) -> str | None:
        """Why this run must be restarted, or None while it is fine."""
        return self.problem or self.watchdog.check(self.timebase.now())

    # -- what the recorder reads ---------------------------------------------------------------
    def next_frame(self, timeout: float) -> Frame | object | None:
        """The next frame, END once ffmpeg's output ended, or None when nothing came in time."""
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is END:
            return END
        pts, data = item
        problem = self.watchdog.on_frame(pts, self.timebase.now())
        self.problem = self.problem or problem
        self.timeline_broken = self.timeline_broken or problem is not None
        return Frame(self.run.mono(pts), pts, data)

    def new_segments(self) -> list[Segment]:
        """Segments completed since the last call, in recorder time."""
        if self.listing is None or self.segments is None:
            return []
        found = []
        entries = self.listing.read()
        if self.listing.missed:
            LOG.warning(
                "%s: %d segments were cut faster than read and are dropped from the cache",
                self.name,
                len(self.listing.missed),
            )
            for number in self.listing.missed:
                (self.segments.cache / (self.segments.pattern(self.run_number).name % number)).unlink(
                    missing_ok=True
                )
        for name, start, end in entries:
            problem = self.watchdog.on_segment(start, end, self.timebase.now())
            self.problem = self.problem or problem
            self.timeline_broken = self.timeline_broken or problem is not None
            t_end = self.run.mono(end)  # anchored at a cut when no frame came first
            found.append(Segment(self.segments.cache / name, Span(t_end - (end - start), t_end)))
        return found
