"""The JSON API (same login as the pages), nginx's auth_request check and /metrics. Documented in
appliance/src/cllmh/status/README.md."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, g, request, send_file

from cllmh import catalogue, dates
from cllmh import events as ev
from cllmh.status import auth, logs
from cllmh.status.config import StatusConfig
from cllmh.status.state import SiteState, event_json, metrics

bp = Blueprint("api", __name__)
LOG = logging.getLogger("cllmh.status")
API = "/api/v1"


def _state() -> SiteState:
    return current_app.extensions["cllmh_status_state"]


def config() -> StatusConfig:
    return current_app.config["CLLMH_STATUS"]


def event_filter(day: dt.date | None = None) -> dict:
    """The events filter of the page and the API: camera, label, one local day."""
    since, until = dates.day_bounds(day) if day is not None else (None, None)
    return {
        "camera": request.args.get("camera") or None,
        "label": request.args.get("label") or None,
        "since": since,
        "until": until,
    }


def found_events(limit: int = 100, day: dt.date | None = None) -> list[ev.ListedEvent]:
    return ev.list_events(config().recordings_dir, limit=limit, **event_filter(day))


def _event_file(event_id: str, name: str) -> Path:
    event = ev.find_event(config().recordings_dir, event_id)
    if event is None:
        abort(404)
    root = config().recordings_dir.resolve()
    path = (event.path / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        abort(404)
    return path


@bp.get(f"{API}/overview")
@auth.require("viewer", api=True)
def overview() -> dict:
    return _state().overview()


@bp.get(f"{API}/cameras")
@auth.require("viewer", api=True)
def cameras() -> dict:
    return {"cameras": _state().cameras(time.time())}


def run_validation(camera: str) -> dict | None:
    """Validate the camera's restream now (technician): its result, or None while another
    validation of that camera runs. 404 for a camera that is not configured."""
    if camera not in config().cameras:
        abort(404)
    result = _state().validator.run(camera)
    return result.to_json() if result else None


@bp.post(f"{API}/cameras/<camera>/validate")
@auth.require("technician", api=True)
def validate_camera(camera: str) -> tuple[dict, int]:
    result = run_validation(camera)
    if result is None:
        return {
            "error": catalogue.text("camera.validation_busy", "en", camera=camera),
            "id": "camera.validation_busy",
        }, 409
    return {"validation": result}, 200


@bp.get(f"{API}/events")
@auth.require("viewer", api=True)
def events() -> dict | tuple[dict, int]:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
    except ValueError:
        abort(400, description="limit must be an integer")
    try:
        # The API's date is yyyy-mm-dd only, whatever the language.
        day = dates.parse_day(request.args["date"]) if request.args.get("date") else None
    except dates.DateError:
        message = dates.bad_date_message("en", dt.date.today())
        return {"error": message, "id": "filter.bad_date"}, 400
    kept = ev.kept_ids(config().recordings_dir)
    return {"events": [event_json(e, kept) for e in found_events(limit, day)]}


def mark_keep(event_id: str, keep: bool) -> bool:
    """Mark or unmark an event of the index "keep" (events.set_keep): 404 for an unknown event."""
    if not ev.EVENT_ID.match(event_id) or ev.find_event(config().recordings_dir, event_id) is None:
        abort(404)
    changed = ev.set_keep(config().recordings_dir, event_id, keep, by=g.user.name)
    if changed:
        LOG.info("event %s %s by %s", event_id, "marked keep" if keep else "no longer kept", g.user.name)
    return changed


@bp.route(f"{API}/events/<event_id>/keep", methods=["PUT", "DELETE"])
@auth.require("technician", api=True)
def keep(event_id: str) -> dict:
    """PUT marks the event "keep" (the guard never deletes it), DELETE unmarks it; technicians only,
    with the session's CSRF token in X-CSRF-Token."""
    wanted = request.method == "PUT"
    changed = mark_keep(event_id, wanted)
    return {"id": event_id, "keep": wanted, "changed": changed}


