"""The bodies of the contract's two messages, built from the collectors and the event index."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from cllmh import __version__, catalogue
from cllmh import events as ev

LOG = logging.getLogger("cllmh.report")

SCHEMA = 1
MAX_BODY = 2 * 1024 * 1024  # the contract's limit per request
PATHS = {"heartbeat": "/api/v1/site/heartbeat", "event": "/api/v1/site/events"}


def encode(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


def heartbeat_body(state: dict, now: float) -> bytes:
    """`state` holds the collectors' figures; `version` is this package's."""
    return encode({"schema": SCHEMA, "sent_at": round(now, 3), "state": {"version": __version__, **state}})


def event_id(event: ev.IndexedEvent) -> str:
    """The event's id at head office: unique per site."""
    return f"{event.camera}/{event.event_id}"


def what(kind: str, ref: str | None, lang: str = catalogue.DEFAULT) -> str:
    """A message named for people, in the reporter's log lines: "heartbeat" or "event gate/ev1"."""
    if kind == "heartbeat":
        return catalogue.text("report.what_heartbeat", lang)
    return catalogue.text("report.what_event", lang, event=ref or "")


def event_body(root: Path, event: ev.IndexedEvent, lang: str = catalogue.DEFAULT) -> bytes | None:
    """The event's message: its sidecar's metadata and its snapshot; the clip stays at the site and
    is named by its path under the recordings root. None if the event is gone or unusable (the
    guard deleted it meanwhile, or its event.json is malformed: logged)."""
    try:
        sidecar = ev.read_sidecar(event.path)
    except ev.SidecarError as exc:
        catalogue.log(LOG, logging.ERROR, "report.event_unusable", lang, event=event_id(event), error=exc)
        return None
    if sidecar is None:
        return None
    clips = sidecar.get("clips") or [{"file": ev.CLIP}]
    clip = event.path / str(clips[0].get("file", ev.CLIP))
    try:
        clip_path = clip.relative_to(root).as_posix()
    except ValueError:
        clip_path = clip.as_posix()
    try:
        snapshot: bytes | None = (event.path / ev.SNAPSHOT).read_bytes()
    except FileNotFoundError:
        snapshot = None
    except OSError as exc:
        catalogue.log(
            LOG, logging.WARNING, "report.snapshot_unreadable", lang, event=event_id(event), error=exc
        )
        snapshot = None
    body = {
        "schema": SCHEMA,
        "event": {
            "id": event_id(event),
            "camera": event.camera,
            "start": float(sidecar["start"]),
            "end": float(sidecar["end"]) if sidecar.get("end") is not None else event.end,
            "labels": {str(k): float(v) for k, v in sidecar.get("labels", {}).items()},
            "truncated": bool(sidecar.get("truncated", False)),
            "clip_path": clip_path,
            "snapshot_jpeg_b64": base64.b64encode(snapshot).decode("ascii") if snapshot else None,
        },
    }
    data = encode(body)
    if len(data) > MAX_BODY:
        catalogue.log(
            LOG,
            logging.WARNING,
            "report.snapshot_too_large",
            lang,
            event=event_id(event),
            size=len(snapshot or b""),
            limit=MAX_BODY,
        )
        body["event"]["snapshot_jpeg_b64"] = None
        data = encode(body)
    return data
