"""The status page through its app factory (`cllmh.status.app.create_app`): real files for users,
secrets, the event index (written by the recorder's own writer) and syslog files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from cllmh import catalogue, dates, livetoken
from cllmh import events as ev
from cllmh.report.outbox import Outbox
from cllmh.status import auth, loginlog
from cllmh.status.app import create_app, local_time
from cllmh.status.cli import hashed_users
from cllmh.status.config import StatusConfig
from eventwriter import write_event
from headoffice import connectable, wait_for

SITE = "gudang-1"
LIVE_SECRET = b"live-secret-of-gudang-1-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
PASSWORDS = {"satpam": "Lihat-Kamera-1", "teknisi": "Teknisi-Pass-1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("status")
    users = [
        {"name": "satpam", "role": "viewer", "password_hash": auth.hash_password(PASSWORDS["satpam"])},
        {"name": "teknisi", "role": "technician", "password_hash": auth.hash_password(PASSWORDS["teknisi"])},
    ]
    (root / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    (root / "session.secret").write_text("s" * 48)
    (root / "live.secret").write_bytes(LIVE_SECRET)
    recordings = root / "recordings"
    index = ev.Index(recordings)
    write_event(
        recordings,
        index,
        camera="gate",
        start=time.time() - 60,
        event_id="ev-person",
        kind="person",
        size=64 * 1024,
    )
    write_event(
        recordings,
        index,
        camera="pintu",
        start=time.time() - 30,
        event_id="ev-car",
        kind="vehicle",
        size=1024,
    )
    index.close()
    host = root / "log" / "RB4011-Gudang"
    host.mkdir(parents=True)
    with (host / "messages.log").open("w") as log:
        for n in range(3000):
            severity = "crit" if n % 100 == 0 else "info"
            log.write(
                f"2026-11-25T10:{n // 60 % 60:02d}:{n % 60:02d}+07:00 RB4011-Gudang daemon.{severity} "
                f"routeros topic=system: line {n:05d}\n"
            )
    return root


def make_config(site: Path, **extra: object) -> StatusConfig:
    settings: dict = {
        "site": SITE,
        "users_file": site / "users.yaml",
        "session_secret_file": site / "session.secret",
        "live_secret_file": site / "live.secret",
        "metrics_token_sha256": hashlib.sha256(METRICS_TOKEN.encode()).hexdigest(),
        "cameras": ["gate", "pintu"],
        "recordings_dir": site / "recordings",
        "log_dir": site / "log",
        "log_buffer_dir": site / "no-buffer",
        "report_outbox": site / "no-outbox.sqlite3",
        "rtmp_stat_url": "",
        "units": ["nginx.service"],
    }
    return StatusConfig(**(settings | extra))


@pytest.fixture
def app(site: Path) -> Flask:
    return create_app(make_config(site))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def login(client: FlaskClient, name: str, password: str | None = None, **environ: str):
    token = csrf(client)
    return client.post(
        "/login",
        data={"username": name, "password": password or PASSWORDS[name], "csrf_token": token},
        environ_base=environ,
    )


def test_every_route_refuses_anonymous_access(app: Flask, client: FlaskClient) -> None:
    public = {"/login", "/static/<path:filename>"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.rule in public or "GET" not in rule.methods:
            continue
        path = rule.rule.replace("<event_id>", "ev-person")
        answer = client.get(path)
        checked += 1
        if answer.status_code == 302:
            assert answer.headers["Location"].startswith("/login"), path
        else:
            assert answer.status_code == 401, (path, answer.status_code)
    assert checked >= 12
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and rule.rule != "/login":
            assert client.post(rule.rule).status_code in (400, 401), rule.rule


def test_login_sets_a_secure_httponly_samesite_cookie_and_opens_the_pages(client: FlaskClient) -> None:
    answer = login(client, "satpam")
    assert answer.status_code == 302
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("cllmh_status="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    for page in ("/", "/cameras", "/events"):
        assert client.get(page).status_code == 200, page


def test_next_after_login_stays_on_this_site(client: FlaskClient) -> None:
    token = csrf(client)
    form = {"username": "satpam", "password": PASSWORDS["satpam"], "csrf_token": token}
    assert client.post("/login", data={**form, "next": "//evil.example/x"}).headers["Location"] == "/"
    token = csrf(client, "/")
    client.post("/logout", data={"csrf_token": token})
    token = csrf(client)
    answer = client.post("/login", data={**form, "csrf_token": token, "next": "/events?camera=gate"})
    assert answer.headers["Location"] == "/events?camera=gate"


def test_csrf_is_enforced_on_every_form(client: FlaskClient) -> None:
    form = {"username": "satpam", "password": PASSWORDS["satpam"]}
    assert client.post("/login", data=form).status_code == 400
    assert client.post("/login", data={**form, "csrf_token": "forged"}).status_code == 400
    assert login(client, "satpam").status_code == 302
    assert client.post("/language", data={"lang": "en"}).status_code == 400
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in: the forged logout did nothing
    assert client.post("/logout", data={"csrf_token": csrf(client, "/")}).status_code == 302
    assert client.get("/").status_code == 302


def test_failed_logins_are_limited_per_user_even_with_the_right_password(client: FlaskClient) -> None:
    for n in range(5):
        assert login(client, "teknisi", "wrong-password", REMOTE_ADDR=f"10.0.0.{n}").status_code == 401
    refused = login(client, "teknisi", REMOTE_ADDR="10.0.1.1")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    # Another user from the same addresses is not affected.
    assert login(client, "satpam", REMOTE_ADDR="10.0.0.1").status_code == 302


def test_failed_logins_are_limited_per_address(client: FlaskClient) -> None:
    for n in range(10):
        assert login(client, f"nobody{n}", "wrong-password", REMOTE_ADDR="192.0.2.7").status_code == 401
    assert login(client, "satpam", REMOTE_ADDR="192.0.2.7").status_code == 429
    assert login(client, "satpam", REMOTE_ADDR="192.0.2.8").status_code == 302


def test_a_viewer_may_not_read_logs_a_technician_may(app: Flask) -> None:
    viewer, technician = app.test_client(), app.test_client()
    login(viewer, "satpam")
    login(technician, "teknisi")
    for path in ("/logs", "/api/v1/logs"):
        assert viewer.get(path).status_code == 403, path
        assert technician.get(path).status_code == 200, path
    assert "/logs" not in viewer.get("/").get_data(as_text=True)
    assert 'href="/logs"' in technician.get("/").get_data(as_text=True)


def test_api_shapes(client: FlaskClient) -> None:
    login(client, "teknisi")
    overview = client.get("/api/v1/overview").get_json()
    for key in (
        "site",
        "disk",
        "guard",
        "cpu_percent",
        "memory",
        "uptime_s",
        "temperature_c",
        "units",
        "cameras",
        "log_forwarding",
        "head_office",
        "warnings",
    ):
        assert key in overview, key
    assert overview["site"] == SITE
    assert overview["disk"]["total_bytes"] > 0
    assert [c["name"] for c in overview["cameras"]] == ["gate", "pintu"]
    assert {w["id"] for w in overview["warnings"]} >= {"warn.camera_down"}
    down = next(w for w in overview["warnings"] if w["values"] == {"camera": "gate"})
    assert down["text"] == {"id": "Kamera gate mati", "en": "Camera gate is down"}

    events = client.get("/api/v1/events").get_json()["events"]
    assert [e["id"] for e in events] == ["ev-car", "ev-person"]  # newest first
    person = events[1]
    assert person["camera"] == "gate" and "person" in person["labels"] and person["end"] > person["start"]
    only = client.get("/api/v1/events?label=person").get_json()["events"]
    assert [e["id"] for e in only] == ["ev-person"]
    assert [e["id"] for e in client.get("/api/v1/events?camera=pintu").get_json()["events"]] == ["ev-car"]
    assert client.get("/api/v1/events?date=2001-01-01").get_json()["events"] == []
    assert client.get("/api/v1/events?date=yesterday").status_code == 400

    snapshot = client.get(person["snapshot"])
    assert snapshot.status_code == 200 and snapshot.data.startswith(b"\xff\xd8")
    part = client.get(person["clip"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    download = client.get(person["clip"] + "?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    assert client.get("/api/v1/events/no-such-event/clip.mp4").status_code == 404

    logs = client.get("/api/v1/logs?severity=crit").get_json()
    assert logs["hosts"] == ["RB4011-Gudang"]
    assert len(logs["lines"]) == 30 and all(line["severity"] == "crit" for line in logs["lines"])
    assert logs["lines"][0]["text"].endswith("line 02900")


def test_a_bad_api_argument_says_what_was_wrong_not_that_the_form_expired(client: FlaskClient) -> None:
    login(client, "teknisi")
    for path, detail in [
        ("/api/v1/events?limit=many", "limit must be an integer"),
        ("/api/v1/logs?severity=loud", "unknown severity"),
        ("/api/v1/logs?before=yesterday", "before must be a byte offset"),
    ]:
        answer = client.get(path)
        body = answer.get_json()
        assert answer.status_code == 400 and body["id"] == "request.invalid", (path, body)
        assert body["detail"] == detail
    # a form posted without its CSRF token is still an expired form
    expired = client.post("/logout")
    assert expired.status_code == 400 and "Formulir kedaluwarsa" in expired.get_data(as_text=True)


def test_the_overview_shows_the_log_backlog_in_bytes_or_unknown_without_a_unit(
    site: Path, tmp_path: Path
) -> None:
    unknown = create_app(make_config(site)).test_client()  # its buffer directory does not exist
    login(unknown, "teknisi")
    cell = re.search(r'<td id="log-backlog">([^<]*)</td>', unknown.get("/").get_data(as_text=True))
    assert cell and cell.group(1) == "tidak diketahui", cell
    buffer = tmp_path / "buffer"
    buffer.mkdir()
    (buffer / "syslog-ng-00000.rqf").write_bytes(b"x" * 4096)
    known = create_app(make_config(site).model_copy(update={"log_buffer_dir": buffer})).test_client()
    login(known, "teknisi")
    cell = re.search(r'<td id="log-backlog">([^<]*)</td>', known.get("/").get_data(as_text=True))
    assert cell and cell.group(1) == "4096 B", cell


def test_head_office_contact_shows_the_last_delivery_and_what_waits(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "report" / "outbox.sqlite3"
    box = Outbox(path)  # the reporter's own outbox, open while the page reads it (WAL)
    try:
        never = create_app(make_config(site, report_outbox=path)).test_client()
        login(never, "teknisi")
        assert never.get("/api/v1/overview").get_json()["head_office"]["last_contact"] is None
        assert "belum pernah terhubung" in never.get("/").get_data(as_text=True)

        contact = time.time() - 90
        box.enqueue_event("gate/ev1", contact, b"{}", contact - 5)
        box.delivered(box.due(contact)[0], contact)
        box.enqueue_event("gate/ev2", contact, b"{}", contact + 10)
        box.enqueue_heartbeat(b"{}", contact + 20)
        client = create_app(make_config(site, report_outbox=path)).test_client()
        login(client, "teknisi")
        office = client.get("/api/v1/overview").get_json()["head_office"]
        assert office == {
            "reporter": True,
            "last_contact": contact,
            "pending": 2,
            "waiting_since": contact + 10,
        }
        cell = re.search(r'<td id="head-office">(.*?)</td>', client.get("/").get_data(as_text=True), re.S)
        assert cell, "no head-office cell"
        text = " ".join(cell.group(1).split())
        assert f"kontak terakhir {local_time(contact)}" in text, text
        assert f"2 pesan menunggu sejak {local_time(contact + 10)}" in text, text
    finally:
        box.close()


def test_log_pages_walk_back_through_the_file(client: FlaskClient) -> None:
    login(client, "teknisi")
    seen: list[str] = []
    before = None
    while True:
        query = "/api/v1/logs" + (f"?before={before}" if before is not None else "")
        page = client.get(query).get_json()
        seen += [line["text"][-5:] for line in page["lines"]]
        before = page["before"]
        if before is None:
            break
    assert seen == [f"{n:05d}" for n in reversed(range(3000))]
    found = client.get("/api/v1/logs?q=LINE 01234").get_json()["lines"]
    assert [line["text"][-5:] for line in found] == ["01234"]


def test_both_languages_render_and_the_choice_is_remembered(client: FlaskClient) -> None:
    assert 'lang="id"' in client.get("/login").get_data(as_text=True)  # Indonesian by default
    login(client, "satpam")
    page = client.get("/").get_data(as_text=True)
    assert 'lang="id"' in page and "Ringkasan" in page and "Kamera" in page and "Kejadian" in page
    answer = client.post("/language", data={"lang": "en", "next": "/events", "csrf_token": csrf(client, "/")})
    assert answer.status_code == 302 and answer.headers["Location"] == "/events"
    page = client.get("/").get_data(as_text=True)
    assert 'lang="en"' in page and "Overview" in page and "Ringkasan" not in page
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    assert 'lang="en"' in client.get("/login").get_data(as_text=True)  # remembered without a session


def test_every_message_has_both_languages_and_placeholders_match() -> None:
    for message_id, texts in catalogue.catalogue().items():
        fields = [set(re.findall(r"{(\w+)}", texts[lang])) for lang in catalogue.LANGUAGES]
        assert fields[0] == fields[1], message_id


def test_hls_auth_request_contract(app: Flask, client: FlaskClient) -> None:
    assert client.get("/auth/hls", headers={"X-Original-URI": "/hls/gate/index.m3u8"}).status_code == 401
    token = livetoken.mint(LIVE_SECRET, SITE, "gate", time.time())
    ok = client.get("/auth/hls", headers={"X-Original-URI": f"/hls/gate/12.ts?token={token}"})
    assert ok.status_code == 204
    assert (
        client.get(f"/auth/hls?token={token}", headers={"X-Original-URI": "/hls/gate/12.ts"}).status_code
        == 204
    )
    other_camera = client.get("/auth/hls", headers={"X-Original-URI": f"/hls/pintu/12.ts?token={token}"})
    assert other_camera.status_code == 403
    other_site = livetoken.mint(LIVE_SECRET, "another-site", "gate", time.time())
    assert (
        client.get("/auth/hls", headers={"X-Original-URI": f"/hls/gate/1.ts?token={other_site}"}).status_code
        == 403
    )
    expired = livetoken.mint(LIVE_SECRET, SITE, "gate", time.time() - 700)
    assert (
        client.get("/auth/hls", headers={"X-Original-URI": f"/hls/gate/1.ts?token={expired}"}).status_code
        == 403
    )
    assert client.get("/auth/hls", headers={"X-Original-URI": "/hls/gate/1.ts?token=junk"}).status_code == 403
    login(client, "satpam")
    assert client.get("/auth/hls", headers={"X-Original-URI": "/hls/pintu/index.m3u8"}).status_code == 204
    assert client.get("/auth/hls").data == b""


def test_a_clip_opens_with_a_token_of_its_camera_only_and_answers_range(client: FlaskClient) -> None:
    clip = "/api/v1/events/ev-person/clip.mp4"  # camera gate
    assert client.get(clip).status_code == 401
    now = time.time()
    other_camera = livetoken.mint(LIVE_SECRET, SITE, "pintu", now)
    assert client.get(f"{clip}?token={other_camera}").status_code == 403
    other_site = livetoken.mint(LIVE_SECRET, "another-site", "gate", now)
    assert client.get(f"{clip}?token={other_site}").status_code == 403
    expired = livetoken.mint(LIVE_SECRET, SITE, "gate", now - 700)
    assert client.get(f"{clip}?token={expired}").status_code == 403
    assert client.get(f"{clip}?token=junk").status_code == 403
    token = livetoken.mint(LIVE_SECRET, SITE, "gate", now)
    whole = client.get(f"{clip}?token={token}")
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    assert len(whole.data) == 64 * 1024 and whole.headers["Accept-Ranges"] == "bytes"
    part = client.get(f"{clip}?token={token}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == whole.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{64 * 1024}"
    # The camera's token opens that camera's clips only: pintu's clip stays shut, and nothing else.
    assert client.get(f"/api/v1/events/ev-car/clip.mp4?token={token}").status_code == 403
    assert client.get(f"/api/v1/events/ev-person/snapshot.jpg?token={token}").status_code == 401
    assert client.get(f"/api/v1/events?token={token}").status_code == 401
    assert client.get(f"/api/v1/events/no-such-event/clip.mp4?token={token}").status_code == 403


def test_metrics_need_their_own_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    login(client, "teknisi")
    assert client.get("/metrics").status_code == 401  # a session is not the monitoring token
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    text = answer.get_data(as_text=True)
    assert f'cllmh_events_24h{{site="{SITE}",label="person"}} 1.0' in text
    assert f'cllmh_camera_up{{site="{SITE}",camera="gate"}}' in text
    assert "# TYPE cllmh_disk_free_bytes gauge" in text


def test_users_file_keeps_hashes_that_still_match(site: Path) -> None:
    wanted = [{"name": "satpam", "role": "viewer", "password": PASSWORDS["satpam"]}]
    current = {u["name"]: u for u in yaml.safe_load((site / "users.yaml").read_text())["users"]}
    again = hashed_users(wanted, current)
    assert again[0]["password_hash"] == current["satpam"]["password_hash"]
    changed = hashed_users([{**wanted[0], "password": "Another-Pass-2"}], current)
    assert changed[0]["password_hash"] != current["satpam"]["password_hash"]


def test_config_refuses_a_plain_password_and_unknown_keys(site: Path, tmp_path: Path) -> None:
    from cllmh.status import config  # noqa: PLC0415

    bad = tmp_path / "users.yaml"
    bad.write_text(yaml.safe_dump({"users": [{"name": "a", "role": "viewer", "password_hash": "hunter22"}]}))
    with pytest.raises(ValueError, match="never a password"):
        config.load_users(bad)
    conf = tmp_path / "status.yaml"
    conf.write_text(yaml.safe_dump({"site": SITE, "colour": "red"}))
    with pytest.raises(ValueError, match="colour"):
        config.load(conf)


def _unix_http(
    sock: Path, method: str, path: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict, str]:
    """One HTTP/1.0 request over the unix socket, as nginx sends it upstream."""

    head = [f"{method} {path} HTTP/1.0", "Host: gudang.test", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(("\r\n".join(head) + "\r\n\r\n" + body).encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    status_head, _, payload = raw.decode(errors="replace").partition("\r\n\r\n")
    lines = status_head.split("\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        key, _, value = line.partition(": ")
        fields.setdefault(key.lower(), []).append(value)
    return int(lines[0].split()[1]), fields, payload


def test_a_refused_login_logs_one_line_with_the_address_nginx_set_not_a_forged_forwarded_for(
    site: Path, tmp_path: Path
) -> None:
    """The real server (`cllmh status serve`: gunicorn on a unix socket) behind what nginx sends:
    X-Real-IP set to its peer's address; the client's own X-Forwarded-For passes through nginx
    untouched and must not be what is logged. Wrong passwords, then the limiter's refusals, each
    give one line on stderr (the journal) that the fail2ban filter reads."""

    config = make_config(site, trust_proxy_headers=True, login_limit={"per_address": 3, "per_user": 50})
    (tmp_path / "status.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    sock, log = tmp_path / "status.sock", tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "cllmh.cli", "status", "--config", str(tmp_path / "status.yaml"),
             "serve", "--bind", f"unix:{sock}", "--threads", "2"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
    try:
        wait_for("the status page's socket", lambda: server.poll() is None and connectable(sock), 60)
        nginx = {"X-Real-IP": "203.0.113.7", "X-Forwarded-For": "198.51.100.99", "X-Forwarded-Proto": "https"}
        codes = []
        for n in range(5):
            _, fields, page = _unix_http(sock, "GET", "/login", nginx)
            cookie = fields["set-cookie"][0].split(";", 1)[0]
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token, page
            form = urlencode(
                {"username": f'evil" address=192.0.2.1 {n}\n', "password": "salah", "csrf_token": token[1]}
            )
            code, _, _ = _unix_http(sock, "POST", "/login", {**nginx, "Cookie": cookie}, form)
            codes.append(code)
        assert codes == [401, 401, 401, 429, 429]
        wait_for("five lines", lambda: log.read_text().count(loginlog.PREFIX) >= 5, 30)
    finally:
        server.terminate()
        server.wait(30)
    lines = [line for line in log.read_text().splitlines() if line.startswith(loginlog.PREFIX)]
    print("\n".join(lines))
    reasons = [
        re.fullmatch(
            r'login failed address=203\.0\.113\.7 reason=(\S+) user="evil\\" address=192\.0\.2\.1 \d\\n"',
            line,
        )
        for line in lines
    ]
    assert all(reasons), lines
    assert [m[1] for m in reasons if m] == ["wrong-password"] * 3 + ["rate-limited"] * 2
    assert "198.51.100.99" not in log.read_text()


def test_nginx_sets_x_real_ip_for_every_status_page_location_and_never_appends() -> None:
    """The address above is trusted because nginx sets X-Real-IP to its peer (replacing a client's
    header) in every location that reaches the status page; X-Forwarded-For is never built from
    the client's ($proxy_add_x_forwarded_for would append to what the client sent)."""
    template = (Path(__file__).parents[2] / "roles/nginx_rtmp/templates/etc/nginx/nginx.conf.j2").read_text()
    assert "proxy_add_x_forwarded_for" not in template
    blocks = template.split("location ")[1:]  # each location up to the next one
    upstream = [b for b in blocks if "proxy_pass http://cllmh_status" in b]
    assert len(upstream) >= 3, blocks
    for block in upstream:
        assert "proxy_set_header X-Real-IP $remote_addr;" in block, block


