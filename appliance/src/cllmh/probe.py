"""Camera validation: probe an RTSP/RTMP URL with ffprobe and judge whether it can be recorded.

`probe()` runs ffprobe (bounded by a timeout); `classify_failure()` and `judge()` are pure
functions turning ffprobe's output into a `CameraReport` or a `ProbeError` with a distinct kind.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
from dataclasses import asdict, dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from cllmh.ingest import HEVC_FIX, Command, redact, redact_text, source_input

# What the ingest can copy into the RTMP restream (FLV): H.264 only with Debian 12's ffmpeg 5.1.
SUPPORTED_CODECS = ("h264",)


class Failure(StrEnum):
    """Why a camera cannot be used; the value is the CLI's exit code."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    NO_VIDEO = "no_video"
    UNSUPPORTED_CODEC = "unsupported_codec"
    KEYFRAME_INTERVAL = "keyframe_interval"
    BAD_URL = "bad_url"
    PROBE_FAILED = "probe_failed"
    # Appended: the exit codes above stay what they were.
    HEVC_NOT_RESTREAMABLE = "hevc_not_restreamable"

    @property
    def exit_code(self) -> int:
        return list(Failure).index(self) + 10


class ProbeError(Exception):
    def __init__(self, kind: Failure, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class CameraReport:
    url: str
    codec: str
    width: int
    height: int
    fps: float
    keyframe_interval_s: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def describe(self) -> str:
        gop = "unknown" if self.keyframe_interval_s is None else f"{self.keyframe_interval_s:.2f} s"
        return f"{self.codec} {self.width}x{self.height} @ {self.fps:g} fps, keyframe every {gop}"


_FAILURE_MARKERS: tuple[tuple[Failure, tuple[str, ...]], ...] = (
    (Failure.AUTH, ("401 unauthorized", "authorization failed", "403 forbidden")),
    (Failure.NOT_FOUND, ("404 not found", "stream not found", "454 session not found")),
    (Failure.REFUSED, ("connection refused",)),
    (
        Failure.UNREACHABLE,
        (
            "no route to host",
            "network is unreachable",
            "name or service not known",
            "temporary failure in name resolution",
            "host is unreachable",
            "failed to resolve",
        ),
    ),
    (Failure.TIMEOUT, ("connection timed out", "operation timed out", "timed out")),
)

_FAILURE_TEXT = {
    Failure.AUTH: "the camera refused the credentials (401): check the user name and password",
    Failure.NOT_FOUND: "the camera has no stream at this path (404): check the URL path / channel",
    Failure.REFUSED: "nothing listens on that port (connection refused): check the port and that RTSP is on",
    Failure.UNREACHABLE: "the host cannot be reached: check the address, DNS and the network/VLAN",
    Failure.TIMEOUT: "the camera did not answer in time: check the address, firewall and camera load",
}


def classify_failure(stderr: str) -> ProbeError:
    """Turn ffprobe's error output into a ProbeError of the right kind (pure)."""
    text = redact_text(stderr).strip()
    lowered = text.lower()
    for kind, markers in _FAILURE_MARKERS:
        if any(marker in lowered for marker in markers):
            return ProbeError(kind, f"{_FAILURE_TEXT[kind]} ({last_line(text)})")
    return ProbeError(Failure.PROBE_FAILED, f"ffprobe failed: {last_line(text) or 'no output'}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _rate(value: str | None) -> float:
    if not value or value in ("0/0", "N/A"):
        return 0.0
    num, _, den = value.partition("/")
    return float(num) / float(den or 1) if float(den or 1) else 0.0


def keyframe_interval(keyframe_times: list[float]) -> float | None:
    """Median spacing of keyframes (s); None with fewer than two keyframes (pure)."""
    times = sorted(keyframe_times)
    if len(times) < 2:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(times))


def judge(url: str, data: dict, *, window_s: float, max_keyframe_interval_s: float) -> CameraReport:
    """Decide from ffprobe's JSON whether the camera is usable (pure)."""
    streams = [s for s in data.get("streams", []) if s.get("codec_type", "video") == "video"]
    if not streams:
        raise ProbeError(Failure.NO_VIDEO, "the stream has no video track")
    stream = streams[0]
    codec = str(stream.get("codec_name", "unknown"))
    if codec == "hevc":
        raise ProbeError(Failure.HEVC_NOT_RESTREAMABLE, HEVC_FIX)
    if codec not in SUPPORTED_CODECS:
        raise ProbeError(
            Failure.UNSUPPORTED_CODEC,
            f"video codec {codec} cannot be restreamed without re-encoding; set the camera to H.264",
        )
    keyframes = [
        float(p["pts_time"])
        for p in data.get("packets", [])
        if "K" in p.get("flags", "") and p.get("pts_time") not in (None, "N/A")
    ]
    gop = keyframe_interval(keyframes)
    if gop is None or gop > max_keyframe_interval_s:
        seen = "fewer than two keyframes" if gop is None else f"a keyframe every {gop:.1f} s"
        raise ProbeError(
            Failure.KEYFRAME_INTERVAL,
            f"{seen} in {window_s:g} s: segments are cut on keyframes, so set the camera's I-frame "
            f"interval to at most {max_keyframe_interval_s:g} s (e.g. GOP = 2 x fps)",
        )
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    return CameraReport(
        url=redact(url),
        codec=codec,
        width=int(stream.get("width", 0)),
        height=int(stream.get("height", 0)),
        fps=round(fps, 3),
        keyframe_interval_s=round(gop, 3),
    )


def ffprobe_command(url: str, *, window_s: float, io_timeout_s: float, ffprobe: str = "ffprobe") -> Command:
    """ffprobe reading `window_s` s of `url`; the URL goes on standard input (see source_input)."""
    source = source_input(url, io_timeout_s=io_timeout_s)
    args = [ffprobe, "-hide_banner", "-v", "error", *source.argv[:-2]]
    args += [
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate:packet=pts_time,flags",
        "-read_intervals",
        f"%+{window_s:g}",
        "-of",
        "json",
        *source.argv[-2:],
    ]
    return Command(args, source.stdin)


def probe(
    url: str,
    *,
    window_s: float = 12.0,
    timeout_s: float = 30.0,
    max_keyframe_interval_s: float = 10.0,
    ffprobe: str = "ffprobe",
) -> CameraReport:
    """Probe `url` for `window_s` seconds of video; raises ProbeError with a clear message."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("rtsp", "rtsps", "rtmp", "rtmps"):
        raise ProbeError(Failure.BAD_URL, f"not an RTSP/RTMP URL: {redact(url)}")
    cmd = ffprobe_command(url, window_s=window_s, io_timeout_s=min(10.0, timeout_s), ffprobe=ffprobe)
    try:
        done = subprocess.run(
            cmd.argv, input=cmd.stdin or "", capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(
            Failure.TIMEOUT, f"{_FAILURE_TEXT[Failure.TIMEOUT]} (no result in {timeout_s:g} s)"
        ) from exc
    if done.returncode != 0:
        # ffprobe names its input "pipe:0" (the URL came on stdin): name the camera instead.
        raise classify_failure(done.stderr.replace("pipe:0", redact(url)))
    try:
        data = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ProbeError(Failure.PROBE_FAILED, f"ffprobe gave unreadable output: {exc}") from exc
    return judge(url, data, window_s=window_s, max_keyframe_interval_s=max_keyframe_interval_s)
