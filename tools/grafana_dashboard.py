"""Writes deploy/grafana/parley.json, the Grafana dashboard of Parley's metrics (`python
tools/grafana_dashboard.py`). Kept as code so that panels stay uniform; the JSON is committed
and imported as it is (Dashboards > Import), with the Prometheus data source chosen at import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "parley.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# (title, unit, [(expr, legend)]), in rows of three.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Gateway requests by status", "reqps", [
        ("sum by (status) (rate(parley_gateway_requests_total[$__rate_interval]))", "{{status}}"),
    ]),
    ("Gateway p95 latency by route", "s", [
        ("histogram_quantile(0.95, sum by (le, route) "
         "(rate(parley_gateway_request_seconds_bucket[$__rate_interval])))", "{{route}}"),
    ]),
    ("Open event streams", "short", [
        ("sum(parley_gateway_open_event_streams)", "streams"),
    ]),
    ("gRPC calls by service and code", "reqps", [
        ("sum by (grpc_service, grpc_code) "
         "(rate(grpc_server_handled_total[$__rate_interval]))", "{{grpc_service}} {{grpc_code}}"),
    ]),
    ("gRPC p95 handling time (unary)", "s", [
        ("histogram_quantile(0.95, sum by (le, grpc_service, grpc_method) "
         "(rate(grpc_server_handling_seconds_bucket{grpc_type=\"unary\"}[$__rate_interval])))",
         "{{grpc_service}}/{{grpc_method}}"),
    ]),
    ("Runs pending and running by cluster", "short", [
        ("max by (cluster) (parley_api_runs_pending)", "pending {{cluster}}"),
        ("max by (cluster) (parley_api_runs_running)", "running {{cluster}}"),
    ]),
    ("Runs ended by cluster and status", "ops", [
        ("sum by (cluster, status) (rate(parley_runner_runs_total[$__rate_interval]))",
         "{{cluster}} {{status}}"),
    ]),
    ("Failed runs by incident code", "ops", [
        ("sum by (error_type) (rate(parley_runner_runs_total{status=\"failed\"}"
         "[$__rate_interval]))", "{{error_type}}"),
    ]),
    ("Runner slots", "short", [
        ("sum(parley_runner_slots_in_use)", "in use"),
        ("sum(parley_runner_slots)", "capacity"),
        ("sum by (cluster) (parley_runner_runs_in_flight)", "in flight {{cluster}}"),
    ]),
    ("Model p50 / p95 latency by model", "s", [
        ("histogram_quantile(0.5, sum by (le, model) "
         "(rate(parley_runner_model_call_seconds_bucket{outcome=\"ok\"}[$__rate_interval])))",
         "p50 {{model}}"),
        ("histogram_quantile(0.95, sum by (le, model) "
         "(rate(parley_runner_model_call_seconds_bucket{outcome=\"ok\"}[$__rate_interval])))",
         "p95 {{model}}"),
    ]),
    ("Time to first token p95 by cluster", "s", [
        ("histogram_quantile(0.95, sum by (le, cluster) "
         "(rate(parley_runner_time_to_first_token_seconds_bucket[$__rate_interval])))",
         "{{cluster}}"),
    ]),
    ("Model call outcomes by model", "ops", [
        ("sum by (model, outcome) "
         "(rate(parley_runner_model_call_seconds_count[$__rate_interval]))",
         "{{model}} {{outcome}}"),
    ]),
    ("Tokens per second by model and kind", "short", [
        ("sum by (model, kind) (rate(parley_runner_tokens_total[$__rate_interval]))",
         "{{model}} {{kind}}"),
    ]),
    ("Cost per hour by model (catalogue price)", "currencyUSD", [
        ("sum by (model) (rate(parley_runner_cost_usd_total[$__rate_interval])) * 3600",
         "{{model}}"),
    ]),
    ("Resumes and lease losses", "short", [
        ("sum(increase(parley_runner_runs_resumed_total[$__rate_interval]))", "resumed"),
        ("sum(increase(parley_runner_leases_lost_total[$__rate_interval]))", "leases lost"),
    ]),
    ("MCP failures by operation and cause", "ops", [
        ("sum by (operation, cause) (rate(parley_tooling_failures_total[$__rate_interval]))",
         "{{operation}} {{cause}}"),
    ]),
    ("MCP call p95 latency", "s", [
        ("histogram_quantile(0.95, sum by (le) "
         "(rate(parley_tooling_call_seconds_bucket[$__rate_interval])))", "tools/call"),
        ("histogram_quantile(0.95, sum by (le) "
         "(rate(parley_tooling_discovery_seconds_bucket[$__rate_interval])))", "discovery"),
    ]),
    ("Parley versions running", "short", [
        ("count by (version) (parley_build_info)", "{{version}}"),
    ]),
]  # fmt: skip


def panel(index: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": (index % 3) * 8, "y": (index // 3) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "uid": "parley-overview",
        "title": "Parley",
        "tags": ["parley"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
