"""Every Prometheus metric, defined once, and the gRPC interceptor that records RPCs.

Labels take values from small fixed sets (service, method, code, route template): never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

GRPC_HANDLED = Counter(
    "parley_grpc_server_handled_total",
    "gRPC calls handled, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "parley_grpc_server_handling_seconds",
    "gRPC handling latency.",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "parley_gateway_requests_total",
    "HTTP requests answered by the gateway, by route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "parley_gateway_request_seconds",
    "HTTP request latency through the gateway.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RUNS_STARTED = Counter(
    "parley_api_runs_started_total", "Runs accepted by the store, by payload kind.", ["kind"]
)
