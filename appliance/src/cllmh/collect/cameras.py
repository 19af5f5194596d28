"""Each camera's stream state: the systemd units of its ingest and recorder, and what nginx-rtmp's
statistics page (`rtmp_stat`, XML) says about its stream (publishing, fps, resolution)."""

from __future__ import annotations

import logging
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

LOG = logging.getLogger("cllmh.collect")

INGEST_UNIT = "cllmh-ingest@{}.service"
RECORDER_UNIT = "cllmh-recorder@{}.service"


NOT_INSTALLED = "not-installed"


def unit_states(units: list[str], systemctl: str = "systemctl") -> dict[str, str]:
    """ActiveState of each unit ("active", "failed", "inactive", ...), "not-installed" for a unit
    systemd has no file of, "unknown" where systemd cannot be asked (no systemctl, no systemd)."""
    if not units:
        return {}
    try:
        out = subprocess.run(
            [systemctl, "show", "--property=Id,LoadState,ActiveState", *units],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return dict.fromkeys(units, "unknown")
    if out.returncode != 0:
        return dict.fromkeys(units, "unknown")
    return parse_unit_states(units, out.stdout)


def parse_unit_states(units: list[str], show: str) -> dict[str, str]:
    """The states from `systemctl show --property=Id,LoadState,ActiveState UNIT...` (pure): one block
    per unit, in the order asked, separated by blank lines. A unit that is not installed is loaded
    as "not-found" (and "inactive", which would read as stopped)."""
    states = dict.fromkeys(units, "unknown")
    for unit, block in zip(units, show.strip().split("\n\n"), strict=False):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("LoadState") == "not-found":
            states[unit] = NOT_INSTALLED
        else:
            states[unit] = props.get("ActiveState", "unknown")
    return states


@dataclass(frozen=True, slots=True)
class StreamStat:
    publishing: bool
    uptime_s: float | None
    fps: float | None
    width: int | None
    height: int | None


def _number(node: ET.Element | None, kind: type[int] | type[float]) -> int | float | None:
    if node is None or not (node.text or "").strip():
        return None
    try:
        value = kind(float(node.text or ""))
    except ValueError:
        return None
    return value if value > 0 else None


def parse_rtmp_stat(xml: str | bytes, application: str = "live") -> dict[str, StreamStat]:
    """Streams of one application in nginx-rtmp's `rtmp_stat` XML, by name (pure)."""
    root = ET.fromstring(xml)
    streams: dict[str, StreamStat] = {}
    for app in root.iter("application"):
        if (app.findtext("name") or "") != application:
            continue
        for stream in app.iter("stream"):
            name = stream.findtext("name") or ""
            video = stream.find("meta/video")
            time_ms = _number(stream.find("time"), float)
            streams[name] = StreamStat(
                publishing=stream.find("publishing") is not None,
                uptime_s=time_ms / 1000 if time_ms else None,
                fps=_number(video.find("frame_rate"), float) if video is not None else None,
                width=_number(video.find("width"), int) if video is not None else None,  # type: ignore[arg-type]
                height=_number(video.find("height"), int) if video is not None else None,  # type: ignore[arg-type]
            )
    return streams


def fetch_rtmp_stat(
    url: str, application: str = "live", timeout_s: float = 5.0
) -> dict[str, StreamStat] | None:
    """The streams from nginx-rtmp's statistics page; None if it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return parse_rtmp_stat(answer.read(), application)
    except (OSError, ET.ParseError) as exc:
        LOG.warning("cannot read the RTMP statistics at %s: %s", url, exc)
        return None


class StreamTracker:
    """Remembers since when each camera's stream has been up or down (pure: times are given).

    A stream first seen up with a known publishing time dates from that; otherwise "since" is
    the first time the reporter saw the state. Bounded by the configured cameras."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[str, float]] = {}

    def update(self, camera: str, up: bool, now: float, uptime_s: float | None = None) -> tuple[str, float]:
        stream = "up" if up else "down"
        previous = self.state.get(camera)
        if previous is None or previous[0] != stream:
            since = now - uptime_s if up and uptime_s is not None else now
            self.state[camera] = (stream, round(since, 3))
        return self.state[camera]

    def forget_except(self, cameras: set[str]) -> None:
        self.state = {k: v for k, v in self.state.items() if k in cameras}


def cameras_state(
    cameras: list[str],
    tracker: StreamTracker,
    now: float,
    *,
    stat_url: str = "",
    application: str = "live",
    systemctl: str = "systemctl",
) -> list[dict]:
    """The heartbeat's `cameras` list. The stream is up when nginx-rtmp lists it publishing; with
    no statistics URL configured (or the page unreadable), when its ingest unit is active."""
    units = unit_states(
        [INGEST_UNIT.format(c) for c in cameras] + [RECORDER_UNIT.format(c) for c in cameras], systemctl
    )
    stats = fetch_rtmp_stat(stat_url, application) if stat_url else None
    tracker.forget_except(set(cameras))
    result = []
    for camera in cameras:
        ingest = units[INGEST_UNIT.format(camera)]
        stat = (stats or {}).get(camera)
        # Without statistics the ingest unit tells.
        up = ingest == "active" if stats is None else (stat is not None and stat.publishing)
        stream, since = tracker.update(camera, up, now, stat.uptime_s if stat else None)
        result.append(
            {
                "name": camera,
                "stream": stream,
                "since": since,
                "fps": stat.fps if stat and up else None,
                "width": stat.width if stat and up else None,
                "height": stat.height if stat and up else None,
                "units": {"ingest": ingest, "recorder": units[RECORDER_UNIT.format(camera)]},
            }
        )
    return result
