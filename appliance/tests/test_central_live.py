"""Live view and history through the app factory: the API mints `cllmh.livetoken` tokens for a
camera the site reported, with that site's secret and URL, only for users who may see the site;
a site's history shows the buckets with heartbeats as online with the hours left reported."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from centralkit import dumps, event, heartbeat, key
from cllmh import livetoken
from cllmh.central import history
from cllmh.central.app import create_app
from cllmh.central.auth import hash_password
from cllmh.central.config import CentralConfig, Live, LiveSite
from cllmh.central.store import Store

PASSWORD = "correct horse battery"
SECRET_A = b"a-live-secret-of-site-a-32-bytes"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    (tmp_path / "site-a.secret").write_bytes(SECRET_A + b"\n")
    (tmp_path / "short.secret").write_bytes(b"short\n")
    config = CentralConfig(
        database=tmp_path / "central.sqlite3",
        secret_key="test secret",
        trust_proxy_headers=True,
        session_cookie_secure=False,
        history_bucket_s=60,
        live=Live(
            token_ttl_s=300,
            sites={
                "site-a": LiveSite(
                    url="https://site-a.example.sn.mynetname.net:8443", secret_file=tmp_path / "site-a.secret"
                ),
                "site-b": LiveSite(url="https://site-b.example", secret_file=tmp_path / "short.secret"),
            },
        ),
    )
    store = Store.open(config.database)
    now = time.time()
    for site in ("site-a", "site-b", "site-c"):
        store.enroll(site, now)
    store.add_user("budi", hash_password(PASSWORD), "operator", (), now)
    store.add_user("citra", hash_password(PASSWORD), "viewer", ("site-b",), now)
    store.close()
    return create_app(config)


def beat(client: FlaskClient, site: str, **state: object) -> None:
    headers = {"X-Cllmh-Client-Verify": "SUCCESS", "X-Cllmh-Client-Cn": site, "Idempotency-Key": key()}
    answer = client.post(
        "/api/v1/site/heartbeat", data=dumps(heartbeat(time.time(), **state)), headers=headers,
        content_type="application/json",
    )  # fmt: skip
    assert answer.status_code == 200, answer.json


def login(client: FlaskClient, user: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.json
    return {"X-CSRF-Token": answer.json["csrf_token"]}


def test_live_view_mints_a_token_for_the_reported_camera_at_the_sites_url(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-a")
    csrf = login(client, "budi")
    before = time.time()
    answer = client.post("/api/v1/sites/site-a/cameras/gate/live", headers=csrf)
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["playlist"] == "https://site-a.example.sn.mynetname.net:8443/hls/gate/index.m3u8"
    assert int(before) + 300 <= body["expires"] <= time.time() + 300
    assert livetoken.expires_at(body["token"]) == body["expires"]
    # The site verifies it with its own secret, for this camera only.
    assert livetoken.verify(SECRET_A, "site-a", "gate", body["token"], time.time()).ok
    assert not livetoken.verify(SECRET_A, "site-a", "yard", body["token"], time.time()).ok
    assert not livetoken.verify(
        b"another-site-secret-32-bytes-xxx", "site-a", "gate", body["token"], time.time()
    ).ok
    assert urlsplit(body["playlist"]).query == ""  # the token travels as its own argument, added by hls.js


def test_live_view_refuses_a_camera_the_site_did_not_report(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-a")
    csrf = login(client, "budi")
    answer = client.post("/api/v1/sites/site-a/cameras/yard/live", headers=csrf)
    assert answer.status_code == 404
    assert "yard" in answer.json["error"]


def test_live_view_needs_the_sites_url_and_a_usable_secret(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-b")
    beat(client, "site-c")
    csrf = login(client, "budi")
    assert client.post("/api/v1/sites/site-c/cameras/gate/live", headers=csrf).status_code == 404
    short = client.post("/api/v1/sites/site-b/cameras/gate/live", headers=csrf)
    assert short.status_code == 503
    assert "secret" not in short.json["error"]  # why is head office's log's business, not the browser's


def test_live_view_is_scoped_like_the_site_and_needs_a_session_with_csrf(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-a")
    assert client.post("/api/v1/sites/site-a/cameras/gate/live").status_code == 401
    csrf = login(client, "citra")  # viewer of site-b only
    assert client.post("/api/v1/sites/site-a/cameras/gate/live", headers=csrf).status_code == 404
    assert client.post("/api/v1/sites/site-a/cameras/gate/live").status_code == 403  # no CSRF token


def send_event(client: FlaskClient, site: str, body: dict) -> None:
    headers = {"X-Cllmh-Client-Verify": "SUCCESS", "X-Cllmh-Client-Cn": site, "Idempotency-Key": key()}
    answer = client.post(
        "/api/v1/site/events", data=dumps(body), headers=headers, content_type="application/json"
    )
    assert answer.status_code in (200, 201), answer.json


def test_a_clip_is_granted_at_the_sites_url_with_a_token_of_the_events_camera(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-a")
    send_event(client, "site-a", event(time.time() - 60, camera="pintu", name="ev-7"))
    csrf = login(client, "budi")
    answer = client.post("/api/v1/sites/site-a/events/pintu/ev-7/clip", headers=csrf)
    assert answer.status_code == 200, answer.json
    url = urlsplit(answer.json["url"])
    assert f"{url.scheme}://{url.netloc}" == "https://site-a.example.sn.mynetname.net:8443"
    assert url.path == "/api/v1/events/ev-7/clip.mp4"  # the site's own id of the event
    token = url.query.removeprefix("token=")
    assert livetoken.expires_at(token) == answer.json["expires"]
    # The camera need not be in the last heartbeat (pintu is not): the event names it.
    assert livetoken.verify(SECRET_A, "site-a", "pintu", token, time.time()).ok
    assert not livetoken.verify(SECRET_A, "site-a", "gate", token, time.time()).ok
    assert client.post("/api/v1/sites/site-a/events/pintu/ev-8/clip", headers=csrf).status_code == 404
    assert client.post("/api/v1/sites/site-a/events/pintu/ev-7/clip").status_code == 403  # no CSRF
    csrf = login(client, "citra")  # viewer of site-b only
    assert client.post("/api/v1/sites/site-a/events/pintu/ev-7/clip", headers=csrf).status_code == 404


def test_history_shows_the_buckets_with_heartbeats_online_with_their_hours_left(app: Flask) -> None:
    client = app.test_client()
    beat(
        client,
        "site-a",
        disk={"path": "/r", "total_bytes": 1, "used_bytes": 0, "free_bytes": 1, "hours_left": 12.5},
    )
    login(client, "budi")
    answer = client.get("/api/v1/sites/site-a/history")
    assert answer.status_code == 200, answer.json
    points = answer.json["points"]
    assert answer.json["bucket_s"] == 60
    assert len(points) in (24 * 60, 24 * 60 + 1)
    online = [p for p in points if p["online"]]
    assert len(online) == 1
    assert online[0]["hours_left"] == 12.5
    # The heartbeat's bucket is the last one, or the one before when a minute began meanwhile.
    assert online[0]["at"] in (points[-1]["at"], points[-2]["at"])
    assert client.get("/api/v1/sites/site-a/history?hours=100").status_code == 400


def test_history_series_marks_silent_buckets_offline() -> None:
    seen = {600: 30.0, 660: 29.5, 840: None}
    points = history.series(seen, since=610, until=900, bucket_s=60)
    assert [(p.at, p.online, p.hours_left) for p in points] == [
        (600.0, True, 30.0),
        (660.0, True, 29.5),
        (720.0, False, None),
        (780.0, False, None),
        (840.0, True, None),
        (900.0, False, None),
    ]


def test_history_buckets_are_pruned_by_the_tick(app: Flask) -> None:
    client = app.test_client()
    beat(client, "site-a")
    config: CentralConfig = app.config["CLLMH"]
    store = Store(config.database)
    try:
        assert store.history("site-a", 0)
        store.prune(events_before=0, snapshots_before=0, keys_before=0, history_before=time.time() + 120)
        assert store.history("site-a", 0) == {}
    finally:
        store.close()
