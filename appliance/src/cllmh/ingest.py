"""Camera ingest supervisor: one camera's RTSP pulled by ffmpeg and pushed, copied, to RTMP.

The decisions (how long to wait before the next attempt, which ffmpeg arguments to use) are
pure functions; `Supervisor` is the thin loop that runs ffmpeg and applies them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

LOG = logging.getLogger("cllmh.ingest")

SUPPORTED_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "file", "")
AUDIO_MODES = ("drop", "copy", "aac")

# Debian 12's ffmpeg (5.1) cannot put H.265 into FLV, the container of the RTMP restream.
HEVC_FIX = (
    "the camera sends H.265 (HEVC), which the RTMP restream cannot carry (Debian 12's ffmpeg 5.1 "
    "has no HEVC in FLV): switch the camera's main stream to H.264 in its web settings, or point "
    "this camera entry at its H.264 substream (e.g. /Streaming/Channels/102 instead of 101 on "
    "Hikvision, subtype=1 instead of 0 on Dahua)"
)

# ffmpeg messages that mean the camera's configuration, not the network, is the problem: no
# retry can succeed until someone changes it (pattern, what to do).
_FATAL_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"video codec (hevc|h265) not compatible with flv", re.IGNORECASE), HEVC_FIX),
)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts; a run that lasted `stable_after` s resets it."""

    initial: float = 1.0
    maximum: float = 8.0
    factor: float = 2.0
    stable_after: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")

    def failures_after(self, failures: int, run_seconds: float) -> int:
        """Consecutive failures counted after a run of `run_seconds` ended."""
        return 1 if run_seconds >= self.stable_after else failures + 1

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failed runs (0 before the first)."""
        if failures <= 0:
            return 0.0
        return min(self.maximum, self.initial * self.factor ** (failures - 1))


# Credentials some cameras take as URL arguments (?password=, XMEye's /user=admin&password=...).
_SECRET_ARGUMENT = re.compile(
    r"(?i)((?:[?&;/]|%3f|%26)(?:password|passwd|pass|pwd|token|key|secret|auth|signature|sig)=)[^&;/\s'\"]*"
)


def redact(url: str) -> str:
    """The URL with any password replaced (in its user part or as an argument), for logs."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        url = parts._replace(netloc=netloc).geturl()
    return _SECRET_ARGUMENT.sub(r"\1***", url)


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` with the password of every URL in it replaced (ffmpeg prints URLs in errors)."""
    return _SECRET_ARGUMENT.sub(r"\1***", _USERINFO.sub(r"\g<scheme>\g<user>:***@", text))


def diagnose(line: str) -> str | None:
    """What to do about an ffmpeg message that no retry can fix, or None (pure)."""
    for pattern, fix in _FATAL_MESSAGES:
        if pattern.search(line):
            return fix
    return None


@dataclass(frozen=True)
class Command:
    """A process to run: its arguments, and what to write to its standard input (then closed)."""

    argv: list[str]
    stdin: str | None = None


# Protocols a camera URL may lead ffmpeg through (pipe: the concat script itself).
_NETWORK_PROTOCOLS = "pipe,rtsp,rtsps,rtmp,rtmps,rtp,srtp,udp,tcp,tls,http,https,httpproxy,crypto"


def source_input(source: str, *, io_timeout_s: float) -> Command:
    """ffmpeg/ffprobe input arguments that open `source` without the URL in the argument list.

    A camera URL carries its password, and any user can read any process's arguments (`ps`). A
    network URL is therefore given as a one-file ffconcat script on standard input: the URL and
    its input options are in the script, and the arguments name only `pipe:0`. A local file has
    no password and is opened directly.
    """
    scheme = urlsplit(source).scheme.lower()
    options: list[tuple[str, str]] = []
    if scheme.startswith("rtsp"):
        # TCP survives NAT and lossy links; timeout (µs) ends a stalled or unreachable read.
        options = [("rtsp_transport", "tcp"), ("timeout", str(int(io_timeout_s * 1_000_000)))]
    elif scheme.startswith("rtmp") or scheme.startswith("http"):
        options = [("rw_timeout", str(int(io_timeout_s * 1_000_000)))]
    if scheme in ("", "file"):
        return Command(["-i", source])
    quoted = source.replace("'", "'\\''")
    script = "\n".join(
        ["ffconcat version 1.0", f"file '{quoted}'", *(f"option {key} {value}" for key, value in options)]
    )
    argv = ["-f", "concat", "-safe", "0", "-protocol_whitelist", _NETWORK_PROTOCOLS, "-i", "pipe:0"]
    return Command(argv, script + "\n")


def ffmpeg_command(
    source: str,
    target: str,
    *,
    audio: str = "drop",
    io_timeout_s: float = 10.0,
    ffmpeg: str = "ffmpeg",
) -> Command:
    """The ffmpeg command that restreams `source` to `target` without re-encoding video.

    The source URL (with its password) goes to ffmpeg on standard input, never in its arguments.
    """
    scheme = urlsplit(source).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise ValueError(f"unsupported camera URL scheme {scheme!r} in {redact(source)}")
    if audio not in AUDIO_MODES:
        raise ValueError(f"audio must be one of {', '.join(AUDIO_MODES)}, not {audio!r}")
    source_args = source_input(source, io_timeout_s=io_timeout_s)
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-fflags", "+genpts"]
    args += [*source_args.argv, "-map", "0:v:0", "-c:v", "copy"]
    if audio == "drop":
        args += ["-an"]
    else:
        args += ["-map", "0:a:0?", "-c:a", "copy" if audio == "copy" else "aac"]
    args += ["-f", "flv", target]
    return Command(args, source_args.stdin)


class Supervisor:
    """Runs ffmpeg until stopped, restarting it with backoff whenever it exits."""

    def __init__(
        self,
        name: str,
        command: Command | Sequence[str],
        backoff: Backoff,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.command = command if isinstance(command, Command) else Command(list(command))
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep
        self.failures = 0
        self.runs = 0
        self._stopping = False
        self._child: subprocess.Popen[bytes] | None = None

    def stop(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        self._stopping = True
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()

    def run(self, max_runs: int | None = None) -> int:
        """Supervise until stop() (or `max_runs` ffmpeg runs); returns the last exit code."""
        code = 0
        while not self._stopping and (max_runs is None or self.runs < max_runs):
            started = self.clock()
            LOG.info("%s: starting ffmpeg (attempt %d)", self.name, self.failures + 1)
            self._child = subprocess.Popen(
                self.command.argv,
                stdin=subprocess.DEVNULL if self.command.stdin is None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                # The camera settings (URL with password) stay with this process.
                env={key: value for key, value in os.environ.items() if not key.startswith("CLLMH_")},
            )
            assert self._child.stderr is not None
            if self._child.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    self._child.stdin.write(self.command.stdin or "")
                    self._child.stdin.close()
            fix = None
            for line in self._child.stderr:  # ffmpeg's own messages, credentials removed
                if line.strip():
                    LOG.warning("%s: ffmpeg: %s", self.name, redact_text(line.rstrip()))
                    fix = fix or diagnose(line)
            code = self._child.wait()
            self._child = None
            self.runs += 1
            if self._stopping:
                break
            lasted = self.clock() - started
            self.failures = self.backoff.failures_after(self.failures, lasted)
            if fix is not None:
                # A configuration error: retrying fast cannot help; say what to change instead.
                wait = self.backoff.maximum
                LOG.error(
                    "%s: cannot restream: %s; retrying in %.1f s (failure %d in a row)",
                    self.name,
                    fix,
                    wait,
                    self.failures,
                )
            else:
                wait = self.backoff.delay(self.failures)
                LOG.warning(
                    "%s: ffmpeg exited with code %s after %.1f s; retrying in %.1f s (failure %d in a row)",
                    self.name,
                    code,
                    lasted,
                    wait,
                    self.failures,
                )
            self._pause(wait)
        return code

    def _pause(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while not self._stopping and (left := deadline - self.clock()) > 0:
            self.sleep(min(left, 0.5))


def install_signal_handlers(supervisor: Supervisor) -> None:
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
