"""One login for the appliance: a Flask session (signed cookie), CSRF on every form, failed logins
limited per address and per user, werkzeug scrypt hashes; roles viewer < technician.

Also the cheap answer nginx's `auth_request` needs for every HLS playlist and fragment: a valid
session (a signature check of the cookie, no password hash) or a live-view token for that camera."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, g, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from cllmh import livetoken
from cllmh.status.config import ROLES, Role, User
from cllmh.status.ratelimit import FailureLimiter

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Compared against when the user does not exist, so both cases take one scrypt run.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")

F = TypeVar("F", bound=Callable[..., Any])


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def client_address() -> str:
    """The client's address. Behind nginx (trust_proxy_headers: gunicorn listens on a unix socket
    only nginx may open) it is `X-Real-IP`, which nginx sets to its peer's address, replacing
    whatever the client sent; `X-Forwarded-For` is never read (a client can write it)."""
    if current_app.config["CLLMH_STATUS"].trust_proxy_headers:
        return request.headers.get("X-Real-IP", "") or (request.remote_addr or "")
    return request.remote_addr or ""


class Login:
    """Checks passwords behind the two failure limiters."""

    def __init__(self, users: dict[str, User], per_address: FailureLimiter, per_user: FailureLimiter) -> None:
        self.users, self.per_address, self.per_user = users, per_address, per_user

    def attempt(self, address: str, name: str, password: str, now: float) -> tuple[User | None, float]:
        """(the user, 0) on success; (None, 0) for a wrong password; (None, seconds) when refused
        by the limit without checking the password."""
        wait = max(self.per_address.retry_after(address, now), self.per_user.retry_after(name, now))
        if wait > 0:
            return None, wait
        user = self.users.get(name)
        ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
        if ok and user is not None:
            self.per_user.succeeded(name)
            return user, 0.0
        self.per_address.failed(address, now)
        self.per_user.failed(name, now)
        return None, 0.0


def start_session(user: User) -> None:
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["user"] = user.name
    session["csrf"] = secrets.token_urlsafe(32)
    if lang:
        session["lang"] = lang


def csrf_token() -> str:
    """This session's CSRF token (an anonymous session gets one for the login form)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    """Every unsafe request must carry the session's token (form field or header): else 400."""
    if request.method not in UNSAFE:
        return
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, description="csrf")


def session_user() -> User | None:
    name = session.get("user")
    users: dict[str, User] = current_app.extensions["cllmh_status_login"].users
    return users.get(name) if isinstance(name, str) else None


def allowed(user: User, role: Role) -> bool:
    return ROLES.index(user.role) >= ROLES.index(role)


def require(role: Role, *, api: bool = False) -> Callable[[F], F]:
    """The view runs with g.user set when a user of at least `role` is logged in. Anonymous: a
    page redirects to the login (an API answers 401); a lower role gets 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = session_user()
            if user is None:
                if api:
                    abort(401)
                from flask import redirect, url_for  # noqa: PLC0415

                return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
            if not allowed(user, role):
                abort(403)
            g.user = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def metrics_token_ok(expected_sha256: str) -> bool:
    header = request.headers.get("Authorization", "")
    if not expected_sha256 or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(token_digest(header.removeprefix("Bearer ").strip()), expected_sha256)


def hls_camera(uri: str) -> str | None:
    """The camera of an HLS path `/hls/<camera>/<file>` (hls_nested), else None."""
    path = uri.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "hls" or not parts[2] or not parts[3]:
        return None
    return parts[2]


def live_verdict(secret: bytes, site: str, camera: str | None, token: str, now: float | None = None) -> int:
    """204 when `token` opens `camera` of `site`, else 403."""
    if camera is None or not token:
        return 403
    verdict = livetoken.verify(secret, site, camera, token, time.time() if now is None else now)
    return 204 if verdict.ok else 403
