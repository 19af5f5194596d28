#!/usr/bin/env python3
"""Run every Loki query of the CLLMH Grafana dashboards against a real Loki; report the empty ones.

Grafana's variables are substituted as Grafana would for "All" and the defaults ($site -> the variable's
allValue, $silent_minutes -> its current value, $__auto/$__interval/$__range -> durations derived from the
time range), then each query runs through Loki's /loki/api/v1/query_range.

Standard library only: the same file runs in the tests, in CI and on a head office
(playbooks/verify_head_office.yml copies it there).

    dashboard_queries.py --loki-url http://127.0.0.1:3100 --since 1h [--require-data] DASHBOARD.json...
    dashboard_queries.py --print-queries DASHBOARD.json...  (substituted queries as JSON, for a parser)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOKI_TYPE = "loki"
# Grafana aims at roughly this many points per series; the step follows from the range.
MAX_DATA_POINTS = 300
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel (or of a template variable), as written in the dashboard."""

    dashboard: str
    panel: str
    ref_id: str
    datasource_type: str
    datasource_uid: str
    expr: str


@dataclass(frozen=True)
class QueryResult:
    query: PanelQuery
    substituted: str
    series: int
    entries: int
    error: str | None

    @property
    def has_data(self) -> bool:
        return self.error is None and self.entries > 0


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))  # collapsed rows hold their panels
    return found


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every target of every panel, with the datasource it resolves to (the target's, else the panel's)."""
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            queries.append(
                PanelQuery(
                    dashboard=dashboard["uid"],
                    panel=panel.get("title", ""),
                    ref_id=target.get("refId", ""),
                    datasource_type=source.get("type", ""),
                    datasource_uid=source.get("uid", ""),
                    expr=target.get("expr") or target.get("query") or "",
                )
            )
    return queries


def variable_datasource_uids(dashboard: dict[str, Any]) -> list[str]:
    return [
        (variable.get("datasource") or {}).get("uid", "")
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    ]


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """The value each template variable takes when nothing is chosen: "All", else its current value."""
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("includeAll"):
            values[variable["name"]] = variable.get("allValue") or ".*"
            continue
        current = (variable.get("current") or {}).get("value", variable.get("query", ""))
        values[variable["name"]] = current[0] if isinstance(current, list) else str(current)
    return values


def duration(seconds: float) -> str:
    return f"{max(int(seconds), 1)}s"


def builtin_values(range_s: float) -> dict[str, str]:
    """Grafana's interval variables for a time range of range_s seconds."""
    step = max(range_s / MAX_DATA_POINTS, 1.0)
    return {
        "__auto": duration(step),
        "__interval": duration(step),
        "__interval_ms": str(int(step * 1000)),
        "__rate_interval": duration(max(4 * step, 60)),
        "__range": duration(range_s),
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace $name, ${name}, ${name:fmt} and [[name]]; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def step_seconds(range_s: float) -> int:
    return max(int(range_s / MAX_DATA_POINTS), 1)


def loki_queries(dashboards: list[dict[str, Any]], range_s: float) -> list[tuple[PanelQuery, str]]:
    """(query, substituted LogQL) for every Loki panel query of the dashboards."""
    out = []
    for dashboard in dashboards:
        values = variable_values(dashboard) | builtin_values(range_s)
        for query in panel_queries(dashboard):
            if query.datasource_type == LOKI_TYPE:
                out.append((query, substitute(query.expr, values)))
    return out


def query_range(
    loki_url: str, expr: str, start: float, end: float, *, timeout: float = 30.0
) -> dict[str, Any]:
    params = urllib.parse.urlencode(
        {
            "query": expr,
            "start": str(int(start * 1e9)),
            "end": str(int(end * 1e9)),
            "step": f"{step_seconds(end - start)}s",
            "limit": "100",
        }
    )
    url = f"{loki_url.rstrip('/')}/loki/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def count(result: dict[str, Any]) -> tuple[int, int]:
    """(series, entries) of a query_range answer: log lines for streams, points for matrices."""
    series = result.get("data", {}).get("result", [])
    entries = sum(len(item.get("values", [])) for item in series)
    return len(series), entries


def run(loki_url: str, dashboards: list[dict[str, Any]], start: float, end: float) -> list[QueryResult]:
    results = []
    for query, expr in loki_queries(dashboards, end - start):
        try:
            series, entries = count(query_range(loki_url, expr, start, end))
            error = None
        except urllib.error.HTTPError as exc:
            series, entries, error = 0, 0, f"HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}"
        except (urllib.error.URLError, OSError) as exc:
            series, entries, error = 0, 0, str(exc)
        results.append(QueryResult(query, expr, series, entries, error))
    return results


def load(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def parse_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 6h or 2d, got {text!r}")
    return int(match.group(1)) * units[match.group(2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dashboards", nargs="+", type=Path)
    parser.add_argument("--loki-url", default="http://127.0.0.1:3100")
    parser.add_argument(
        "--since", type=parse_seconds, default=parse_seconds("1h"), help="time range ending now"
    )
    parser.add_argument("--require-data", action="store_true", help="exit 1 when a query returns no data")
    parser.add_argument("--print-queries", action="store_true", help="print the substituted queries as JSON")
    args = parser.parse_args(argv)
    dashboards = load(args.dashboards)
    if args.print_queries:
        queries = loki_queries(dashboards, args.since)
        json.dump([{**asdict(query), "substituted": expr} for query, expr in queries], sys.stdout, indent=1)
        return 0
    end = time.time()
    results = run(args.loki_url, dashboards, end - args.since, end)
    for result in results:
        status = "error" if result.error else ("ok" if result.has_data else "NO DATA")
        print(
            f"{status:8} {result.query.dashboard} / {result.query.panel} [{result.query.ref_id}]: "
            f"{result.series} series, {result.entries} entries{' ' + result.error if result.error else ''}"
        )
    failed = [r for r in results if r.error or (args.require_data and not r.has_data)]
    print(f"{len(results)} queries, {sum(r.has_data for r in results)} with data, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
