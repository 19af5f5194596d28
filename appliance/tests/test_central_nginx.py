"""The production path, with real processes: a site's HTTPS request -> a REAL nginx (mTLS against
the fleet CA and its CRL; its server block rendered from the central_api role's template) ->
gunicorn on a unix socket -> the app. One head office (tests/headoffice.py) for the whole module.
Certificates from tests/pki.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from centralkit import dumps, heartbeat, key
from headoffice import HeadOffice, head_office, wait_for
from pki import FleetCA, Issued


@dataclass(frozen=True)
class Setup:
    central: HeadOffice
    good: Issued
    other: Issued
    revoked: Issued
    expired: Issued
    forged: Issued


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    d = tmp_path_factory.mktemp("head-office")
    fleet = FleetCA(d / "pki")
    revoked = fleet.site("site-gone")
    crl = fleet.revoke(revoked)
    with head_office(d / "central", fleet, crl=crl) as central:
        for site in ("site-a", "site-b", "site-gone"):  # site-gone is enrolled: only the CRL stops it
            central.enroll(site)
        yield Setup(
            central,
            good=fleet.site("site-a"),
            other=fleet.site("site-b"),
            revoked=revoked,
            expired=fleet.expired_site("site-a"),
            forged=FleetCA(d / "rogue", name="Rogue CA").site("site-a"),
        )


def send(office: Setup, cert: Issued | None, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{office.central.url}/api/v1/site/heartbeat",
        data=dumps(heartbeat(time.time())),
        headers={"Content-Type": "application/json", "Idempotency-Key": key(), **(headers or {})},
        cert=(str(cert.cert), str(cert.key)) if cert else None,
        verify=str(office.central.fleet.cert_path),
        timeout=30,
    )


def last_seen(office: Setup, site: str) -> float | None:
    found = office.central.site(site)
    return found.last_seen if found else None


def test_a_valid_site_certificate_is_accepted_with_its_cn_as_the_site(office: Setup) -> None:
    answer = send(office, office.good)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "duplicate": False})
    assert last_seen(office, "site-a") is not None


def test_no_certificate_is_401(office: Setup) -> None:
    answer = send(office, None)
    assert answer.status_code == 401
    assert "certificate" in answer.json()["error"]


@pytest.mark.parametrize("which", ["forged", "expired", "revoked"])
def test_bad_certificates_are_refused_by_nginx(office: Setup, which: str) -> None:
    try:
        answer = send(office, getattr(office, which))
    except requests.exceptions.SSLError:
        return  # refused during the handshake
    assert answer.status_code == 400  # the app is never asked
    assert "The SSL certificate error" in answer.text
    assert last_seen(office, "site-gone") is None


def test_identity_headers_from_a_client_are_ignored(office: Setup) -> None:
    # site-gone is enrolled at head office; only its revoked certificate keeps it out.
    forged = {"X-Cllmh-Client-Verify": "SUCCESS", "X-Cllmh-Client-Cn": "site-gone"}
    assert send(office, None, forged).status_code == 401
    underscored = {"X_Cllmh_Client_Verify": "SUCCESS", "X_Cllmh_Client_Cn": "site-gone"}
    assert send(office, None, underscored).status_code == 401
    # A real site claiming to be another one is still itself.
    assert send(office, office.good, {"X-Cllmh-Client-Cn": "site-gone"}).status_code == 200
    assert last_seen(office, "site-gone") is None


def test_another_enrolled_site_is_itself(office: Setup) -> None:
    assert send(office, office.other).status_code == 200
    assert last_seen(office, "site-b") is not None


def test_request_size_is_limited_at_nginx(office: Setup) -> None:
    answer = requests.post(
        f"{office.central.url}/api/v1/site/events",
        data=b"x" * (3 * 1024 * 1024),
        headers={"Content-Type": "application/json", "Idempotency-Key": key()},
        cert=(str(office.good.cert), str(office.good.key)),
        verify=str(office.central.fleet.cert_path),
        timeout=30,
    )
    assert answer.status_code == 413


def test_with_the_api_down_nginx_answers_502_and_the_api_comes_back(office: Setup) -> None:
    down_key, up_key = key(), key()
    office.central.stop_api()
    try:
        down = send(office, office.good, {"Idempotency-Key": down_key})
    finally:
        office.central.start_api()
    assert down.status_code == 502 and "json" not in down.headers["Content-Type"]  # nginx's own page
    assert send(office, office.good, {"Idempotency-Key": up_key}).status_code == 200

    # nginx writes its log line after the answer (an earlier test's line may come later still):
    # find this test's two requests by their keys.
    def statuses() -> list[tuple[str, int]]:
        return [(r.key, r.status) for r in office.central.nginx_log() if r.key in (down_key, up_key)]

    wait_for("nginx's log of both requests", lambda: len(statuses()) >= 2)
    assert statuses() == [(down_key, 502), (up_key, 200)]
