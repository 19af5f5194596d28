"""The node_reporter role and the reporter's model agree: the documented defaults are the role's
defaults, the rendered configuration validates, and its defaults are the model's."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
import yaml

from cllmh.report.config import ReportConfig, load_config

ROLE = Path(__file__).resolve().parents[2] / "roles" / "node_reporter"
# role variable -> the model's field
FIELDS = {
    "url": "url",
    "ca_file": "ca_file",
    "cert_file": "cert_file",
    "key_file": "key_file",
    "cameras": "cameras",
    "heartbeat_interval": "heartbeat_s",
    "poll_interval": "poll_s",
    "event_max_age_days": "event_max_age_days",
    "backoff_initial": "backoff_initial_s",
    "backoff_max": "backoff_max_s",
    "timeout": "timeout_s",
    "rtmp_stat_url": "rtmp_stat_url",
    "rtmp_application": "rtmp_application",
    "state_dir": "state_dir",
    "recordings_dir": "recordings_dir",
    "log_buffer_dir": "log_buffer_dir",
    "language": "language",
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def defaults() -> dict:
    return _yaml(ROLE / "defaults" / "main.yml")


def test_argument_specs_document_every_default(defaults: dict) -> None:
    options = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    assert {k: o["default"] for k, o in options.items()} == defaults


def render(variables: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.filters["to_json"] = json.dumps
    template = env.from_string((ROLE / "templates" / "etc" / "cllmh" / "report.yaml.j2").read_text())
    return template.render(ansible_managed="Ansible managed", **variables)


def test_the_rendered_configuration_validates_with_the_models_defaults(
    defaults: dict, tmp_path: Path
) -> None:
    rendered = tmp_path / "report.yaml"
    rendered.write_text(
        render({**defaults, "node_reporter_url": "https://pusat.example", "node_reporter_cameras": ["gate"]})
    )
    config = load_config(rendered)
    assert config.url == "https://pusat.example" and config.cameras == ["gate"]
    model_defaults = {name: field.default for name, field in ReportConfig.model_fields.items()}
    for role_key, field in FIELDS.items():
        if role_key in ("url", "cameras"):
            continue
        role_value = defaults[f"node_reporter_{role_key}"]
        assert getattr(config, field) == model_defaults[field], field
        expected = model_defaults[field]
        assert type(expected)(role_value) == expected, f"{role_key} != the model's {field}"
    assert set(FIELDS.values()) == set(ReportConfig.model_fields)
