"""What the pages and the API show, gathered with the reporter's own collectors (`cllmh.collect`)
and the event index (`cllmh.events`): one implementation of each figure."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psutil

from cllmh import catalogue, dbread
from cllmh import events as ev
from cllmh.collect import cameras, disk, logfwd, system
from cllmh.report import outbox
from cllmh.status.config import StatusConfig
from cllmh.status.validate import Validator, keyframe_warnings

WARN_HOURS_LEFT = 24.0


def head_office(outbox_path: Path) -> dict:
    """The reporter's outbox, read-only: when head office last took a message (the reporter records
    each delivery), how many messages wait and since when (reporter False: no reporter on this site)."""
    none = {"reporter": False, "last_contact": None, "pending": None, "waiting_since": None}
    try:
        with dbread.read_only(outbox_path) as db:
            if db is None:
                return none
            pending, oldest = db.execute(
                "SELECT COUNT(*), MIN(created) FROM messages WHERE parked IS NULL"
            ).fetchone()
            contact = outbox.last_contact(db)
    except sqlite3.Error:
        return none
    return {"reporter": True, "last_contact": contact, "pending": int(pending), "waiting_since": oldest}


def warnings(disk_state: dict, guard: dict, camera_list: list[dict]) -> list[dict]:
    """The catalogue's warnings that apply now (pure)."""
    found = []
    hours = disk_state.get("hours_left")
    if hours is not None and hours < WARN_HOURS_LEFT:
        found.append(catalogue.message("warn.disk_full_in", hours=round(hours, 1)))
    found += [
        catalogue.message("warn.camera_down", camera=c["name"]) for c in camera_list if c["stream"] != "up"
    ]
    if guard.get("deleted_person_events_24h"):
        found.append(catalogue.message("warn.person_deleted", count=guard["deleted_person_events_24h"]))
    if guard.get("kept_fill"):
        size_gb = round(guard.get("kept_bytes", 0) / 1e9, 1)
        found.append(catalogue.message("warn.kept_fill", count=guard.get("kept_events", 0), size_gb=size_gb))
    return found


class SiteState:
    """Per-process state the collectors keep between requests (the streams' up/down since)."""

    def __init__(self, config: StatusConfig) -> None:
        self.config = config
        self.streams = cameras.StreamTracker()
        self.cpu = system.CpuGauge()
        self.validator = Validator(
            config.cameras,
            config.restream_url,
            window_s=config.validate_window_s,
            timeout_s=config.validate_timeout_s,
        )

    def cameras(self, now: float) -> list[dict]:
        """The collectors' camera state, with the last on-demand validation of each (resolution,
        fps, keyframe interval as ffprobe measured them on the restream) and whether one runs."""
        found = cameras.cameras_state(
            self.config.cameras,
            self.streams,
            now,
            stat_url=self.config.rtmp_stat_url,
            application=self.config.rtmp_application,
        )
        for camera in found:
            last = self.validator.last(camera["name"])
            camera["validation"] = last.to_json() if last else None
            camera["validating"] = self.validator.running(camera["name"])
        return found

    def keyframe_warnings(self) -> list[dict]:
        results = [r for c in self.config.cameras if (r := self.validator.last(c)) is not None]
        return keyframe_warnings(results, self.config.hls_fragment_s)

    def overview(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        disk_state, guard = disk.disk_state(self.config.recordings_dir, now)
        camera_list = self.cameras(now)
        memory = psutil.virtual_memory()
        return {
            "site": self.config.site,
            "time": round(now, 3),
            "hostname": system.hostname(),
            "uptime_s": system.uptime_s(),
            "temperature_c": system.temperature_c(),
            "cpu_percent": self.cpu.percent(),
            "load": list(psutil.getloadavg()),
            "memory": {"total_bytes": memory.total, "used_percent": memory.percent},
            "disk": disk_state,
            "guard": guard,
            "units": cameras.unit_states(self.config.units),
            "cameras": camera_list,
            "log_forwarding": {"backlog_bytes": logfwd.backlog_bytes(self.config.log_buffer_dir)},
            "head_office": head_office(self.config.report_outbox),
            "warnings": warnings(disk_state, guard, camera_list) + self.keyframe_warnings(),
        }


def event_json(event: ev.ListedEvent, kept: frozenset[str] = frozenset()) -> dict:
    return {
        "id": event.event_id,
        "keep": event.event_id in kept,
        "camera": event.camera,
        "start": event.start,
        "end": event.end,
        "labels": event.labels,
        "retention": event.retention,
        "bytes": event.size_bytes,
        "snapshot": f"/api/v1/events/{event.event_id}/snapshot.jpg",
        "clip": f"/api/v1/events/{event.event_id}/clip.mp4" if event.end is not None else None,
    }


def metrics(overview: dict, events: list[ev.ListedEvent]) -> str:
    """Prometheus text exposition format 0.0.4 (pure)."""
    site = overview["site"]
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict, float | int | None]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            if value is None:
                continue
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in {"site": site, **labels}.items())
            lines.append(f"{name}{{{text}}} {float(value)!r}")

    d = overview["disk"]
    gauge("cllmh_disk_total_bytes", "Size of the recordings filesystem.", [({}, d.get("total_bytes"))])
    gauge("cllmh_disk_free_bytes", "Free space on the recordings filesystem.", [({}, d.get("free_bytes"))])
    gauge(
        "cllmh_recording_hours_left",
        "Hours of recording left at the measured rate.",
        [({}, d.get("hours_left"))],
    )
    cams = overview["cameras"]
    gauge(
        "cllmh_camera_up",
        "1 when the camera's stream is published.",
        [({"camera": c["name"]}, 1 if c["stream"] == "up" else 0) for c in cams],
    )
    gauge(
        "cllmh_cameras_up",
        "Cameras whose stream is published.",
        [({}, sum(c["stream"] == "up" for c in cams))],
    )
    per_label: dict[str, int] = {}
    for event in events:
        for label in event.labels:
            per_label[label] = per_label.get(label, 0) + 1
    gauge(
        "cllmh_events_24h",
        "Events that started in the last 24 h, by label.",
        [({"label": k}, v) for k, v in sorted(per_label.items())],
    )
    gauge(
        "cllmh_log_forward_backlog_bytes",
        "Bytes waiting in syslog-ng's disk buffer for head office.",
        [({}, overview["log_forwarding"]["backlog_bytes"])],
    )
    gauge(
        "cllmh_report_pending_messages",
        "Messages waiting in the reporter's outbox.",
        [({}, overview["head_office"]["pending"])],
    )
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
