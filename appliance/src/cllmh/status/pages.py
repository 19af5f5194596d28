"""The server-rendered pages: Ringkasan/Overview, Kamera/Cameras, Kejadian/Events, Log; log in/out
and the language switch (remembered in a cookie, Indonesian by default)."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for

from cllmh import catalogue, dates
from cllmh.status import api, auth, loginlog

bp = Blueprint("pages", __name__)
LANG_COOKIE = "cllmh_lang"


def current_language() -> str:
    return catalogue.language(request.cookies.get(LANG_COOKIE) or session.get("lang"))


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, not `//evil`) is followed after logging in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.overview")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("pages.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", error=None, next=request.args.get("next", ""))
    login_: auth.Login = current_app.extensions["cllmh_status_login"]
    name = request.form.get("username", "")[:64]
    address = auth.client_address()
    user, wait = login_.attempt(address, name, request.form.get("password", "")[:256], time.time())
    if user is None:
        loginlog.refused(address, "rate-limited" if wait else "wrong-password", name)
        lang = current_language()
        if wait:
            error = catalogue.text("login.rate_limited", lang, seconds=int(wait) + 1)
            page = render_template("login.html", error=error, next=request.form.get("next", ""))
            return Response(page, status=429, headers={"Retry-After": str(int(wait) + 1)})
        error = catalogue.text("login.failed", lang)
        return render_template("login.html", error=error, next=request.form.get("next", "")), 401
    auth.start_session(user)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("pages.login"))


@bp.post("/language")
def language() -> Response:
    lang = catalogue.language(request.form.get("lang"))
    response = redirect(_safe_next(request.form.get("next")))
    # Remembered for a year on this browser, also before logging in.
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 86400,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    session["lang"] = lang
    return response


@bp.get("/")
@auth.require("viewer")
def overview() -> str:
    return render_template("overview.html", o=current_app.extensions["cllmh_status_state"].overview())


@bp.get("/cameras")
@auth.require("viewer")
def cameras() -> str:
    state = current_app.extensions["cllmh_status_state"]
    now = time.time()
    last = {
        c: next(iter(api.ev.list_events(api.config().recordings_dir, camera=c, limit=1)), None)
        for c in api.config().cameras
    }
    return render_template(
        "cameras.html", cameras=state.cameras(now), last=last, warnings=state.keyframe_warnings()
    )


@bp.post("/cameras/<camera>/validate")
@auth.require("technician")
def validate_camera(camera: str) -> Response | tuple[str, int]:
    if api.run_validation(camera) is None:
        message = catalogue.text("camera.validation_busy", current_language(), camera=camera)
        return render_template("error.html", code=409, message=message), 409
    return redirect(url_for("pages.cameras", _anchor=f"camera-{camera}"))


@bp.get("/events")
@auth.require("viewer")
def events() -> Response | str | tuple[str, int]:
    """The date is typed in the language's format (dd/mm/yyyy, yyyy-mm-dd); the page redirects to
    its yyyy-mm-dd URL (the API's form), which reads the same in both languages, and shows the
    day back in the language's format. A wrong date: the page with the catalogue's message (400)."""
    lang = current_language()
    typed = request.args.get("date", "").strip()
    day, error = None, None
    if typed:
        try:
            day = dates.parse_day(typed, lang)
        except dates.DateError:
            error = dates.bad_date_message(lang, dt.date.today())
        else:
            if typed != day.isoformat():
                # Built here, not by url_for(**args): a query key such as _scheme is not its option.
                query = [(k, v) for k, v in request.args.items(multi=True) if k != "date"]
                return redirect(f"{url_for('pages.events')}?{urlencode([*query, ('date', day.isoformat())])}")
    page = render_template(
        "events.html",
        events=[] if error else api.found_events(200, day),
        kept=api.ev.kept_ids(api.config().recordings_dir),
        may_keep=auth.allowed(g.user, "technician"),
        cameras=api.config().cameras,
        args=request.args,
        date_format=dates.date_format(lang),
        date_shown=dates.format_day(day, lang) if day else typed,
        date_error=error,
        user=g.user,
    )
    return (page, 400) if error else page


@bp.post("/events/<event_id>/keep")
@auth.require("technician")
def keep(event_id: str) -> Response:
    """The events page's keep / stop keeping button (a form with the CSRF token)."""
    api.mark_keep(event_id, request.form.get("keep") == "1")
    return redirect(_safe_next(request.form.get("next") or url_for("pages.events")))


@bp.get("/logs")
@auth.require("technician")
def logs() -> str:
    hosts, host, page = api.log_page()
    return render_template("logs.html", hosts=hosts, host=host, page=page, args=request.args)


@bp.get("/live/")
@auth.require("viewer")
def live_redirect() -> Response:
    """The former live page is the Cameras page now."""
    return redirect(url_for("pages.cameras"))
