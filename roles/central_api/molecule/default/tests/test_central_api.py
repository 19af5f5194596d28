"""Head office's API as deployed: nginx (mTLS, fleet CA + CRL) -> gunicorn on a socket only
nginx may open -> the app; the alert timer; the service unprivileged and sandboxed."""

from __future__ import annotations

import json
import shlex
import time
import uuid

from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-central-api"]

URL = "https://localhost/api/v1/site/heartbeat"


def post(host, cert: str | None, *headers: str):
    now = time.time()
    body = {"schema": 1, "sent_at": now, "state": {"version": "0.1.0", "cameras": [
        {"name": "gate", "stream": "up", "since": now - 60}]}}  # fmt: skip
    argv = [
        "curl",
        "-sS",
        "--cacert",
        "/root/pki/ca.crt",
        "-o",
        "/tmp/answer",
        "-w",
        "%{http_code}",
    ]
    if cert:
        argv += ["--cert", f"/root/pki/{cert}.crt", "--key", f"/root/pki/{cert}.key"]
    for header in [
        "Content-Type: application/json",
        f"Idempotency-Key: {uuid.uuid4().hex}",
        *headers,
    ]:
        argv += ["-H", header]
    return host.run(shlex.join([*argv, "--data", json.dumps(body), URL]))


def sites(host) -> dict:
    out = host.check_output("runuser -u cllmh -- /opt/cllmh/venv/bin/cllmh central site list")
    return json.loads(out)


def last_seen(host, site: str):
    code = (
        "import sys; from pathlib import Path; from cllmh.central.store import Store; "
        "print(Store(Path('/var/lib/cllmh-central/central.sqlite3')).site(sys.argv[1]).last_seen)"
    )
    out = host.check_output(shlex.join(["/opt/cllmh/venv/bin/python", "-c", code, site]))
    return None if out == "None" else float(out)


def test_the_listed_sites_are_enrolled(host):
    assert sites(host) == {"site-a": "enrolled", "site-gone": "enrolled"}


def test_a_site_with_its_certificate_is_accepted(host):
    answer = post(host, "good")
    assert answer.stdout == "200", answer.stderr
    assert json.loads(host.file("/tmp/answer").content_string) == {
        "status": "ok",
        "duplicate": False,
    }
    assert last_seen(host, "site-a") is not None


def test_no_certificate_is_401_and_bad_ones_are_refused(host):
    assert post(host, None).stdout == "401"
    for cert in ("forged", "expired", "revoked"):
        assert post(host, cert).stdout == "400", cert


def test_identity_headers_sent_by_a_client_are_ignored(host):
    forged = ["X-Cllmh-Client-Verify: SUCCESS", "X-Cllmh-Client-Cn: site-gone"]
    assert post(host, None, *forged).stdout == "401"
    assert post(host, "good", "X-Cllmh-Client-Cn: site-gone").stdout == "200"
    assert last_seen(host, "site-gone") is None


def test_only_nginx_may_open_the_api_socket(host):
    sock = host.file("/run/cllmh-central.sock")
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("cllmh", "www-data", 0o660)
    assert host.run("runuser -u nobody -- curl -s --unix-socket /run/cllmh-central.sock http://x/").rc != 0


def test_the_api_runs_unprivileged_and_sandboxed(host):
    show = host.check_output(
        "systemctl show cllmh-central.service -p User -p ProtectSystem -p NoNewPrivileges"
    )
    assert "User=cllmh" in show
    assert "ProtectSystem=strict" in show
    assert "NoNewPrivileges=yes" in show
    assert host.service("cllmh-central.service").is_running


def test_the_alert_timer_runs_the_tick(host):
    assert host.service("cllmh-central-tick.timer").is_running
    host.run("systemctl start cllmh-central-tick.service")
    assert wait_for(
        lambda: "opened" in host.run("journalctl -u cllmh-central-tick.service -o cat").stdout,
        30,
    )
