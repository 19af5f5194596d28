"""Who is asking: a site (its certificate's CN, passed by nginx), or a person or script (a user).

Sites: nginx verifies the client certificate against the fleet CA and its CRL and sets
X-Cllmh-Client-Verify / X-Cllmh-Client-Cn, overwriting anything a client sent. The app trusts
those headers only with `trust_proxy_headers: true`, which the role sets when gunicorn listens on
a unix socket that only nginx can open. A site must be enrolled and not revoked.

Users: roles viewer < operator < admin; a user's `sites` (empty: all) scopes what they see. A
browser logs in to a Flask session (signed cookie) and sends its CSRF token in X-CSRF-Token on
every write; a script sends `Authorization: Bearer <token>` (stored as its SHA-256 only)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Request, current_app, g, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from cllmh.central.errors import ApiError
from cllmh.central.store import Store, User

ROLES = ("viewer", "operator", "admin")
VERIFY_HEADER = "X-Cllmh-Client-Verify"
CN_HEADER = "X-Cllmh-Client-Cn"
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A fixed hash to compare against when the user does not exist (same time either way).
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")

F = TypeVar("F", bound=Callable[..., Any])


def site_name(req: Request, trust_proxy_headers: bool, store: Store) -> str:
    """The calling site's name (its certificate's CN) or ApiError 401/403."""
    if not trust_proxy_headers or req.headers.get(VERIFY_HEADER) != "SUCCESS":
        raise ApiError(401, "no verified client certificate / tidak ada sertifikat klien yang sah")
    name = req.headers.get(CN_HEADER, "")
    if not SITE_NAME.match(name):
        raise ApiError(403, f"certificate CN {name[:64]!r} is not a site name")
    site = store.site(name)
    if site is None:
        raise ApiError(403, f"site {name} is not enrolled at head office / situs belum terdaftar")
    if site.revoked_at is not None:
        raise ApiError(403, f"site {name} is revoked / situs dicabut")
    return name


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def check_password(store: Store, name: str, password: str) -> User | None:
    user = store.user(name)
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    return user if ok and user is not None else None


def new_token() -> tuple[str, str]:
    """(the token to give the script once, its SHA-256 to store)."""
    token = "cllmh_" + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> str:
    session.clear()
    session.permanent = True
    session["user"] = user.name
    session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def current_user(store: Store) -> User:
    """The user of this request (token, else session with CSRF on writes), else ApiError 401/403."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        user = store.token_user(token_digest(header.removeprefix("Bearer ").strip()))
        if user is None:
            raise ApiError(401, "unknown API token")
        return user
    name = session.get("user")
    user = store.user(name) if name else None
    if user is None:
        raise ApiError(401, "log in first / silakan masuk dulu")
    if request.method in UNSAFE:
        sent = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(sent, session.get("csrf", "")):
            raise ApiError(403, "missing or wrong X-CSRF-Token")
    return user


def require(role: str) -> Callable[[F], F]:
    """The view runs with g.user set when the user's role is at least `role`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user(current_app.extensions["cllmh_store"]())
            if ROLES.index(user.role) < ROLES.index(role):
                raise ApiError(403, f"needs role {role} / perlu peran {role}")
            g.user = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def scope(user: User) -> tuple[str, ...] | None:
    """The sites `user` may see; None: every site."""
    if user.role == "admin" or not user.sites:
        return None
    return user.sites


def may_see(user: User, site: str) -> bool:
    allowed = scope(user)
    return allowed is None or site in allowed