def test_a_technician_marks_an_event_keep_on_the_page_and_through_the_api_a_viewer_may_not(
    app: Flask, site: Path
) -> None:
    """The mark is the guard's (events.kept_ids reads what the page wrote); CSRF on the form and the
    API; a viewer gets 403 and sees no button."""
    root = site / "recordings"
    viewer, technician = app.test_client(), app.test_client()
    login(viewer, "satpam")
    login(technician, "teknisi")
    try:
        page = technician.get("/events").get_data(as_text=True)
        assert 'action="/events/ev-person/keep"' in page
        assert 'action="/events/ev-person/keep"' not in viewer.get("/events").get_data(as_text=True)
        # The page's form: without the CSRF token refused, with it the event is kept.
        assert technician.post("/events/ev-person/keep", data={"keep": "1"}).status_code == 400
        token = csrf(technician, "/events")
        answer = technician.post(
            "/events/ev-person/keep", data={"keep": "1", "csrf_token": token, "next": "/events?camera=gate"}
        )
        assert answer.status_code == 302 and answer.headers["Location"] == "/events?camera=gate"
        assert ev.kept_ids(root) == {"ev-person"}
        shown = technician.get("/events").get_data(as_text=True)
        assert catalogue.text("ui.kept", "id") in shown and catalogue.text("ui.unkeep", "id") in shown
        listed = {e["id"]: e["keep"] for e in technician.get("/api/v1/events").get_json()["events"]}
        assert listed == {"ev-person": True, "ev-car": False}
        # A viewer may not, on the page nor through the API (with a valid CSRF token of its own).
        vtoken = csrf(viewer, "/events")
        assert (
            viewer.post("/events/ev-person/keep", data={"keep": "0", "csrf_token": vtoken}).status_code == 403
        )
        assert (
            viewer.delete("/api/v1/events/ev-person/keep", headers={"X-CSRF-Token": vtoken}).status_code
            == 403
        )
        assert ev.kept_ids(root) == {"ev-person"}
        # The API: CSRF header required; PUT marks, DELETE unmarks; an unknown event is 404.
        assert technician.put("/api/v1/events/ev-car/keep").status_code == 400
        put = technician.put("/api/v1/events/ev-car/keep", headers={"X-CSRF-Token": token})
        assert put.status_code == 200 and put.get_json() == {"id": "ev-car", "keep": True, "changed": True}
        assert ev.kept_ids(root) == {"ev-person", "ev-car"}
        assert technician.put("/api/v1/events/nope/keep", headers={"X-CSRF-Token": token}).status_code == 404
        for event_id in ("ev-car", "ev-person"):
            gone = technician.delete(f"/api/v1/events/{event_id}/keep", headers={"X-CSRF-Token": token})
            assert gone.get_json()["keep"] is False
        assert ev.kept_ids(root) == frozenset()
    finally:
        for event_id in ev.kept_ids(root):
            ev.set_keep(root, event_id, False)


