"""POST /api/v1/site/heartbeat and /api/v1/site/events (contract v1, README.md)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Any

from flask import Blueprint, current_app, request

from cllmh.central import auth, schema
from cllmh.central.errors import ApiError
from cllmh.central.store import Outcome, Store

bp = Blueprint("site_api", __name__, url_prefix="/api/v1/site")


def _store() -> Store:
    return current_app.extensions["cllmh_store"]()


def _request() -> tuple[str, str, bytes, Any]:
    """(site, idempotency key, raw body, parsed body), checked in the contract's order."""
    site = auth.site_name(request, current_app.config["CLLMH"].trust_proxy_headers, _store())
    if request.mimetype != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    key = request.headers.get("Idempotency-Key", "")
    if not schema.IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "Idempotency-Key must be a uuid4 in 32 hex digits", "Idempotency-Key")
    raw = request.get_data(cache=False)  # over max_body_bytes: 413
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from exc
    return site, key, raw, body


def _validate(spec: dict[str, Any], body: Any) -> None:
    try:
        schema.validate(spec, body)
    except schema.SchemaError as exc:
        raise ApiError(400, exc.message, exc.field) from exc


def _answer(outcome: Outcome, stored_status: int) -> tuple[dict[str, Any], int]:
    if outcome is Outcome.CONFLICT:
        raise ApiError(409, "Idempotency-Key reused with a different body", "Idempotency-Key")
    duplicate = outcome is Outcome.DUPLICATE
    return {"status": "ok", "duplicate": duplicate}, 200 if duplicate else stored_status


@bp.post("/heartbeat")
def heartbeat() -> tuple[dict[str, Any], int]:
    site, key, raw, body = _request()
    _validate(schema.HEARTBEAT, body)
    digest = hashlib.sha256(raw).hexdigest()
    outcome = _store().heartbeat(
        site,
        key,
        digest,
        float(body["sent_at"]),
        body["state"],
        now=time.time(),
        history_bucket_s=current_app.config["CLLMH"].history_bucket_s,
    )
    return _answer(outcome, 200)


@bp.post("/events")
def events() -> tuple[dict[str, Any], int]:
    site, key, raw, body = _request()
    _validate(schema.EVENT, body)
    event = body["event"]
    jpeg = None
    if event.get("snapshot_jpeg_b64"):
        try:
            jpeg = base64.b64decode(event["snapshot_jpeg_b64"], validate=True)
        except binascii.Error as exc:
            raise ApiError(400, f"not base64: {exc}", "event.snapshot_jpeg_b64") from exc
        if not jpeg.startswith(b"\xff\xd8"):
            raise ApiError(400, "the snapshot is not a JPEG", "event.snapshot_jpeg_b64")
    digest = hashlib.sha256(raw).hexdigest()
    return _answer(_store().event(site, key, digest, event, jpeg, now=time.time()), 201)
