"""The production path, with real processes: a site's HTTPS request -> a REAL nginx (mTLS against
the fleet CA and its CRL) -> gunicorn on a unix socket -> the app. One nginx and one gunicorn for
the whole module. Certificates from tests/pki.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from centralkit import dumps, heartbeat, key
from cllmh.central.store import Store
from conftest import need
from pki import FleetCA, Issued

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # The CN of a verified client certificate ($ssl_client_s_dn is RFC 2253: "CN=site-a").
    map $ssl_client_s_dn $cllmh_client_cn {{
        default "";
        "~(^|,)CN=(?<cn>[^,]+)" $cn;
    }}
    upstream cllmh_central {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_client_certificate {ca};
        ssl_crl {crl};
        ssl_verify_client optional;
        ssl_verify_depth 1;
        client_max_body_size 2m;
        location /api/v1/site/ {{
            # Always overwritten: a client can never set them.
            proxy_set_header X-Cllmh-Client-Verify $ssl_client_verify;
            proxy_set_header X-Cllmh-Client-Cn $cllmh_client_cn;
            proxy_set_header Host $host;
            proxy_pass http://cllmh_central;
        }}
        location /api/ {{
            proxy_set_header X-Cllmh-Client-Verify "";
            proxy_set_header X-Cllmh-Client-Cn "";
            proxy_set_header Host $host;
            proxy_pass http://cllmh_central;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class HeadOffice:
    url: str
    ca: Path
    database: Path
    good: Issued
    other: Issued
    revoked: Issued
    expired: Issued
    forged: Issued


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: object, what: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not come up in {timeout} s")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def head_office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadOffice]:
    nginx = need("nginx")
    d = tmp_path_factory.mktemp("head-office")
    fleet = FleetCA(d / "pki")
    server = fleet.server("localhost", "127.0.0.1")
    revoked = fleet.site("site-gone")
    crl = fleet.revoke(revoked)
    office = HeadOffice(
        url="",
        ca=fleet.cert_path,
        database=d / "central.sqlite3",
        good=fleet.site("site-a"),
        other=fleet.site("site-b"),
        revoked=revoked,
        expired=fleet.expired_site("site-a"),
        forged=FleetCA(d / "rogue", name="Rogue CA").site("site-a"),
    )
    store = Store.open(office.database)
    for site in ("site-a", "site-b", "site-gone"):  # site-gone is enrolled: only the CRL stops it
        store.enroll(site, time.time())
    store.close()
    (d / "secret").write_text("test secret\n")
    config = d / "central.yaml"
    config.write_text(
        f"database: {office.database}\nsecret_key_file: {d / 'secret'}\ntrust_proxy_headers: true\n"
    )
    sock = d / "api.sock"
    gunicorn_log = (d / "gunicorn.log").open("wb")
    env = {**os.environ, "CLLMH_CENTRAL_CONFIG": str(config), "PYTHONPATH": os.pathsep.join(sys.path)}
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"unix:{sock}",
            "--workers",
            "2",
            "cllmh.central.app:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=gunicorn_log,
    )
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",  # workers must reach the test's socket
            d=d,
            socket=sock,
            port=port,
            server_cert=server.cert,
            server_key=server.key,
            ca=fleet.cert_path,
            crl=crl,
        )
    )
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / sub).mkdir()
    subprocess.run([nginx, "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)], check=True,
                   capture_output=True)  # fmt: skip
    web = subprocess.Popen(
        [nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(sock.exists, "gunicorn", gunicorn)
        wait_for(lambda: port_open(port), "nginx", web)
        yield HeadOffice(**{**office.__dict__, "url": f"https://127.0.0.1:{port}"})
    finally:
        for process in (web, gunicorn):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        gunicorn_log.close()


def send(office: HeadOffice, cert: Issued | None, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{office.url}/api/v1/site/heartbeat",
        data=dumps(heartbeat(time.time())),
        headers={"Content-Type": "application/json", "Idempotency-Key": key(), **(headers or {})},
        cert=(str(cert.cert), str(cert.key)) if cert else None,
        verify=str(office.ca),
        timeout=30,
    )


def last_seen(office: HeadOffice, site: str) -> float | None:
    store = Store(office.database)
    try:
        found = store.site(site)
        return found.last_seen if found else None
    finally:
        store.close()


def test_a_valid_site_certificate_is_accepted_with_its_cn_as_the_site(head_office: HeadOffice) -> None:
    answer = send(head_office, head_office.good)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "duplicate": False})
    assert last_seen(head_office, "site-a") is not None


def test_no_certificate_is_401(head_office: HeadOffice) -> None:
    answer = send(head_office, None)
    assert answer.status_code == 401
    assert "certificate" in answer.json()["error"]


@pytest.mark.parametrize("which", ["forged", "expired", "revoked"])
def test_bad_certificates_are_refused_by_nginx(head_office: HeadOffice, which: str) -> None:
    try:
        answer = send(head_office, getattr(head_office, which))
    except requests.exceptions.SSLError:
        return  # refused during the handshake
    assert answer.status_code == 400  # the app is never asked
    assert "The SSL certificate error" in answer.text
    assert last_seen(head_office, "site-gone") is None


def test_identity_headers_from_a_client_are_ignored(head_office: HeadOffice) -> None:
    # site-gone is enrolled at head office; only its revoked certificate keeps it out.
    forged = {"X-Cllmh-Client-Verify": "SUCCESS", "X-Cllmh-Client-Cn": "site-gone"}
    assert send(head_office, None, forged).status_code == 401
    underscored = {"X_Cllmh_Client_Verify": "SUCCESS", "X_Cllmh_Client_Cn": "site-gone"}
    assert send(head_office, None, underscored).status_code == 401
    # A real site claiming to be another one is still itself.
    assert send(head_office, head_office.good, {"X-Cllmh-Client-Cn": "site-gone"}).status_code == 200
    assert last_seen(head_office, "site-gone") is None


def test_another_enrolled_site_is_itself(head_office: HeadOffice) -> None:
    assert send(head_office, head_office.other).status_code == 200
    assert last_seen(head_office, "site-b") is not None


def test_request_size_is_limited_at_nginx(head_office: HeadOffice) -> None:
    answer = requests.post(
        f"{head_office.url}/api/v1/site/events",
        data=b"x" * (3 * 1024 * 1024),
        headers={"Content-Type": "application/json", "Idempotency-Key": key()},
        cert=(str(head_office.good.cert), str(head_office.good.key)),
        verify=str(head_office.ca),
        timeout=30,
    )
    assert answer.status_code == 413
