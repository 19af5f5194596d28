"""Bodies of the site -> head office contract v1, as a site's reporter sends them (tests only)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

# A real (tiny) JPEG: 1x1 grey, baseline.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
    "LDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAA"
    "AAD/2gAIAQEAAD8AKp//2Q=="
)


def key() -> str:
    return uuid.uuid4().hex


def heartbeat(sent_at: float, **state: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "0.1.0",
        "uptime_s": 1234.5,
        "hostname": "site-a",
        "temperature_c": 48.2,
        "disk": {
            "path": "/var/lib/cllmh/recordings",
            "total_bytes": 10**12,
            "used_bytes": 6 * 10**11,
            "free_bytes": 4 * 10**11,
            "hours_left": 200.0,
        },
        "guard": {"deleted_person_events_24h": 0, "last_run": sent_at - 30},
        "cameras": [
            {
                "name": "gate",
                "stream": "up",
                "since": sent_at - 3600,
                "fps": 12.5,
                "width": 1280,
                "height": 720,
                "units": {"ingest": "active", "recorder": "active"},
            }
        ],
        "log_forwarding": {"backlog_bytes": 0},
        "outbox": {"pending": 0, "oldest": None},
    }
    body.update(state)
    return {"schema": 1, "sent_at": sent_at, "state": body}


def event(start: float, camera: str = "gate", name: str = "", label: str = "person") -> dict[str, Any]:
    name = name or f"{int(start)}-{label}"
    return {
        "schema": 1,
        "event": {
            "id": f"{camera}/{name}",
            "camera": camera,
            "start": start,
            "end": start + 12.0,
            "labels": {label: 0.87},
            "truncated": False,
            "clip_path": f"{camera}/{name}/clip.mp4",
            "snapshot_jpeg_b64": base64.b64encode(JPEG).decode(),
        },
    }


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()
