"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real head
office (nginx from the central_api role's template serving the BUILT dashboard, gunicorn, mTLS for
the sites) fed by two sites over HTTPS with their fleet certificates, and a site's HLS origin that
checks tokens as a site does (tests/hlsorigin.py: ffmpeg's live HLS of the project's footage behind
nginx, whose `auth_request` asks the REAL status page, `cllmh status serve` under gunicorn; the
status page also serves the person event's clip).

One browser session walks the contract of issue 13: log in; the reporting site is online and its
person event is listed with its snapshot, and its clip plays in the large view from the site's URL
with a token; the events filter reads dd/mm/yyyy in Bahasa Indonesia; the site that stops reporting
turns offline after `cllmh central tick` and its alert appears, worded from the catalogue in the
page's language; acknowledging it in the page is what the API then reports; the language switches;
the live tile plays (the <video>'s currentTime grows) and every playlist and fragment request
carried a token that `cllmh.livetoken` accepts for that camera at that moment (the origin's access
log); the same fragment and clip URLs without a token get 401, with an expired token or another
camera's 403. Screenshots in both languages and at a phone's viewport go to build/screenshots/."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import requests

from centralkit import dumps, event, heartbeat, key
from cllmh import livetoken
from cllmh.central.auth import hash_password
from footage import VTEST
from footage import need as need_file
from headoffice import ROOT, HeadOffice, head_office, wait_for
from hlsorigin import HlsOrigin
from pki import FleetCA, Issued

CHROMIUM = Path("/usr/bin/chromium")
BUILD = ROOT / "build" / "dashboard"
SHOTS = ROOT / "build" / "screenshots"
USER, PASSWORD = "operator-ani", "kata-sandi-rahasia"
LIVE_SECRET = b"live-secret-of-toko-1-for-tests!"
TOKEN_TTL_S = 30  # short: the page renews it several times while the test watches
PERSON = "ev-person"  # the site's id of the lab's person event (head office: gate/ev-person)

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian package chromium)", allow_module_level=True)
if not (BUILD / "index.html").exists():
    pytest.skip(f"the dashboard is not built ({BUILD}): run `make dashboard`", allow_module_level=True)

from playwright.sync_api import Locator, Page, expect, sync_playwright  # noqa: E402 (after the skips)


@dataclass
class Fleet:
    office: HeadOffice
    origin: HlsOrigin
    online: Issued  # toko-1: reports all along
    stops: Issued  # toko-2: one heartbeat, then silent


def send(office: HeadOffice, cert: Issued, path: str, body: dict) -> requests.Response:
    answer = requests.post(
        f"{office.url}/api/v1/site/{path}",
        data=dumps(body),
        headers={"Content-Type": "application/json", "Idempotency-Key": key()},
        cert=(str(cert.cert), str(cert.key)),
        verify=str(office.fleet.cert_path),
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    return answer


def snapshot_jpeg() -> str:
    """A person in vtest.avi, as the recorder's snapshot."""
    capture = cv2.VideoCapture(str(need_file(VTEST)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return base64.b64encode(cv2.imencode(".jpg", frame)[1].tobytes()).decode()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    d = tmp_path_factory.mktemp("dashboard-browser")
    ca = FleetCA(d / "pki")
    (d / "toko-1.secret").write_bytes(LIVE_SECRET)
    # The origin must know head office's origin (CORS) and head office the origin's (CSP): ports first.
    origin = HlsOrigin(
        d / "origin",
        ca.server("localhost", "127.0.0.1"),
        allow_origin="",
        site="toko-1",
        live_secret=LIVE_SECRET,
    )
    config = f"""\
heartbeat_interval_s: 1
missed_heartbeats: 3
thresholds: {{site_silent_minutes: 0.05}}
live:
  token_ttl_s: {TOKEN_TTL_S}
  sites:
    toko-1: {{url: "{origin.url}", secret_file: "{d / "toko-1.secret"}"}}
"""
    with head_office(d / "central", ca, dashboard=BUILD, live_origins=(origin.url,), config=config) as office:
        origin.allow_origin = f"https://localhost:{office.port}"
        origin.start()
        for site in ("toko-1", "toko-2"):
            office.enroll(site)
        with office.store() as store:
            store.add_user(USER, hash_password(PASSWORD), "operator", (), time.time())
        online, stops = ca.site("toko-1"), ca.site("toko-2")
        send(office, stops, "heartbeat", heartbeat(time.time(), hostname="toko-2"))
        send(office, online, "heartbeat", heartbeat(time.time(), hostname="toko-1"))
        start = time.time() - 60
        origin.record_event("gate", PERSON, start)  # the clip stays at the site
        person = event(start, camera="gate", name=PERSON, label="person")
        person["event"]["snapshot_jpeg_b64"] = snapshot_jpeg()
        send(office, online, "events", person)
        done = threading.Event()

        def report() -> None:  # toko-1's reporter: a heartbeat every interval
            while not done.wait(1):
                send(office, online, "heartbeat", heartbeat(time.time(), hostname="toko-1"))

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        try:
            yield Fleet(office, origin, online, stops)
        finally:
            done.set()
            reporter.join(10)
            origin.close()


@pytest.fixture(scope="module")
def page(fleet: Fleet) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"]
        )
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page
        context.close()
        browser.close()
        csp = [e for e in errors if "Content Security Policy" in e]
        assert not csp, csp


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def tile(page: Page, site: str) -> Locator:
    return page.locator(f'[data-test="site-tile"][data-site="{site}"]')


# The tests below are steps of one session in one browser page, in this order.


def test_log_in_and_the_reporting_site_is_online(fleet: Fleet, page: Page) -> None:
    office = fleet.office
    # Bahasa Indonesia is the default.
    page.goto(f"{office.url}/")
    expect(page).to_have_url(f"{office.url}/login?next=/")
    page.fill('input[name="username"]', USER)
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-test="login"]')
    expect(tile(page, "toko-1").locator('[data-test="site-state"]')).to_have_attribute("data-state", "online")
    expect(tile(page, "toko-1").locator('[data-test="site-state"]')).to_contain_text("Daring")
    expect(tile(page, "toko-1").locator('[data-test="cameras"]')).to_have_text("1/1")


def test_the_person_event_is_listed_with_its_snapshot_and_its_clip_plays_from_the_site(
    fleet: Fleet, page: Page
) -> None:
    page.click('[data-test="nav-events"]')
    expect(page.locator('[data-test="event-since"]')).to_have_attribute("placeholder", "dd/mm/yyyy")
    card = page.locator('[data-test="event"]').filter(has_text="toko-1")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Orang")
    thumb = card.locator('[data-test="thumb"]')
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 768", arg=thumb.element_handle())
    card.click()
    clip = page.locator('[data-test="event-large"] video[data-test="clip"]')
    expect(clip).to_have_attribute(
        "src", re.compile(rf"^{re.escape(fleet.origin.url)}/api/v1/events/{PERSON}/clip\.mp4\?token=v1\.")
    )
    page.wait_for_function("v => v.currentTime > 1", arg=clip.element_handle(), timeout=60_000)
    shot(page, "event-clip-id.png")
    served = [r for r in fleet.origin.requests() if r.path == f"/api/v1/events/{PERSON}/clip.mp4"]
    assert served and all(r.status in (200, 206) for r in served), served
    for r in served:
        assert r.token is not None and livetoken.verify(LIVE_SECRET, "toko-1", "gate", r.token, r.at).ok
    page.keyboard.press("Escape")
    page.locator('[data-test="event-large"]').click(position={"x": 5, "y": 5})


def test_a_silent_site_turns_offline_and_its_alert_is_acknowledged_in_the_page(
    fleet: Fleet, page: Page
) -> None:
    office = fleet.office
    # toko-2 sent one heartbeat and went silent: offline, and the tick opens its alert.
    wait_for(
        "toko-2 silent past the threshold",
        lambda: time.time() - (office.site("toko-2").last_seen or 0) > 4,
        30,
    )
    office.central("tick")
    page.click('[data-test="nav-sites"]')
    expect(tile(page, "toko-2").locator('[data-test="site-state"]')).to_have_attribute(
        "data-state", "offline"
    )
    expect(tile(page, "toko-2").locator('[data-test="open-alerts"]')).to_have_text("1")
    expect(tile(page, "toko-1").locator('[data-test="site-state"]')).to_have_attribute("data-state", "online")
    shot(page, "sites-id.png")

    # Acknowledge it in the inbox; the API reports who did it, with the comment.
    page.click('[data-test="nav-alerts"]')
    alert = page.locator('[data-test="alert"][data-site="toko-2"][data-kind="site_silent"]')
    expect(alert).to_have_count(1)
    expect(alert.locator('[data-test="alert-status"]')).to_have_text("Terbuka")
    # Worded from the catalogue in the page's language (the API sends ids and values).
    expect(alert.locator('[data-test="alert-title"]')).to_have_text("toko-2: Lokasi tidak melapor")
    expect(alert.locator('[data-test="alert-detail"]')).to_contain_text("Tidak ada laporan sejak ")
    alert.locator('[data-test="alert-comment"]').fill("Satpam sudah menelepon toko, listrik padam")
    alert.locator('[data-test="acknowledge"]').click()
    expect(alert.locator('[data-test="alert-status"]')).to_have_text("Diketahui")
    expect(alert.locator('[data-test="acked-by"]')).to_contain_text(USER)
    shot(page, "alerts-id.png")
    api, ca = requests.Session(), str(office.fleet.cert_path)
    assert api.post(
        f"{office.url}/api/v1/auth/login", json={"username": USER, "password": PASSWORD}, verify=ca
    ).ok
    listed = api.get(f"{office.url}/api/v1/alerts", verify=ca).json()["alerts"]
    (acked,) = [a for a in listed if a["site"] == "toko-2"]
    assert acked["status"] == "acknowledged"
    assert acked["acked_by"] == USER
    assert acked["ack_comment"] == "Satpam sudah menelepon toko, listrik padam"


def test_the_language_switches_to_english(page: Page) -> None:
    page.select_option('[data-test="language"]', "en")
    expect(page.locator('[data-test="nav-alerts"]')).to_have_text("Alerts")
    alert = page.locator('[data-test="alert"][data-site="toko-2"][data-kind="site_silent"]')
    expect(alert.locator('[data-test="alert-status"]')).to_have_text("Acknowledged")
    expect(alert.locator('[data-test="alert-detail"]')).to_contain_text("No heartbeat since ")
    shot(page, "alerts-en.png")
    page.click('[data-test="nav-sites"]')
    expect(tile(page, "toko-2").locator('[data-test="site-state"]')).to_contain_text("Offline")
    shot(page, "sites-en.png")


def test_the_live_tile_plays_from_the_site_with_a_valid_token_on_every_request(
    fleet: Fleet, page: Page
) -> None:
    office = fleet.office
    page.goto(f"{office.url}/live?camera=toko-1/gate")
    video = page.locator('[data-live="toko-1/gate"] video')
    expect(video).to_have_count(1)
    page.wait_for_function("v => v.currentTime > 1", arg=video.element_handle(), timeout=60_000)
    first = video.evaluate("v => v.currentTime")
    page.wait_for_function(f"v => v.currentTime > {first} + 2", arg=video.element_handle(), timeout=60_000)
    # The page renews the token while it plays (every few seconds at this TTL) and keeps playing.
    tile = page.locator('[data-live="toko-1/gate"]')
    expect(tile).to_have_attribute("data-renewals", re.compile(r"^[1-9]"), timeout=60_000)
    renewed_at = video.evaluate("v => v.currentTime")
    page.wait_for_function(
        f"v => v.currentTime > {renewed_at} + 2", arg=video.element_handle(), timeout=60_000
    )
    shot(page, "live-en.png")
    hls = [r for r in fleet.origin.requests() if r.path.startswith("/hls/")]
    assert any(r.path == "/hls/gate/index.m3u8" for r in hls)
    assert sum(r.path.endswith(".ts") for r in hls) >= 2
    for r in hls:
        assert r.token is not None, f"{r.path} without a token"
        verdict = livetoken.verify(LIVE_SECRET, "toko-1", "gate", r.token, r.at)
        assert verdict.ok, f"{r.path} at {r.at}: {verdict.reason}"
        assert r.status == 200
    assert len({r.token for r in hls}) >= 2  # requests after the renewal carry the new token
    assert not livetoken.verify(LIVE_SECRET, "toko-1", "yard", hls[0].token or "", hls[0].at).ok


def test_the_site_refuses_a_fragment_or_clip_without_a_token_or_with_a_wrong_one(fleet: Fleet) -> None:
    """The origin's real check (nginx auth_request -> the status page): what a browser gets for
    the URLs the dashboard played, with the token taken away, expired or another camera's."""
    origin, ca = fleet.origin, str(fleet.office.fleet.cert_path)
    fragment = next(r.path for r in origin.requests() if r.path.endswith(".ts") and r.status == 200)
    clip = f"/api/v1/events/{PERSON}/clip.mp4"
    now = time.time()
    expired = livetoken.mint(LIVE_SECRET, "toko-1", "gate", now - 700, 600)
    yard = livetoken.mint(LIVE_SECRET, "toko-1", "yard", now)
    other_site = livetoken.mint(LIVE_SECRET, "toko-2", "gate", now)
    good = livetoken.mint(LIVE_SECRET, "toko-1", "gate", now)
    head_office = f"https://localhost:{fleet.office.port}"

    def get(path: str, token: str | None, **headers: str) -> requests.Response:
        params = {"token": token} if token is not None else {}
        return requests.get(f"{origin.url}{path}", params=params, headers=headers, verify=ca, timeout=30)

    for path in (fragment, "/hls/gate/index.m3u8", clip):
        assert get(path, None).status_code == 401, path
        assert get(path, expired).status_code == 403, path
        assert get(path, yard).status_code == 403, path
        assert get(path, other_site).status_code == 403, path
    assert get("/hls/gate/index.m3u8", good).status_code == 200
    ranged = get(clip, good, Range="bytes=0-1023", Origin=head_office)
    assert ranged.status_code == 206 and len(ranged.content) == 1024
    assert ranged.headers["Access-Control-Allow-Origin"] == head_office


def test_on_a_phone_the_tiles_take_the_whole_width(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.select_option('[data-test="language"]', "id")
    page.click('[data-test="nav-sites"]')
    expect(tile(page, "toko-2")).to_be_visible()
    boxes = [tile(page, s).bounding_box() for s in ("toko-1", "toko-2")]
    assert all(b is not None and b["width"] > 300 for b in boxes)  # one tile per row
    shot(page, "sites-phone-id.png")
    page.click('[data-test="nav-alerts"]')
    shot(page, "alerts-phone-id.png")
