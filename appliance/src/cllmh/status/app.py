"""The Flask app factory. gunicorn runs `cllmh.status.app:create_app()` (configuration from
$CLLMH_STATUS_CONFIG); tests call `create_app(StatusConfig(...))`.

One gunicorn worker process with threads: the failed-login limiter lives in that process, so its
limits are the site's limits (several workers would each allow the limit)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from cllmh import catalogue
from cllmh.status import api, auth, loginlog, pages
from cllmh.status import config as cfg
from cllmh.status.ratelimit import FailureLimiter
from cllmh.status.state import SiteState

CONFIG_ENV = "CLLMH_STATUS_CONFIG"


def local_time(unix: float | None) -> str:
    """A unix time as the box's local time (the site's time zone), for people."""
    if unix is None:
        return "-"
    return dt.datetime.fromtimestamp(unix).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def create_app(config: cfg.StatusConfig | None = None) -> Flask:
    config = config or cfg.load(Path(os.environ.get(CONFIG_ENV, "/etc/cllmh-status/status.yaml")))
    app = Flask(__name__)
    app.config.update(
        CLLMH_STATUS=config,
        SECRET_KEY=cfg.read_secret(config.session_secret_file, 32),
        CLLMH_LIVE_SECRET=cfg.read_secret(config.live_secret_file),
        SESSION_COOKIE_NAME="cllmh_status",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        # Lax: a link to the page (from a chat, from head office's dashboard) opens it logged in;
        # every write still needs the session's CSRF token.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=config.session_hours),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    limit = config.login_limit
    app.extensions["cllmh_status_login"] = auth.Login(
        cfg.load_users(config.users_file),
        FailureLimiter(limit.per_address, limit.window_s),
        FailureLimiter(limit.per_user, limit.window_s),
    )
    app.extensions["cllmh_status_state"] = SiteState(config)
    loginlog.setup()
    app.jinja_env.filters["datetime"] = local_time

    @app.before_request
    def _csrf() -> None:
        auth.check_csrf()

    @app.context_processor
    def _words() -> dict:
        lang = pages.current_language()
        return {
            "t": lambda message_id, **values: catalogue.text(message_id, lang, **values),
            "lang": lang,
            "csrf_token": auth.csrf_token,
            "user": auth.session_user(),
        }

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:;"
            " style-src 'self'; frame-ancestors 'none'",
        )
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response | str, int]:
        code = exc.code or 500
        lang = pages.current_language()
        message_id = {400: "request.invalid", 401: "auth.required", 403: "auth.forbidden"}.get(code)
        # a 400 is an expired form only when the CSRF check says so; any other says what was wrong
        detail = exc.description if code == 400 and exc.description != "csrf" else None
        if exc.description == "csrf":
            message_id = "csrf.invalid"
        text = catalogue.text(message_id, lang) if message_id else exc.name
        if request.path.startswith(("/api/", "/auth/", "/metrics")):
            body = {"error": text, "id": message_id} if message_id else {"error": text}
            if detail:
                body["detail"] = detail
            return jsonify(body), code
        return render_template("error.html", code=code, message=text), code

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    return app