def test_kept_events_holding_the_floor_s_space_are_a_warning_in_both_languages() -> None:
    from cllmh.status.state import warnings  # noqa: PLC0415

    guard = {"kept_fill": True, "kept_events": 3, "kept_bytes": 12_300_000_000}
    found = warnings({"hours_left": None}, guard, [])
    assert [w["id"] for w in found] == ["warn.kept_fill"]
    assert "3 kejadian yang ditandai simpan (12.3 GB)" in found[0]["text"]["id"]
    assert "3 events marked keep (12.3 GB)" in found[0]["text"]["en"]
    assert warnings({"hours_left": None}, {**guard, "kept_fill": False}, []) == []


def test_the_events_date_is_typed_day_first_in_indonesian_and_a_wrong_one_is_explained(
    site: Path, tmp_path: Path
) -> None:
    """03/04/2026 is 3 April (not the browser's month-first 4 March); the day is local midnight to
    midnight; the page answers on its yyyy-mm-dd URL (the API's form) and shows the day back in
    the language's format; a wrong date is the catalogue's message, never a 500."""
    recordings = tmp_path / "recordings"
    index = ev.Index(recordings)
    starts = {
        "ev-apr2-late": dt.datetime(2026, 4, 2, 23, 50),
        "ev-apr3-early": dt.datetime(2026, 4, 3, 0, 10),
        "ev-apr3-late": dt.datetime(2026, 4, 3, 23, 40),
        "ev-mar4": dt.datetime(2026, 3, 4, 12, 0),
    }
    for event_id, start in starts.items():
        write_event(
            recordings,
            index,
            camera="gate",
            start=start.timestamp(),
            event_id=event_id,
            kind="person",
            size=1024,
        )
    index.close()
    client = create_app(make_config(site, recordings_dir=recordings)).test_client()
    login(client, "satpam")  # Indonesian by default

    def shown(page: str) -> list[str]:
        return re.findall(r'<tr class="event" data-id="([^"]+)"', page)

    def date_input(page: str) -> str:
        match = re.search(r'<input name="date"[^>]*>', page)
        assert match, page
        return match.group(0)

    typed = client.get("/events?date=03%2F04%2F2026&camera=gate&label=&_scheme=x")
    assert typed.status_code == 302
    assert typed.headers["Location"] == "/events?camera=gate&label=&_scheme=x&date=2026-04-03"
    page = client.get(typed.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and shown(html) == ["ev-apr3-late", "ev-apr3-early"]
    field = date_input(html)
    assert 'type="text"' in field and 'placeholder="dd/mm/yyyy"' in field and 'value="03/04/2026"' in field

    wrong = client.get("/events?date=31%2F02%2F2026")
    html = wrong.get_data(as_text=True)
    assert wrong.status_code == 400 and shown(html) == []
    assert dates.bad_date_message("id", dt.date.today()) in html
    assert 'value="31/02/2026"' in date_input(html)  # left to correct
    assert client.get("/events?date=%3Cb%3E").status_code == 400

    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf(client, "/")})
    html = client.get("/events?date=2026-04-03").get_data(as_text=True)
    assert shown(html) == ["ev-apr3-late", "ev-apr3-early"]
    assert 'placeholder="yyyy-mm-dd"' in date_input(html) and 'value="2026-04-03"' in date_input(html)
    month_first = client.get("/events?date=03%2F04%2F2026")
    assert month_first.status_code == 400
    assert dates.bad_date_message("en", dt.date.today()) in month_first.get_data(as_text=True)

    api = client.get("/api/v1/events?date=2026-03-04").get_json()["events"]
    assert [e["id"] for e in api] == ["ev-mar4"]
    refused = client.get("/api/v1/events?date=04%2F03%2F2026")
    assert refused.status_code == 400 and refused.get_json()["id"] == "filter.bad_date"
