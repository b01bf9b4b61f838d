"""The runner's per-model metrics: tokens and cost of each model call (by cluster and catalogue
model id, at the catalogue price in force when the run started, the price its stored cost uses),
resumes and lease losses. Counted per call, so a run resumed by another runner never counts the
calls before it twice."""

from __future__ import annotations

from datetime import datetime

from agents.v1 import store_service_pb2

from services.common.catalogue import Catalogue
from services.common.metrics import (
    RUNNER_COST,
    RUNNER_LEASES_LOST,
    RUNNER_RESUMES,
    RUNNER_TOKENS,
)
from services.runner.providers.base import TokenUsage

_KINDS = ("prompt", "completion", "cache_read", "cache_write")


def count(
    catalogue: Catalogue, cluster: str, model: str, run_started: datetime, usage: TokenUsage
) -> None:
    amounts = (usage.prompt, usage.completion, usage.cache_read, usage.cache_write)
    for kind, amount in zip(_KINDS, amounts, strict=True):
        if amount:
            RUNNER_TOKENS.labels(cluster, model, kind).inc(amount)
    entry = catalogue.models.get(model)
    price = entry.price_in_force(run_started) if entry is not None else None
    if price is None:
        return
    cost = price.cost_nano_usd(usage.prompt, usage.completion, usage.cache_read, usage.cache_write)
    if cost:
        RUNNER_COST.labels(cluster, model).inc(cost / 1e9)


def claimed(claim: store_service_pb2.ClaimRunResponse) -> None:
    if claim.attempt > 1:
        RUNNER_RESUMES.labels(claim.run.effective_config.execution_cluster).inc()


def lease_lost(claim: store_service_pb2.ClaimRunResponse) -> None:
    RUNNER_LEASES_LOST.labels(claim.run.effective_config.execution_cluster).inc()
