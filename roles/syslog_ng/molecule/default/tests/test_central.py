"""Head office's central API as deployed on the hub: nginx (mTLS, fleet CA + CRL) -> gunicorn on a
socket only nginx may open -> the app; the alert timer; the units sandboxed. The site's node
reporter reports to it for real (its fleet certificate, over HTTPS)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import time
import uuid
from pathlib import Path

import pytest
import testinfra
from central_client import (
    CLI,
    CURL,
    PKI,
    SITE,
    URL,
    api,
    api_token,
    event_path,
    snapshot,
    write_event,
)
from cllmh_verify import exposure, wait_for
from pki import FleetCA

testinfra_hosts = ["docker://mol-log-hub"]

CLIENTS = "/root/pki"  # certificates the tests present, on the hub
CA_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "fleet-ca"
CA_PASSPHRASE = b"molecule-only-passphrase"  # molecule.yml: fleet_ca_key_passphrase
SITE_HOST = testinfra.get_host("docker://mol-log-site")


@pytest.fixture(scope="module")
def token(host) -> str:
    return api_token(host)


@pytest.fixture(scope="module")
def clients(host, tmp_path_factory):
    """On the hub: the site's own certificate (copied from the site), an expired one from the fleet
    CA and a forged one (another CA with the same CN)."""
    host.check_output(f"mkdir -p {CLIENTS} && chmod 700 {CLIENTS}")
    tmp = tmp_path_factory.mktemp("clients")
    expired = FleetCA.load(tmp, CA_DIR / "ca.crt", CA_DIR / "ca.key", CA_PASSPHRASE).expired_site(SITE)
    forged = FleetCA(tmp / "rogue", name="Rogue CA").site(SITE)
    files = {
        "good.crt": SITE_HOST.check_output(f"cat {PKI}/host.crt").encode() + b"\n",
        "good.key": SITE_HOST.check_output(f"cat {PKI}/host.key").encode() + b"\n",
        "expired.crt": expired.cert.read_bytes(),
        "expired.key": expired.key.read_bytes(),
        "forged.crt": forged.cert.read_bytes(),
        "forged.key": forged.key.read_bytes(),
    }
    for name, content in files.items():
        encoded = base64.b64encode(content).decode()
        host.check_output(f"echo {encoded} | base64 -d > {CLIENTS}/{name} && chmod 600 {CLIENTS}/{name}")
    return CLIENTS


def post(host, cert: str | None, *headers: str) -> tuple[str, str]:
    """A heartbeat through nginx with the client certificate `cert` (None: none); (HTTP code, body)."""
    now = time.time()
    body = {"schema": 1, "sent_at": now, "state": {"version": "0.1.0", "cameras": [
        {"name": "gate", "stream": "up", "since": now - 60}]}}  # fmt: skip
    argv = [*shlex.split(CURL), "-o", "/tmp/answer", "-w", "%{http_code}"]
    if cert:
        argv += ["--cert", f"{CLIENTS}/{cert}.crt", "--key", f"{CLIENTS}/{cert}.key"]
    for header in ["Content-Type: application/json", f"Idempotency-Key: {uuid.uuid4().hex}", *headers]:
        argv += ["-H", header]
    code = host.check_output(shlex.join([*argv, "--data", json.dumps(body), f"{URL}/site/heartbeat"]))
    return code, host.run("cat /tmp/answer").stdout


def sites(host) -> dict:
    return json.loads(host.check_output(f"{CLI} site list"))


def test_the_inventory_s_sites_are_enrolled(host):
    assert sites(host) == {SITE: "enrolled"}


def test_the_site_s_reporter_makes_it_online_at_head_office(host, token):
    """The reporter on mol-log-site (its fleet certificate, HTTPS to mol-log-hub) sends heartbeats:
    head office shows the site online with the reporter's version."""
    site = wait_for(lambda: (s := api(host, token, f"sites/{SITE}"))["online"] and s, timeout=60)
    assert site and site["state"] == "online", site
    assert site["version"], site
    assert site["last_seen"] > time.time() - 30, site


def test_a_site_with_its_certificate_is_accepted(host, clients):
    code, answer = post(host, "good")
    assert code == "200", answer
    assert json.loads(answer) == {"status": "ok", "duplicate": False}


def test_no_certificate_is_401_and_bad_ones_are_refused(host, clients):
    assert post(host, None)[0] == "401"
    for cert in ("forged", "expired"):  # revoked: test_syslog_identity.py, with the CRL pushed
        assert post(host, cert)[0] == "400", cert


def test_identity_headers_sent_by_a_client_are_ignored(host, clients):
    forged = ["X-Cllmh-Client-Verify: SUCCESS", f"X-Cllmh-Client-Cn: {SITE}"]
    assert post(host, None, *forged)[0] == "401"
    # An unenrolled name in the header: the site is still taken from the certificate (else 403).
    assert post(host, "good", "X-Cllmh-Client-Cn: toko-lain")[0] == "200"
    assert sites(host) == {SITE: "enrolled"}


def test_a_person_event_from_the_site_arrives_with_its_snapshot(host, token):
    """An event written at the site with the recorder's own writer reaches the API with its snapshot."""
    event_id = f"person-{uuid.uuid4().hex[:8]}"
    write_event(SITE_HOST, event_id, "person")
    wanted = f"gerbang/{event_id}"

    def found() -> list[dict]:
        return [
            e for e in api(host, token, f"events?site={SITE}&label=person")["events"] if e["id"] == wanted
        ]

    (event,) = wait_for(found, timeout=60) or [None]
    assert event and event["has_snapshot"] and event["labels"] == {"person": 0.95}, event
    assert snapshot(host, token, wanted) == SITE_HOST.check_output(
        "md5sum < %s", event_path(SITE_HOST, event_id) + "/snapshot.jpg"
    )


def test_only_nginx_may_open_the_api_socket(host):
    sock = host.file("/run/cllmh-central.sock")
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("cllmh", "www-data", 0o660)
    assert host.run("runuser -u nobody -- curl -s --unix-socket /run/cllmh-central.sock http://x/").rc != 0


@pytest.mark.parametrize(
    ("container", "unit"),
    [
        ("mol-log-hub", "cllmh-central.service"),
        ("mol-log-hub", "cllmh-central-tick.service"),
        ("mol-log-site", "cllmh-report.service"),
    ],
)
def test_the_units_run_unprivileged_and_sandboxed(container, unit):
    h = testinfra.get_host(f"docker://{container}")
    show = h.check_output("systemctl show %s -p User -p ProtectSystem -p NoNewPrivileges", unit)
    assert "User=cllmh" in show and "ProtectSystem=strict" in show and "NoNewPrivileges=yes" in show
    assert exposure(h, unit) <= 2.5


def test_the_alert_timer_runs_the_tick(host):
    assert host.service("cllmh-central-tick.timer").is_running
    host.run("systemctl start cllmh-central-tick.service")
    assert wait_for(
        lambda: "opened" in host.run("journalctl -u cllmh-central-tick.service -o cat").stdout,
        30,
    )
