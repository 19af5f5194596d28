"""The dashboard as head office's nginx serves it, from the central_api role's own templates:
the SPA's routes fall back to index.html, hashed assets are cached for a year, every page carries
a CSP that lets the browser reach only head office and the sites' live origins, /api/ still goes
to the API; and central.yaml's `live:` section renders into what the API reads.

Real nginx and gunicorn (tests/headoffice.py) with a tiny stand-in build: this checks the serving,
tests/test_dashboard_browser.py checks the real build in a browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from cllmh.central.config import CentralConfig
from cllmh.config import load_yaml
from headoffice import ROOT, HeadOffice, head_office, render_role_template
from pki import FleetCA

ORIGINS = ("https://a1b2.sn.mynetname.net", "https://toko-2.example:8443")
ASSET = "assets/index-Ab12Cd34.js"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadOffice]:
    d = tmp_path_factory.mktemp("dashboard-serving")
    build = d / "build"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text("<!doctype html><title>CLLMH</title><div id=app></div>\n")
    (build / ASSET).write_text("console.log('dashboard')\n")
    (build / "config.json").write_text(json.dumps({"grafanaUrl": "https://grafana.example"}))  # the role's
    with head_office(d / "central", FleetCA(d / "pki"), dashboard=build, live_origins=ORIGINS) as central:
        yield central


def get(office: HeadOffice, path: str) -> requests.Response:
    return requests.get(f"{office.url}{path}", verify=str(office.fleet.cert_path), timeout=30)


@pytest.mark.parametrize("path", ["/", "/sites/toko-1", "/alerts", "/live?camera=toko-1/gate"])
def test_every_route_of_the_dashboard_is_its_index_html_not_cached(office: HeadOffice, path: str) -> None:
    answer = get(office, path)
    assert answer.status_code == 200
    assert "<div id=app>" in answer.text
    assert answer.headers["Cache-Control"] == "no-cache"


def test_hashed_assets_are_cached_for_a_year_and_missing_ones_are_404(office: HeadOffice) -> None:
    answer = get(office, f"/{ASSET}")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert answer.headers["Content-Type"] == "application/javascript"  # browsers refuse modules otherwise
    assert get(office, "/assets/index-gone.js").status_code == 404  # never index.html as a script


def test_the_csp_allows_head_office_and_the_sites_live_origins_only(office: HeadOffice) -> None:
    csp = get(office, "/sites/toko-1").headers["Content-Security-Policy"]
    rules = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert rules["default-src"] == ["'self'"]
    assert rules["script-src"] == ["'self'"]  # no inline scripts, no eval
    assert rules["connect-src"] == ["'self'", *ORIGINS]
    assert rules["media-src"] == ["'self'", "blob:", *ORIGINS]
    assert rules["frame-ancestors"] == ["'none'"]
    assert get(office, f"/{ASSET}").headers["Content-Security-Policy"] == csp


def test_settings_come_from_head_office_and_the_api_is_still_the_api(office: HeadOffice) -> None:
    assert get(office, "/config.json").json() == {"grafanaUrl": "https://grafana.example"}
    answer = get(office, "/api/v1/auth/me")
    assert answer.status_code == 401
    assert "error" in answer.json()


def test_central_yaml_renders_each_sites_live_url_and_secret_file(tmp_path: Path) -> None:
    role = ROOT / "roles/central_api"
    variables = yaml.safe_load((role / "defaults/main.yml").read_text())
    variables.update(yaml.safe_load((role / "vars/main.yml").read_text()))
    variables.update(
        central_api_live_sites=[
            {"name": "jkt-gudang", "url": "https://a1b2.sn.mynetname.net", "secret": "x" * 43},
            {"name": "sby-toko", "url": "https://toko-2.example:8443", "secret": "y" * 43},
        ],
        central_api_live_token_ttl=300,
    )
    rendered = tmp_path / "central.yaml"
    rendered.write_text(render_role_template(role / "templates/etc/cllmh/central.yaml.j2", **variables))
    config = load_yaml(rendered, CentralConfig)
    assert config.live.token_ttl_s == 300
    assert config.live.sites["jkt-gudang"].url == "https://a1b2.sn.mynetname.net"
    assert config.live.sites["sby-toko"].secret_file == Path("/etc/cllmh/live/sby-toko.secret")
    variables["central_api_live_sites"] = []
    rendered.write_text(render_role_template(role / "templates/etc/cllmh/central.yaml.j2", **variables))
    assert load_yaml(rendered, CentralConfig).live.sites == {}