@bp.get(f"{API}/events/<event_id>/snapshot.jpg")
@auth.require("viewer", api=True)
def snapshot(event_id: str) -> Response:
    return send_file(_event_file(event_id, ev.SNAPSHOT), mimetype="image/jpeg", max_age=86400)


@bp.get(f"{API}/events/<event_id>/clip.mp4")
def clip(event_id: str) -> Response:
    """The event's clip, with Range (the player seeks), for a session of any role or for a
    live-view token (`?token=`, minted by head office for the dashboard) of the event's camera:
    no session and no token 401, a token that does not open this camera (another camera or site,
    expired, forged) 403. nginx adds CORS for head office's origins (nginx_rtmp)."""
    token = request.args.get("token", "")
    if auth.session_user() is None:
        if not token:
            abort(401)
        event = ev.find_event(config().recordings_dir, event_id)
        camera = event.camera if event is not None else None
        if auth.live_verdict(current_app.config["CLLMH_LIVE_SECRET"], config().site, camera, token) != 204:
            abort(403)
    download = request.args.get("download") == "1"
    return send_file(
        _event_file(event_id, ev.CLIP),
        mimetype="video/mp4",
        conditional=True,  # Range requests: the player seeks
        as_attachment=download,
        download_name=f"{event_id}.mp4",
    )


def log_page() -> tuple[list[str], str | None, logs.Page]:
    host_list = logs.hosts(config().log_dir)
    host = request.args.get("host") or (host_list[0] if host_list else None)
    if host is not None and host not in host_list:
        abort(404)
    severity = request.args.get("severity") or None
    if severity is not None and severity not in logs.SEVERITIES:
        abort(400, description="unknown severity")
    try:
        before = int(request.args["before"]) if request.args.get("before") else None
    except ValueError:
        abort(400, description="before must be a byte offset")
    if host is None:
        return host_list, None, logs.Page([], None)
    page = logs.read_page(
        config().log_dir / host / "messages.log",
        limit=100,
        before=before,
        min_severity=severity,
        needle=request.args.get("q", "")[:200],
    )
    return host_list, host, page


@bp.get(f"{API}/logs")
@auth.require("technician", api=True)
def log_lines() -> dict:
    host_list, host, page = log_page()
    return {"hosts": host_list, "host": host, "lines": page.lines, "before": page.before}


@bp.get("/auth/hls")
def hls_check() -> Response:
    """nginx's auth_request for /hls/ (and the live page): 204 with a session of any role, or with
    a live-view token (`?token=` of the original request) for that camera; else 401 (nothing
    presented) or 403 (a token that does not open this camera). No password is hashed here."""
    if auth.session_user() is not None:
        return Response(status=204)
    original = request.headers.get("X-Original-URI", "")
    token = request.args.get("token", "")
    if not token and "?" in original:
        from urllib.parse import parse_qs  # noqa: PLC0415

        token = (parse_qs(original.split("?", 1)[1]).get("token") or [""])[0]
    if not token:
        return Response(status=401)
    status = auth.live_verdict(
        current_app.config["CLLMH_LIVE_SECRET"], config().site, auth.hls_camera(original), token
    )
    return Response(status=status)


@bp.get("/metrics")
def prometheus() -> Response:
    if not auth.metrics_token_ok(config().metrics_token_sha256):
        return Response("metrics need their token\n", status=401, mimetype="text/plain")
    overview_now = _state().overview()
    day = ev.list_events(config().recordings_dir, since=time.time() - 86400, limit=100000)
    return Response(metrics(overview_now, day), mimetype="text/plain; version=0.0.4")


@bp.get(f"{API}/me")
@auth.require("viewer", api=True)
def me() -> dict:
    return {"user": g.user.name, "role": g.user.role, "csrf_token": auth.csrf_token()}
