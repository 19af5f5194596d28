"""The Grafana dashboards (roles/grafana/files/dashboards) against Grafana's own packages.

`@grafana/schema` (npm) gives the current dashboard schemaVersion and `@grafana/lezer-logql` parses every
LogQL query in strict mode after Grafana's variables are substituted; the small node project in
.ci/dashboard-check pins both (package-lock.json) and is installed with `npm ci` (npm registry only).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "grafana"
DASHBOARDS = sorted((ROLE / "files" / "dashboards").glob("*.json"))
CHECKER = REPO / ".ci" / "dashboard-check"
REQUIRED = {"cllmh-sites-overview", "cllmh-log-analytics", "cllmh-events"}


def load_queries_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dashboard_queries", ROLE / "files" / "dashboard_queries.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_queries"] = module
    spec.loader.exec_module(module)
    return module


dq = load_queries_module()


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return dq.load(DASHBOARDS)


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of the datasources the role provisions (roles/grafana/vars/main.yml)."""
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())

    def resolve(value: str) -> str:
        match = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value)
        return role_vars[match.group(1)] if match else value

    return {resolve(source["uid"]): source["type"] for source in role_vars["__grafana_datasources"]}


def run_checker(queries: list[dict[str, str]]) -> dict[str, Any]:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are required for this test; `make test` installs them")
    stamp = CHECKER / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (CHECKER / "package-lock.json").stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CHECKER, check=True, timeout=300
        )
    out = subprocess.run(
        [node, "check.mjs"],
        cwd=CHECKER,
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def substituted(dashboards: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"dashboard": q.dashboard, "panel": q.panel, "ref_id": q.ref_id, "substituted": expr}
        for q, expr in dq.loki_queries(dashboards, 6 * 3600)
    ]


def test_the_three_dashboards_are_shipped(dashboards: list[dict[str, Any]]) -> None:
    assert {d["uid"] for d in dashboards} >= REQUIRED


def test_every_dashboard_has_the_schema_version_of_grafana_schema(dashboards: list[dict[str, Any]]) -> None:
    current = run_checker([])["schemaVersion"]
    assert isinstance(current, int)
    assert {d["uid"]: d["schemaVersion"] for d in dashboards} == {d["uid"]: current for d in dashboards}


def test_dashboard_uids_are_unique_and_panel_ids_unique_per_dashboard(
    dashboards: list[dict[str, Any]],
) -> None:
    uids = [d["uid"] for d in dashboards]
    assert len(uids) == len(set(uids)), uids
    for dashboard in dashboards:
        ids = [p["id"] for p in dq._panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), (dashboard["uid"], ids)


def test_every_datasource_uid_is_a_provisioned_one_of_the_same_type(dashboards: list[dict[str, Any]]) -> None:
    provisioned = provisioned_datasources()
    assert set(provisioned.values()) == {"loki", "elasticsearch"}
    for dashboard in dashboards:
        for query in dq.panel_queries(dashboard):
            where = f"{dashboard['uid']} / {query.panel} [{query.ref_id}]"
            assert provisioned.get(query.datasource_uid) == query.datasource_type, where
        for uid in dq.variable_datasource_uids(dashboard):
            assert uid in provisioned, (dashboard["uid"], uid)


def test_every_logql_query_parses_in_strict_mode(dashboards: list[dict[str, Any]]) -> None:
    queries = substituted(dashboards)
    assert len(queries) >= 10
    assert run_checker(queries)["errors"] == []


def test_the_parser_rejects_a_broken_query_and_an_unsubstituted_variable() -> None:
    broken = [
        {"dashboard": "d", "panel": "p", "ref_id": "A", "substituted": '{site="a"'},
        {
            "dashboard": "d",
            "panel": "p",
            "ref_id": "B",
            "substituted": 'count_over_time({site="a"} [$__auto])',
        },
    ]
    assert [e["id"] for e in run_checker(broken)["errors"]] == ["d / p [A]", "d / p [B]"]


def test_substitution_uses_all_values_and_the_time_range() -> None:
    dashboard = {
        "uid": "t",
        "templating": {
            "list": [
                {"name": "site", "type": "query", "includeAll": True, "allValue": ".+"},
                {"name": "silent_minutes", "type": "custom", "current": {"value": "30"}},
            ]
        },
        "panels": [
            {
                "title": "p",
                "datasource": {"type": "loki", "uid": "x"},
                "targets": [
                    {
                        "refId": "A",
                        "expr": 'count_over_time({site=~"$site"} [${silent_minutes}m])'
                        ' + count_over_time({site=~"${site}"} [$__range])',
                    }
                ],
            }
        ],
    }
    [(_, expr)] = dq.loki_queries([dashboard], 3600)
    assert expr == 'count_over_time({site=~".+"} [30m]) + count_over_time({site=~".+"} [3600s])'
    with pytest.raises(KeyError, match="nosuch"):
        dq.substitute("$nosuch", {})
