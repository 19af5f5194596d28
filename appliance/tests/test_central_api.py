"""The head office API through its app factory: the site contract (schema errors, identity,
idempotency) and the dashboard's API (sessions with CSRF, tokens, roles and site scopes, events,
alerts). Real SQLite files in tmp_path; the site's identity headers are those nginx would set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from centralkit import JPEG, dumps, event, heartbeat, key
from cllmh.central import tick
from cllmh.central.app import create_app
from cllmh.central.auth import hash_password
from cllmh.central.config import CentralConfig
from cllmh.central.store import Store

PASSWORD = "correct horse battery"


@pytest.fixture
def config(tmp_path: Path) -> CentralConfig:
    return CentralConfig(
        database=tmp_path / "central.sqlite3",
        secret_key="test secret",
        trust_proxy_headers=True,
        session_cookie_secure=False,
    )


@pytest.fixture
def store(config: CentralConfig) -> Iterator[Store]:
    opened = Store.open(config.database)
    now = time.time()
    for site in ("site-a", "site-b", "site-old"):
        opened.enroll(site, now)
    opened.revoke("site-old", now)
    opened.add_user("ani", hash_password(PASSWORD), "admin", (), now)
    opened.add_user("budi", hash_password(PASSWORD), "operator", (), now)
    opened.add_user("citra", hash_password(PASSWORD), "viewer", ("site-b",), now)
    yield opened
    opened.close()


@pytest.fixture
def app(config: CentralConfig, store: Store) -> Flask:
    return create_app(config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def site_headers(site: str = "site-a", idem: str | None = None, verify: str = "SUCCESS") -> dict[str, str]:
    return {
        "X-Cllmh-Client-Verify": verify,
        "X-Cllmh-Client-Cn": site,
        "Idempotency-Key": idem or key(),
        "Content-Type": "application/json",
    }


def post(client: FlaskClient, path: str, body: Any, **headers: Any) -> Any:
    data = body if isinstance(body, bytes) else dumps(body)
    return client.post(f"/api/v1/site/{path}", data=data, headers=site_headers(**headers))


def login(client: FlaskClient, user: str) -> str:
    answer = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.json
    return answer.json["csrf_token"]


# --- site contract: schema ------------------------------------------------------------------------


def test_heartbeat_is_stored_and_the_site_shows_online(client: FlaskClient) -> None:
    now = time.time()
    answer = post(client, "heartbeat", heartbeat(now))
    assert (answer.status_code, answer.json) == (200, {"status": "ok", "duplicate": False})
    login(client, "ani")
    site = client.get("/api/v1/sites/site-a").json
    assert site["state"] == "online"
    assert site["cameras"][0]["name"] == "gate"
    assert client.get("/api/v1/sites/site-b").json["state"] == "never_seen"


def _camera_fps_text(now: float) -> dict[str, Any]:
    body = heartbeat(now)
    body["state"]["cameras"][0]["fps"] = "fast"
    return body


def _no_state(now: float) -> dict[str, Any]:
    body = heartbeat(now)
    del body["state"]
    return body


def _hours_left_negative(now: float) -> dict[str, Any]:
    body = heartbeat(now)
    body["state"]["disk"]["hours_left"] = -1
    return body


def _kept_fill_text(now: float) -> dict[str, Any]:
    body = heartbeat(now)
    body["state"].setdefault("guard", {})["kept_fill"] = "yes"
    return body


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (_camera_fps_text, "state.cameras[0].fps"),
        (lambda now: heartbeat(now * 1000), "sent_at"),  # milliseconds, not unix seconds
        (_no_state, "state"),
        (_hours_left_negative, "state.disk.hours_left"),
        (lambda now: {**heartbeat(now), "schema": 2}, "schema"),
        (_kept_fill_text, "state.guard.kept_fill"),
    ],
    ids=["fps-text", "sent-at-ms", "no-state", "hours-left-negative", "schema-2", "kept-fill-text"],
)
def test_heartbeat_schema_error_names_the_wrong_field(client: FlaskClient, make: Any, field: str) -> None:
    answer = post(client, "heartbeat", make(time.time()))
    assert answer.status_code == 400
    assert answer.json["field"] == field
    assert field.rsplit(".", maxsplit=1)[-1].split("[", maxsplit=1)[0] in answer.json["error"]


def test_event_schema_errors_name_the_field(client: FlaskClient) -> None:
    now = time.time()
    backwards = event(now)
    backwards["event"]["end"] = now - 5
    bad_b64 = event(now)
    bad_b64["event"]["snapshot_jpeg_b64"] = "not base64!"
    not_jpeg = event(now)
    not_jpeg["event"]["snapshot_jpeg_b64"] = "aGVsbG8="
    other_camera = event(now, camera="gate")
    other_camera["event"]["camera"] = "yard"
    for body, field in [
        (backwards, "event.end"),
        (bad_b64, "event.snapshot_jpeg_b64"),
        (not_jpeg, "event.snapshot_jpeg_b64"),
        (other_camera, "event.id"),
    ]:
        answer = post(client, "events", body)
        assert (answer.status_code, answer.json.get("field")) == (400, field), answer.json


def test_malformed_not_json_too_large_and_missing_key(client: FlaskClient, config: CentralConfig) -> None:
    assert post(client, "heartbeat", b"{not json").status_code == 400
    answer = client.post(
        "/api/v1/site/heartbeat",
        data=dumps(heartbeat(time.time())),
        headers={**site_headers(), "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415
    big = event(time.time())
    big["event"]["snapshot_jpeg_b64"] = "A" * config.max_body_bytes
    answer = post(client, "events", big)
    assert answer.status_code == 413
    assert "error" in answer.json
    answer = post(client, "heartbeat", heartbeat(time.time()), idem="not-a-uuid")
    assert (answer.status_code, answer.json["field"]) == (400, "Idempotency-Key")


# --- site contract: identity ----------------------------------------------------------------------


def test_site_identity_no_cert_unknown_and_revoked(client: FlaskClient) -> None:
    body = heartbeat(time.time())
    no_cert = client.post(
        "/api/v1/site/heartbeat",
        data=dumps(body),
        headers={"Idempotency-Key": key(), "Content-Type": "application/json"},
    )
    assert no_cert.status_code == 401
    assert post(client, "heartbeat", body, verify="FAILED:certificate has expired").status_code == 401
    assert post(client, "heartbeat", body, verify="NONE").status_code == 401
    assert post(client, "heartbeat", body, site="site-unknown").status_code == 403
    assert post(client, "heartbeat", body, site="site-old").status_code == 403
    assert post(client, "heartbeat", body, site="site-a").status_code == 200


def test_identity_headers_are_ignored_unless_trusted(config: CentralConfig, store: Store) -> None:
    client = create_app(config.model_copy(update={"trust_proxy_headers": False})).test_client()
    assert post(client, "heartbeat", heartbeat(time.time())).status_code == 401
    assert store.site("site-a").last_seen is None


def test_the_site_name_comes_from_the_certificate_not_the_body(client: FlaskClient, store: Store) -> None:
    body = heartbeat(time.time(), hostname="site-b")
    body["site"] = "site-b"
    assert post(client, "heartbeat", body, site="site-a").status_code == 200
    assert store.site("site-a").last_seen is not None
    assert store.site("site-b").last_seen is None


# --- site contract: idempotency -------------------------------------------------------------------


def test_heartbeat_repeated_key_is_a_duplicate_and_another_body_a_conflict(
    client: FlaskClient, store: Store
) -> None:
    idem, now = key(), time.time()
    first = heartbeat(now)
    assert post(client, "heartbeat", first, idem=idem).json["duplicate"] is False
    again = post(client, "heartbeat", first, idem=idem)
    assert (again.status_code, again.json["duplicate"]) == (200, True)
    changed = heartbeat(now, version="9.9.9")
    conflict = post(client, "heartbeat", changed, idem=idem)
    assert (conflict.status_code, conflict.json["field"]) == (409, "Idempotency-Key")
    assert store.site("site-a").state["version"] == "0.1.0"


def test_a_late_older_heartbeat_does_not_replace_the_newer_state(client: FlaskClient, store: Store) -> None:
    now = time.time()
    post(client, "heartbeat", heartbeat(now, version="new"))
    post(client, "heartbeat", heartbeat(now - 600, version="old"))  # from the outbox, after an outage
    assert store.site("site-a").state["version"] == "new"


def test_event_stored_once_whatever_the_key(client: FlaskClient) -> None:
    body = event(time.time() - 60)
    first = post(client, "events", body)
    assert (first.status_code, first.json["duplicate"]) == (201, False)
    again = post(client, "events", body)  # a new key: the outbox lost its record of the first send
    assert (again.status_code, again.json["duplicate"]) == (200, True)
    login(client, "ani")
    assert len(client.get("/api/v1/events").json["events"]) == 1


# --- dashboard API --------------------------------------------------------------------------------


def test_dashboard_needs_a_login_and_csrf_on_writes(client: FlaskClient, store: Store) -> None:
    assert client.get("/api/v1/sites").status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "ani", "password": "wrong"}).status_code == 401
    csrf = login(client, "ani")
    assert client.get("/api/v1/sites").status_code == 200
    assert client.post("/api/v1/tokens", json={"label": "x"}).status_code == 403
    made = client.post("/api/v1/tokens", json={"label": "x"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert client.get("/api/v1/sites").status_code == 401


def test_api_token_for_scripts(client: FlaskClient, app: Flask) -> None:
    csrf = login(client, "budi")
    token = client.post("/api/v1/tokens", json={"label": "cron"}, headers={"X-CSRF-Token": csrf}).json[
        "token"
    ]
    script = app.test_client()
    assert script.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert script.get("/api/v1/sites", headers={"Authorization": "Bearer cllmh_forged"}).status_code == 401


def test_viewer_sees_only_its_sites_and_cannot_acknowledge(
    client: FlaskClient, store: Store, config: CentralConfig
) -> None:
    now = time.time()
    post(client, "events", event(now - 100), site="site-a")
    post(client, "events", event(now - 50), site="site-b")
    tick.run(store, config, now + 3600)  # both sites silent: two alerts
    csrf = login(client, "citra")
    assert [s["name"] for s in client.get("/api/v1/sites").json["sites"]] == ["site-b"]
    assert client.get("/api/v1/sites/site-a").status_code == 404
    assert {e["site"] for e in client.get("/api/v1/events").json["events"]} == {"site-b"}
    assert client.get("/api/v1/events?site=site-a").status_code == 404
    alerts = client.get("/api/v1/alerts").json["alerts"]
    assert {a["site"] for a in alerts} == {"site-b"}
    answer = client.post(
        f"/api/v1/alerts/{alerts[0]['id']}/acknowledge",
        json={"comment": "ok"},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 403


def test_events_filter_by_site_camera_label_and_time_and_serve_snapshots(client: FlaskClient) -> None:
    now = time.time()
    post(client, "events", event(now - 300, camera="gate", label="person"))
    post(client, "events", event(now - 200, camera="yard", label="car"))
    post(client, "events", event(now - 100, camera="gate", label="car"), site="site-b")
    login(client, "ani")

    def ids(query: str) -> list[str]:
        return [f"{e['site']}:{e['id']}" for e in client.get(f"/api/v1/events?{query}").json["events"]]

    assert len(ids("")) == 3
    assert ids("site=site-a&label=car") == [f"site-a:yard/{int(now - 200)}-car"]
    assert ids("camera=gate&label=person") == [f"site-a:gate/{int(now - 300)}-person"]
    assert ids(f"since={now - 250}&until={now - 150}") == [f"site-a:yard/{int(now - 200)}-car"]
    assert client.get("/api/v1/events?since=yesterday").json["field"] == "since"
    snap = client.get(f"/api/v1/sites/site-a/events/gate/{int(now - 300)}-person/snapshot.jpg")
    assert (snap.status_code, snap.mimetype, snap.data) == (200, "image/jpeg", JPEG)


def test_alert_acknowledge_and_resolve_record_who_and_why(
    client: FlaskClient, store: Store, config: CentralConfig
) -> None:
    now = time.time()
    post(client, "heartbeat", heartbeat(now, disk={"hours_left": 3.0}))
    tick.run(store, config, now + 1)
    csrf = login(client, "budi")
    (alert,) = [a for a in client.get("/api/v1/alerts").json["alerts"] if a["site"] == "site-a"]
    assert (alert["kind"], alert["status"]) == ("storage_low", "open")
    # Its words by id and values from the one catalogue (the dashboard shows them in its language).
    assert alert["title_id"] == "alert.storage_low"
    assert alert["message"] == {"id": "alert.storage_low.detail", "values": {"hours": 3.0, "floor": 24.0}}
    assert alert["detail"] == "3 h of recording left (floor 24 h)"
    url = f"/api/v1/alerts/{alert['id']}"
    no_comment = client.post(f"{url}/acknowledge", json={}, headers={"X-CSRF-Token": csrf})
    assert (no_comment.status_code, no_comment.json["field"]) == (400, "comment")
    acked = client.post(
        f"{url}/acknowledge", json={"comment": "disk ordered"}, headers={"X-CSRF-Token": csrf}
    )
    assert (acked.json["status"], acked.json["acked_by"], acked.json["ack_comment"]) == (
        "acknowledged",
        "budi",
        "disk ordered",
    )
    again = client.post(f"{url}/acknowledge", json={"comment": "x"}, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409
    done = client.post(f"{url}/resolve", json={"comment": "disk swapped"}, headers={"X-CSRF-Token": csrf})
    assert (done.json["status"], done.json["resolved_by"]) == ("resolved", "budi")


def test_admin_creates_users_with_roles_and_scopes(client: FlaskClient, app: Flask) -> None:
    csrf = login(client, "ani")
    h = {"X-CSRF-Token": csrf}
    viewer_without_sites = {"username": "dewi", "password": PASSWORD, "role": "viewer"}
    assert client.post("/api/v1/users", json=viewer_without_sites, headers=h).json["field"] == "sites"
    made = client.post("/api/v1/users", json={**viewer_without_sites, "sites": ["site-a"]}, headers=h)
    assert made.status_code == 201
    dewi = app.test_client()
    login(dewi, "dewi")
    assert [s["name"] for s in dewi.get("/api/v1/sites").json["sites"]] == ["site-a"]
    operator = app.test_client()
    csrf = login(operator, "budi")
    attempt = {"username": "eko", "password": PASSWORD, "role": "admin"}
    assert operator.post("/api/v1/users", json=attempt, headers={"X-CSRF-Token": csrf}).status_code == 403


def test_the_tick_prunes_snapshots_then_events_by_age(
    client: FlaskClient, store: Store, config: CentralConfig
) -> None:
    now = time.time()
    day = 86400
    for age in (1, 40, 100):
        post(client, "events", event(now - age * day, name=f"{age}-days"))
    tick.run(store, config, now)
    login(client, "ani")
    kept = {e["id"]: e["has_snapshot"] for e in client.get("/api/v1/events").json["events"]}
    assert kept == {"gate/1-days": True, "gate/40-days": False}  # 30 days of snapshots, 90 of events
    assert client.get("/api/v1/sites/site-a/events/gate/40-days/snapshot.jpg").status_code == 404
    assert store.db.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
