"""The status_page role and the status page's model agree: the configuration the role renders from its
defaults (with nginx_rtmp's, which some of them read) validates, and carries the model's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import yaml

from cllmh.status.config import StatusConfig, load

ROLES = Path(__file__).resolve().parents[2] / "roles"
TEMPLATE = ROLES / "status_page" / "templates" / "etc" / "cllmh" / "status" / "status.yaml.j2"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.filters["to_json"] = json.dumps
    env.filters["hash"] = lambda text, _kind: text
    return env


def role_variables(**inventory: object) -> dict:
    """nginx_rtmp's and status_page's defaults as Ansible resolves them (templated values rendered)."""
    env = _env()
    found: dict = {"inventory_hostname": "gudang-1", **inventory}
    for role in ("nginx_rtmp", "status_page"):
        for name, value in yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()).items():
            if name in inventory:
                continue
            found[name] = env.from_string(value).render(**found) if isinstance(value, str) else value
    return found | yaml.safe_load((ROLES / "status_page" / "vars" / "main.yml").read_text())


def test_the_rendered_configuration_validates_and_carries_the_model_s_defaults(tmp_path: Path) -> None:
    rendered = tmp_path / "status.yaml"
    variables = role_variables(status_page_cameras=["gate"])
    rendered.write_text(
        _env().from_string(TEMPLATE.read_text()).render(ansible_managed="Ansible managed", **variables)
    )
    config = load(rendered)
    model = StatusConfig(site="gudang-1")
    for field in ("restream_url", "hls_fragment_s", "validate_window_s", "validate_timeout_s", "units"):
        assert getattr(config, field) == getattr(model, field), field
    assert config.restream_url == "rtmp://127.0.0.1:1935/live/{camera}"
    assert config.cameras == ["gate"]


def test_the_restream_and_fragment_follow_nginx_rtmp(tmp_path: Path) -> None:
    variables = role_variables(nginx_rtmp_port=1936, nginx_rtmp_hls_fragment="3s")
    rendered = tmp_path / "status.yaml"
    rendered.write_text(
        _env().from_string(TEMPLATE.read_text()).render(ansible_managed="Ansible managed", **variables)
    )
    config = load(rendered)
    assert (config.restream_url, config.hls_fragment_s) == ("rtmp://127.0.0.1:1936/live/{camera}", 3.0)
