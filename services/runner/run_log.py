"""The runner's lines about runs: one per transition (claimed, committed, lease lost) and per
failure of a model or tool call, each with the run's ids (logs.FIELDS). Expected conditions
carry no traceback."""

from __future__ import annotations

import logging
from typing import Any

from agents.v1 import run_pb2, store_service_pb2

from services.common import tracing

log = logging.getLogger("parley.runner.runs")


def ids(run: run_pb2.Run, traceparent: str = "") -> dict[str, Any]:
    found = {
        "run_id": run.id,
        "conversation_id": run.conversation_id,
        "company_id": run.company_id,
        "user_id": run.user_id,
    }
    trace_id = tracing.trace_id_of(traceparent)
    if trace_id is not None:
        found["trace_id"] = trace_id
    return found


def _of(claim: store_service_pb2.ClaimRunResponse) -> dict[str, Any]:
    return ids(claim.run, claim.traceparent)


def claimed(claim: store_service_pb2.ClaimRunResponse) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    what = "run started" if claim.attempt <= 1 else "run resumed after a lost runner"
    cluster = claim.run.effective_config.execution_cluster
    log.info(
        what,
        extra={**_of(claim), "status": "running", "attempt": claim.attempt, "cluster": cluster},
    )


def committed(
    run: run_pb2.Run, traceparent: str, status: str, error_type: str, error_message: str
) -> None:
    """`run` is the claimed run (its ids); the outcome is `status`."""
    fields = {**ids(run, traceparent), "status": status}
    if error_type:
        fields["error_type"] = error_type
        log.warning("run %s: %s", status, error_message, extra=fields)
    else:
        log.info("run %s", status, extra=fields)


def lease_lost(claim: store_service_pb2.ClaimRunResponse) -> None:
    log.warning("run lease lost: another runner owns it now", extra=_of(claim))


def model_failed(
    claim: store_service_pb2.ClaimRunResponse, cluster: str, code: str, message: str
) -> None:
    fields = {**_of(claim), "cluster": cluster, "error_type": code, "cause": message}
    log.warning("model call failed", extra=fields)


def tool_failed(claim: store_service_pb2.ClaimRunResponse, tool: str, cause: str) -> None:
    log.warning("tool call failed", extra={**_of(claim), "tool": tool, "cause": cause})
