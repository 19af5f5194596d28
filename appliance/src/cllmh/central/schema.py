"""JSON schemas of the site -> head office contract v1 (README.md) and their validation.

Unknown properties are accepted and ignored (a newer reporter may send more within schema 1);
known ones are type-checked. Timestamps are UTC unix seconds: a value in milliseconds is refused."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from cllmh.names import CAMERA_NAME, CAMERA_NAME_CHARS

# 2001-09-09 .. 2286-11-20: rejects 0, negative values and milliseconds.
_UNIX = {"type": "number", "minimum": 1_000_000_000, "maximum": 10_000_000_000}
_UNIX_OR_NULL = {"anyOf": [_UNIX, {"type": "null"}]}
_COUNT = {"type": "integer", "minimum": 0}
# the site's own rule for camera names (cllmh.names), so that head office takes what a site records
_NAME = {"type": "string", "pattern": CAMERA_NAME}

HEARTBEAT: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "sent_at", "state"],
    "properties": {
        "schema": {"const": 1},
        "sent_at": _UNIX,
        "state": {
            "type": "object",
            "required": ["version", "cameras"],
            "properties": {
                "version": {"type": "string", "maxLength": 64},
                "uptime_s": {"type": "number", "minimum": 0},
                "hostname": {"type": "string", "maxLength": 255},
                "temperature_c": {"type": ["number", "null"]},
                "disk": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "total_bytes": _COUNT,
                        "used_bytes": _COUNT,
                        "free_bytes": _COUNT,
                        "hours_left": {"type": ["number", "null"], "minimum": 0},
                    },
                },
                "guard": {
                    "type": "object",
                    "properties": {
                        "deleted_person_events_24h": _COUNT,
                        "last_run": _UNIX_OR_NULL,
                        # events marked "keep" (the guard never deletes them), and whether they hold
                        # the space the guard's floor needs
                        "kept_events": _COUNT,
                        "kept_bytes": _COUNT,
                        "kept_fill": {"type": "boolean"},
                    },
                },
                "cameras": {
                    "type": "array",
                    "maxItems": 256,
                    "items": {
                        "type": "object",
                        "required": ["name", "stream", "since"],
                        "properties": {
                            "name": _NAME,
                            "stream": {"enum": ["up", "down"]},
                            "since": _UNIX,
                            "fps": {"type": ["number", "null"], "minimum": 0},
                            "width": {"type": ["integer", "null"], "minimum": 0},
                            "height": {"type": ["integer", "null"], "minimum": 0},
                            "units": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
                "log_forwarding": {
                    "type": "object",
                    "properties": {"backlog_bytes": {"type": ["integer", "null"]}},
                },
                "outbox": {"type": "object", "properties": {"pending": _COUNT, "oldest": _UNIX_OR_NULL}},
            },
        },
    },
}

EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "event"],
    "properties": {
        "schema": {"const": 1},
        "event": {
            "type": "object",
            "required": ["id", "camera", "start", "end", "labels"],
            "properties": {
                "id": {"type": "string", "pattern": rf"^{CAMERA_NAME_CHARS}/[^/\x00]{{1,200}}$"},
                "camera": _NAME,
                "start": _UNIX,
                "end": _UNIX,
                "labels": {
                    "type": "object",
                    "maxProperties": 32,
                    "propertyNames": {"pattern": r"^[a-z][a-z0-9_ -]{0,31}$"},
                    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "truncated": {"type": "boolean"},
                "clip_path": {"type": "string", "maxLength": 1024},
                "snapshot_jpeg_b64": {"type": ["string", "null"], "contentEncoding": "base64"},
            },
        },
    },
}

IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")


class SchemaError(Exception):
    """What is wrong, and where (`state.cameras[0].fps`, or "" for the whole body)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def json_path(path: Any) -> str:
    """A jsonschema error path as `state.cameras[0].fps`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _raise(error: ValidationError) -> None:
    field = json_path(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        field = f"{field}.{missing}" if field else missing
        raise SchemaError(f"{field} is required", field)
    where = field or "body"
    raise SchemaError(f"{where}: {error.message}", field)


_VALIDATORS = {id(s): Draft202012Validator(s) for s in (HEARTBEAT, EVENT)}


def validate(schema: dict[str, Any], body: Any) -> None:
    """Raise SchemaError naming the most relevant wrong field."""
    error = best_match(_VALIDATORS[id(schema)].iter_errors(body))
    if error is not None:
        _raise(error)
    if schema is EVENT:
        event = body["event"]
        if event["end"] < event["start"]:
            raise SchemaError("event.end is before event.start", "event.end")
        if not event["id"].startswith(event["camera"] + "/"):
            raise SchemaError("event.id must start with the event's camera and '/'", "event.id")
