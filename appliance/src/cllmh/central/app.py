"""The Flask app factory. gunicorn runs `cllmh.central.app:create_app()` (configuration from
$CLLMH_CENTRAL_CONFIG); tests call `create_app(CentralConfig(...))`."""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from cllmh.central import config as cfg
from cllmh.central import dashboard, site_api
from cllmh.central.errors import ApiError
from cllmh.central.store import Store


def create_app(config: cfg.CentralConfig | None = None) -> Flask:
    config = config or cfg.load()
    search = config.elasticsearch is not None
    Store.open(config.database, search_outbox=search).close()  # migrate once, before any worker serves
    app = Flask(__name__)
    app.config.update(
        CLLMH=config,
        SECRET_KEY=config.secret(),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        SESSION_COOKIE_NAME="cllmh_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=config.session_hours),
    )

    # One connection per worker thread, kept across requests: closing the last connection of a WAL
    # database checkpoints it, which per request cost more than the request itself (benchmark).
    local = threading.local()

    def store() -> Store:
        if getattr(local, "pid", None) != os.getpid():
            local.store, local.pid = Store(config.database, search_outbox=search), os.getpid()
        return local.store

    app.extensions["cllmh_store"] = store

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Any, int]:
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Any, int]:
        code = exc.code or 500
        message = "request too large" if code == 413 else (exc.description or exc.name)
        return jsonify({"error": message}), code

    app.register_blueprint(site_api.bp)
    app.register_blueprint(dashboard.bp)
    return app
