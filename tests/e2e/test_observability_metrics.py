"""The metrics an operator builds SLOs and cost views on, after real runs through the gateway:
model latency, tokens and cost by cluster and model; runner slots; resumes and lease losses; the
gRPC server metrics under go-grpc-prometheus's names; parley_build_info; and the whole /metrics
page as `promtool check metrics` (Prometheus's own linter) reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from services.common.version import VERSION
from tests.fakes import bedrock as fb

from .runner_suite import unique

PROMTOOL = Path(sys.executable).with_name("promtool")  # `make lint` installs it (tools/)
MODEL = {"cluster": "shared", "model": "anthropic.claude-opus-4.6"}


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_model_metrics_carry_cluster_and_model_and_pass_promtool(rs: Any) -> None:
    question = unique("Count my tokens.")
    rs.bedrock.on(question, fb.text("counted", tokens=(1_000_000, 100_000)))
    ok = {**MODEL, "provider": "bedrock", "outcome": "ok"}
    calls = _value("parley_runner_model_call_seconds_count", ok)
    prompt = _value("parley_runner_tokens_total", {**MODEL, "kind": "prompt"})
    cost = _value("parley_runner_cost_usd_total", MODEL)
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done

    assert _value("parley_runner_model_call_seconds_count", ok) == calls + 1
    assert _value("parley_runner_tokens_total", {**MODEL, "kind": "prompt"}) == prompt + 1_000_000
    # The catalogue's price: 5 USD per million input tokens, 25 per million output tokens.
    added = _value("parley_runner_cost_usd_total", MODEL) - cost
    assert abs(added - (5.0 + 2.5)) < 1e-6
    assert abs(done["total_cost_usd"] - added) < 1e-9  # one price: the run's, in force at its start
    assert _value("parley_runner_slots", {}) >= 1
    assert _value("parley_runner_slots_in_use", {}) == 0  # nothing in flight now
    assert (
        _value("parley_build_info", {"version": VERSION, "python_version": sys.version.split()[0]})
        == 1
    )
    stock = {"grpc_type": "unary", "grpc_service": "agents.v1.ConversationService"}
    assert _value("grpc_server_started_total", {**stock, "grpc_method": "StartRun"}) >= 1
    assert (
        _value("grpc_server_handled_total", {**stock, "grpc_method": "StartRun", "grpc_code": "OK"})
        >= 1
    )
    streamed = {"grpc_type": "server_stream", "grpc_service": "agents.v1.StoreService"}
    assert _value("grpc_server_msg_sent_total", {**streamed, "grpc_method": "WatchWork"}) >= 0

    page = (await rs.http.get("/metrics")).content
    assert b"parley_runner_cost_usd_total{" in page
    checked = subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=page, capture_output=True, check=False
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
