"""The API of the dashboard and of scripts: sites (with derived state), cameras, events,
snapshots, alerts (acknowledge, resolve), log in/out, API tokens, users (admin)."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from cllmh.central import alerts, auth, history, live, state
from cllmh.central.errors import ApiError
from cllmh.central.store import Alert, Site, Store

bp = Blueprint("dashboard", __name__, url_prefix="/api/v1")


def _store() -> Store:
    return current_app.extensions["cllmh_store"]()


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = body.get(field, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApiError(400, f"{field} must be a non-empty string", field)
    return value.strip()


def _number(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be unix seconds", name) from exc


def _site_json(site: Site, now: float) -> dict[str, Any]:
    config = current_app.config["CLLMH"]
    derived = state.derive(site.last_seen, now, config.heartbeat_interval_s, config.missed_heartbeats)
    report = site.state or {}
    return {
        "name": site.name,
        "state": derived.label,
        "online": derived.online,
        "last_seen": derived.last_seen,
        "offline_since": derived.offline_since,
        "revoked": site.revoked_at is not None,
        "clock_offset_s": site.clock_offset_s,
        "version": report.get("version"),
        "disk": report.get("disk"),
        "guard": report.get("guard"),
        "temperature_c": report.get("temperature_c"),
        "cameras": report.get("cameras", []),
    }


def _alert_json(alert: Alert) -> dict[str, Any]:
    out = dict(alert.__dict__)
    params = json.loads(out.pop("params") or "{}")
    out["title"] = alerts.title(alert.kind)
    # The dashboard shows these in its language from the one catalogue (cllmh/catalogue.json);
    # `title` and `detail` stay for scripts. An alert opened before migration 4 has no values.
    out["title_id"] = alerts.title_id(alert.kind)
    out["message"] = {"id": alerts.detail_id(alert.kind), "values": params} if params else None
    out["status"] = (
        "closed"
        if alert.closed_at
        else "resolved"
        if alert.resolved_at
        else "acknowledged"
        if alert.acked_at
        else "open"
    )
    return out


def _visible_site(name: str) -> Site:
    site = _store().site(name)
    if site is None or not auth.may_see(g.user, name):
        raise ApiError(404, f"no site {name}")
    return site


# --- log in / out, tokens ---------------------------------------------------------------------------


@bp.post("/auth/login")
def login() -> dict[str, Any]:
    body = _json()
    user = auth.check_password(_store(), _text(body, "username"), _text(body, "password"))
    if user is None:
        raise ApiError(401, "wrong user name or password / nama pengguna atau kata sandi salah")
    csrf = auth.start_session(user)
    return {"user": user.name, "role": user.role, "sites": list(user.sites), "csrf_token": csrf}


@bp.post("/auth/logout")
@auth.require("viewer")
def logout() -> dict[str, Any]:
    from flask import session  # noqa: PLC0415 (the session proxy only here)

    session.clear()
    return {"status": "ok"}


@bp.get("/auth/me")
@auth.require("viewer")
def me() -> dict[str, Any]:
    return {"user": g.user.name, "role": g.user.role, "sites": list(g.user.sites)}


@bp.post("/tokens")
@auth.require("viewer")
def create_token() -> tuple[dict[str, Any], int]:
    label = _text(_json(), "label")
    token, digest = auth.new_token()
    _store().add_token(digest, g.user.name, label, time.time())
    return {"token": token, "label": label, "user": g.user.name}, 201


@bp.post("/users")
@auth.require("admin")
def create_user() -> tuple[dict[str, Any], int]:
    body = _json()
    name, password = _text(body, "username"), _text(body, "password")
    role = body.get("role")
    if role not in auth.ROLES:
        raise ApiError(400, f"role must be one of {', '.join(auth.ROLES)}", "role")
    sites = body.get("sites", [])
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise ApiError(400, "sites must be a list of site names", "sites")
    if role == "viewer" and not sites:
        raise ApiError(400, "a viewer sees only the sites listed", "sites")
    if len(password) < 10:
        raise ApiError(400, "the password needs at least 10 characters", "password")
    _store().add_user(name, auth.hash_password(password), role, tuple(sites), time.time())
    return {"user": name, "role": role, "sites": sites}, 201


# --- sites, cameras, events -------------------------------------------------------------------------


@bp.get("/sites")
@auth.require("viewer")
def sites() -> dict[str, Any]:
    now = time.time()
    allowed = auth.scope(g.user)
    return {"sites": [_site_json(s, now) for s in _store().sites(allowed or ())]}


@bp.get("/sites/<name>")
@auth.require("viewer")
def site(name: str) -> dict[str, Any]:
    return _site_json(_visible_site(name), time.time())


@bp.get("/sites/<name>/cameras")
@auth.require("viewer")
def cameras(name: str) -> dict[str, Any]:
    return {"cameras": (_visible_site(name).state or {}).get("cameras", [])}


@bp.get("/events")
@auth.require("viewer")
def events() -> dict[str, Any]:
    allowed = auth.scope(g.user)
    wanted = request.args.get("site")
    if wanted:
        if allowed is not None and wanted not in allowed:
            raise ApiError(404, f"no site {wanted}", "site")
        allowed = (wanted,)
    try:
        limit = min(int(request.args.get("limit", 100)), 1000)
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer", "limit") from exc
    found = _store().events(
        allowed,
        request.args.get("camera"),
        request.args.get("label"),
        _number("since"),
        _number("until"),
        max(limit, 1),
    )
    return {"events": found}


@bp.get("/sites/<name>/events/<path:event_id>/snapshot.jpg")
@auth.require("viewer")
def snapshot(name: str, event_id: str) -> Response:
    _visible_site(name)
    jpeg = _store().snapshot(name, event_id)
    if jpeg is None:
        raise ApiError(404, "no snapshot for this event")
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


# --- alerts -----------------------------------------------------------------------------------------


@bp.get("/alerts")
@auth.require("viewer")
def list_alerts() -> dict[str, Any]:
    which = request.args.get("active", "true")
    active = None if which == "all" else which == "true"
    return {"alerts": [_alert_json(a) for a in _store().alerts(auth.scope(g.user), active=active)]}


def _transition(alert_id: int, action: str) -> dict[str, Any]:
    store = _store()
    alert = store.alert(alert_id)
    if alert is None or not auth.may_see(g.user, alert.site):
        raise ApiError(404, f"no alert {alert_id}")
    comment = _text(_json(), "comment")
    try:
        alerts.check_transition(alert, action)
    except alerts.TransitionError as exc:
        raise ApiError(409, str(exc)) from exc
    if action == "acknowledge":
        store.acknowledge(alert_id, g.user.name, comment, time.time())
    else:
        store.resolve(alert_id, g.user.name, comment, time.time())
    updated = store.alert(alert_id)
    assert updated is not None
    return _alert_json(updated)


@bp.post("/alerts/<int:alert_id>/acknowledge")
@auth.require("operator")
def acknowledge(alert_id: int) -> dict[str, Any]:
    return _transition(alert_id, "acknowledge")


@bp.post("/alerts/<int:alert_id>/resolve")
@auth.require("operator")
def resolve(alert_id: int) -> dict[str, Any]:
    return _transition(alert_id, "resolve")


# --- live view, history -----------------------------------------------------------------------------


@bp.post("/sites/<name>/cameras/<camera>/live")
@auth.require("viewer")
def live_view(name: str, camera: str) -> dict[str, Any]:
    """A short-lived token for one camera, and the site's playlist URL to play it from."""
    found = _visible_site(name)
    settings = current_app.config["CLLMH"].live
    where = settings.sites.get(name)
    try:
        secret = where.secret() if where is not None else b""
        granted = live.grant(
            name,
            camera,
            (found.state or {}).get("cameras", []),
            where,
            secret,
            time.time(),
            settings.token_ttl_s,
        )
    except live.LiveRefusedError as exc:
        raise ApiError(exc.status, exc.message) from exc
    except ValueError as exc:  # the secret file is missing or too short: head office's fault
        current_app.logger.error("live view of %s: %s", name, exc)
        raise ApiError(
            503, "live view of this site is not available / tayangan langsung tidak tersedia"
        ) from exc
    return granted.json()


