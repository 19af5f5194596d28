"""The JSON bodies the elasticsearch role PUTs, rendered from its templates, against Elasticsearch 8's
documented request structure (PUT _ilm/policy/<name>, PUT _index_template/<name> with a data stream);
and the heap rule.

Elasticsearch cannot run here: this is the boundary. The models list the documented fields only
(extra="forbid"), so a misspelt or misplaced key fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import jinja2
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "elasticsearch"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ROLE_VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DURATION = r"^\d+(d|h|m|s|ms)$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rollover(Strict):
    max_age: str = Field(pattern=DURATION)
    max_primary_shard_size: str = Field(pattern=r"^\d+(b|kb|mb|gb|tb)$")


class HotActions(Strict):
    rollover: Rollover


class Hot(Strict):
    min_age: str = Field(pattern=DURATION)
    actions: HotActions


class DeleteActions(Strict):
    delete: dict[str, Any]


class Delete(Strict):
    min_age: str = Field(pattern=DURATION)
    actions: DeleteActions


class Phases(Strict):
    hot: Hot
    delete: Delete


class Policy(Strict):
    meta: dict[str, Any] = Field(alias="_meta")
    phases: Phases


class IlmBody(Strict):
    policy: Policy


class Mappings(Strict):
    dynamic: bool | Literal["strict", "runtime"]
    properties: dict[str, dict[str, Any]]


class Template(Strict):
    settings: dict[str, Any]
    mappings: Mappings


class IndexTemplateBody(Strict):
    index_patterns: list[str]
    data_stream: dict[str, Any]
    priority: int = Field(ge=0)
    meta: dict[str, Any] = Field(alias="_meta")
    template: Template


def render(name: str, **context: Any) -> dict[str, Any]:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined
    )
    return json.loads(env.get_template(name).render(**DEFAULTS, **context))


def streams() -> list[dict[str, Any]]:
    days = {"cllmh-events": DEFAULTS["elasticsearch_events_retention_days"], "cllmh-status": 30}
    return [{**s, "retention_days": days[s["name"]]} for s in ROLE_VARS["__elasticsearch_streams"]]


def test_the_role_installs_the_two_data_streams() -> None:
    assert [s["name"] for s in streams()] == ["cllmh-events", "cllmh-status"]


@pytest.mark.parametrize("stream", streams(), ids=lambda s: s["name"])
def test_ilm_policy_body_has_the_documented_structure(stream: dict[str, Any]) -> None:
    body = IlmBody.model_validate(render("api/ilm-policy.json.j2", stream=stream))
    assert body.policy.phases.delete.min_age == f"{stream['retention_days']}d"
    assert body.policy.phases.hot.actions.rollover.max_age == DEFAULTS["elasticsearch_rollover_max_age"]


@pytest.mark.parametrize("stream", streams(), ids=lambda s: s["name"])
def test_index_template_makes_a_data_stream_managed_by_its_policy(stream: dict[str, Any]) -> None:
    body = IndexTemplateBody.model_validate(render(stream["template"]))
    assert body.index_patterns == [stream["name"]]
    assert body.data_stream == {}
    assert body.template.settings["index.lifecycle.name"] == stream["name"]
    # A data stream needs @timestamp mapped as a date.
    assert body.template.mappings.properties["@timestamp"]["type"] in {"date", "date_nanos"}
    for field, mapping in body.template.mappings.properties.items():
        assert "type" in mapping or "properties" in mapping, field


def test_the_events_dashboard_only_uses_mapped_fields() -> None:
    mapped = render("api/index-template-events.json.j2")["template"]["mappings"]["properties"]
    dashboard = json.loads((REPO / "roles/grafana/files/dashboards/events.json").read_text())
    text = json.dumps(dashboard)
    used = set(re.findall(r'"field": "([^"]+)"', text)) | set(re.findall(r"(\w+):\$\w+", text))
    assert used, "no field found in the Events dashboard"
    assert used <= set(mapped), used - set(mapped)


@pytest.mark.parametrize(
    ("memtotal_mb", "heap_mb"), [(200, 512), (2048, 1024), (7982, 3991), (128000, 31744)]
)
def test_heap_is_half_the_memory_within_bounds(memtotal_mb: int, heap_mb: int) -> None:
    expr = ROLE_VARS["__elasticsearch_heap_mb"].strip()
    value = (
        jinja2.Environment().from_string(expr).render(ansible_facts={"memtotal_mb": memtotal_mb}, **DEFAULTS)
    )
    assert int(value) == heap_mb
