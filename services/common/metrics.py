"""Every Prometheus metric, defined once (gRPC calls are recorded by grpc_server's interceptor).

Labels take values from small fixed sets (service, method, code, route template, catalogued
cluster and model ids): never run, conversation or user ids.

The gRPC server metrics have the names and labels of go-grpc-prometheus (and py-grpc-prometheus),
so that stock dashboards and alerts read them unchanged.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.version import PYTHON, VERSION

BUILD_INFO = Gauge(
    "parley_build_info", "Always 1: the running Parley's version.", ["version", "python_version"]
)
BUILD_INFO.labels(VERSION, PYTHON).set(1)

_GRPC = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter("grpc_server_started_total", "gRPC calls started on the server.", _GRPC)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls completed on the server, by status code.",
    [*_GRPC, "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "gRPC handling latency, until the call completed.",
    _GRPC,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GRPC_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "gRPC stream messages received on the server.", _GRPC
)
GRPC_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "gRPC stream messages sent by the server.", _GRPC
)
HTTP_REQUESTS = Counter(
    "parley_gateway_requests_total",
    "HTTP requests answered by the gateway, by route and status.",
    ["method", "route", "status"],
)
OPEN_EVENT_STREAMS = Gauge(
    "parley_gateway_open_event_streams", "Server-Sent Event streams the gateway serves now."
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
CLAIMS_WAITING = Gauge(
    "parley_api_claims_waiting", "ClaimRun long polls waiting in this store process for a run."
)
WORK_WATCHERS = Gauge(
    "parley_api_work_watchers", "Runners' WatchWork streams open on this store process."
)
LISTENER_RECONNECTS = Counter(
    "parley_api_listener_reconnects_total",
    "Times this api process's PostgreSQL notification listener lost its connection.",
)
LEASES_RELEASED = Counter(
    "parley_api_leases_released_total",
    "Leases of a restarted runner's earlier incarnations released at its start (ReleaseLeases).",
)
RUNS_RUNNING = Gauge(
    "parley_api_runs_running",
    "Runs a runner holds, by execution cluster (counted by the database, with runs pending).",
    ["cluster"],
)
RUNS_PENDING = Gauge(
    "parley_api_runs_pending",
    "Runs waiting for a runner, by execution cluster (counted by the database: every store "
    "process reports the same numbers).",
    ["cluster"],
)
LEASES_RENEWED = Histogram(
    "parley_api_leases_renewed",
    "Leases one RenewLeases call extended (a runner renews all its runs at once).",
    buckets=(1, 2, 5, 10, 100, 1000),
)

# --- runner -------------------------------------------------------------------------------------
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RUNNER_RUNS = Counter(
    "parley_runner_runs_total",
    "Runs the runner brought to a terminal status, by execution cluster, status and error type "
    "('' when none).",
    ["cluster", "status", "error_type"],
)
RUNNER_ITERATIONS = Histogram(
    "parley_runner_iterations",
    "Inference iterations per run at its terminal status.",
    buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50),
)
RUNNER_TOKENS = Counter(
    "parley_runner_tokens_total",
    "Model tokens used by model calls, by execution cluster, model (catalogue id) and kind "
    "(prompt, completion, cache_read, cache_write).",
    ["cluster", "model", "kind"],
)
RUNNER_COST = Counter(
    "parley_runner_cost_usd_total",
    "What model calls cost at the catalogue price in force when their run started (as the run's "
    "total_cost_usd), by execution cluster and model (models without a price add nothing).",
    ["cluster", "model"],
)
RUNNER_MODEL_SECONDS = Histogram(
    "parley_runner_model_call_seconds",
    "Model call latency, by execution cluster, provider, model (catalogue id) and outcome (ok "
    "or the incident code).",
    ["cluster", "provider", "model", "outcome"],
    buckets=_SECONDS,
)
RUNNER_IN_FLIGHT = Gauge(
    "parley_runner_runs_in_flight", "Runs this runner executes now, by execution cluster.",
    ["cluster"],
)  # fmt: skip
RUNNER_SLOTS = Gauge(
    "parley_runner_slots",
    "Runs this runner may execute at once: its memory budget's worth, at most its concurrency.",
)
RUNNER_MEMORY_BUDGET = Gauge(
    "parley_runner_memory_budget_bytes",
    "The resident memory this runner's process fills with runs in flight (0: not bounded by it).",
)
RUNNER_SLOTS_USED = Gauge("parley_runner_slots_in_use", "Of those, the slots in use now.")
RUNNER_LEASES_LOST = Counter(
    "parley_runner_leases_lost_total",
    "Runs this runner stopped executing because another runner took their lease, by cluster.",
    ["cluster"],
)
RUNNER_RESUMES = Counter(
    "parley_runner_runs_resumed_total",
    "Claims of a run that an earlier runner held (resumed after a lost runner), by cluster.",
    ["cluster"],
)
RUNNER_TIME_TO_FIRST_TOKEN = Histogram(
    "parley_runner_time_to_first_token_seconds",
    "From sending a streamed model call to its first text or reasoning delta, by execution "
    "cluster and provider.",
    ["cluster", "provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
RUNNER_TITLES = Counter(
    "parley_runner_titles_total",
    "Conversation titles, by execution cluster and source: model, or fallback (the message's "
    "first words, when the model failed or answered no title).",
    ["cluster", "source"],
)
RUNNER_PICKUP_SECONDS = Histogram(
    "parley_runner_pickup_delay_seconds",
    "Time from a run's acceptance to its first claim by a runner.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RUNNER_TOOL_SECONDS = Histogram(
    "parley_runner_tool_call_seconds",
    "MCP tool call latency through the tool router, by outcome (ok, error, failed).",
    ["outcome"],
    buckets=_SECONDS,
)

# --- tool router (labels: fixed sets only; server aliases and URLs are user-chosen) -----------
_TOOLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOOLING_DISCOVERY_SECONDS = Histogram(
    "parley_tooling_discovery_seconds",
    "Latency of discovering one MCP server's tools (session + every tools/list page), by outcome.",
    ["outcome"],
    buckets=_TOOLING_BUCKETS,
)
TOOLING_CALL_SECONDS = Histogram(
    "parley_tooling_call_seconds",
    "Latency of one MCP tools/call (session + call), by outcome (ok, tool_error, failed).",
    ["outcome"],
    buckets=_TOOLING_BUCKETS,
)
TOOLING_FAILURES = Counter(
    "parley_tooling_failures_total",
    "MCP discovery and call failures, by operation (discover, call) and cause.",
    ["operation", "cause"],
)
TOOLING_TOOLS_DISCOVERED = Histogram(
    "parley_tooling_tools_discovered",
    "Tools offered to the model per successfully discovered MCP server.",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 250, 1000),
)
TOOLING_RESULTS_TRUNCATED = Counter(
    "parley_tooling_results_truncated_total", "Tool results cut to the size cap."
)