@bp.post("/sites/<name>/events/<path:event_id>/clip")
@auth.require("viewer")
def clip(name: str, event_id: str) -> dict[str, Any]:
    """The event's clip at the site, with a short-lived token of the event's camera."""
    _visible_site(name)
    settings = current_app.config["CLLMH"].live
    where = settings.sites.get(name)
    try:
        secret = where.secret() if where is not None else b""
        granted = live.clip_grant(
            name, _store().event_clip(name, event_id), where, secret, time.time(), settings.token_ttl_s
        )
    except live.LiveRefusedError as exc:
        raise ApiError(exc.status, exc.message) from exc
    except ValueError as exc:  # the secret file is missing or too short: head office's fault
        current_app.logger.error("clip of %s: %s", name, exc)
        raise ApiError(503, "clips of this site are not available / klip tidak tersedia") from exc
    return granted.json()


@bp.get("/sites/<name>/history")
@auth.require("viewer")
def site_history(name: str) -> dict[str, Any]:
    """Per bucket of the last `hours` (default 24, at most 48): online, and the disk's hours left."""
    _visible_site(name)
    config = current_app.config["CLLMH"]
    hours = _number("hours") or 24.0
    if not 0 < hours <= config.history_retention_hours:
        raise ApiError(400, f"hours must be in (0, {config.history_retention_hours:g}]", "hours")
    now = time.time()
    since = now - hours * 3600
    bucket = config.history_bucket_s
    seen = _store().history(name, history.bucket_of(since, bucket))
    points = history.series(seen, since, now, bucket)
    return {"bucket_s": bucket, "points": [p.json() for p in points]}
