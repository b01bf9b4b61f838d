"""How many runs one runner executes at once (services/runner/capacity.py): bounded by memory, not
by a slot count; a memory budget that is full, or an operator's PARLEY_RUNNER_CONCURRENCY, holds
claims back until a run ends. Through the real suite: gateway, api, runner, the fake Bedrock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.api.db import migrate
from services.runner.capacity import resident_bytes
from tests.fakes import bedrock as fb

from .runner_suite import RunnerSuite, running_runner_suite, unique, wait_until

OLD_SLOT_COUNT = 256  # PARLEY_RUNNER_CONCURRENCY's default before runs were bounded by memory


def _gauge(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _start_gated(rs: RunnerSuite, count: int) -> list[tuple[dict[str, Any], fb.Gate]]:
    """`count` runs on named conversations (no titling call), each held at the fake model, started
    in this order."""
    gates = [fb.Gate(fb.text(f"done {i}")) for i in range(count)]
    prompts = [unique(f"Held {i}.") for i in range(count)]
    for prompt, gate in zip(prompts, gates, strict=True):
        rs.bedrock.on(prompt, gate)
    conversations = await asyncio.gather(
        *(rs.create_conversation(name=f"held {i}") for i in range(count))
    )
    return [
        (await rs.start_run(conversation["id"], prompt), gate)
        for conversation, prompt, gate in zip(conversations, prompts, gates, strict=True)
    ]


async def test_more_runs_than_the_old_slot_count_are_in_flight_at_once(tmp_path: Path) -> None:
    """As shipped, more runs than the old 256 slots wait on the model at the same time (on SQLite
    only: the bound is the runner's, whatever the database)."""
    count = OLD_SLOT_COUNT + 4
    url = f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}"
    await migrate.upgrade(url)
    async with running_runner_suite(url) as rs:
        held = await _start_gated(rs, count)
        async with asyncio.timeout(60):
            await asyncio.gather(*(gate.arrived.wait() for _, gate in held))
        assert _gauge("parley_runner_slots_in_use") == count
        for _, gate in held:
            gate.release()
        for i, (run, _) in enumerate(held):  # one poll at a time: the runs end meanwhile
            assert (await rs.wait_run(run["id"]))["final_text"] == f"done {i}"


@pytest.mark.parametrize("bound", ["memory", "count"])
async def test_a_full_runner_claims_again_when_a_run_ends(
    make_database_url: Callable[[], Awaitable[str]], bound: str
) -> None:
    """A memory budget the runner's resident memory is already over has room for one run at a
    time; PARLEY_RUNNER_CONCURRENCY=3 for three. The runs after those stay pending while the
    first are in flight, and each run that ends lets the next one in."""
    if bound == "memory" and resident_bytes() is None:
        pytest.skip("resident memory cannot be read on this platform")
    settings = {"runner_memory_mb": 1} if bound == "memory" else {"runner_concurrency": 3}
    limit = 1 if bound == "memory" else 3
    async with running_runner_suite(await make_database_url(), **settings) as rs:
        held = await _start_gated(rs, limit + 2)
        async with asyncio.timeout(20):
            await asyncio.gather(*(gate.arrived.wait() for _, gate in held[:limit]))
        cluster = (await rs.get_run(held[0][0]["id"]))["effective_config"]["execution_cluster"]
        await wait_until(lambda: _gauge("parley_api_runs_pending", {"cluster": cluster}) == 2)
        assert _gauge("parley_runner_slots") == limit
        assert [gate.arrived.is_set() for _, gate in held[limit:]] == [False, False]
        assert [(await rs.get_run(run["id"]))["status"] for run, _ in held[limit:]] == [
            "pending",
            "pending",
        ]
        held[0][1].release()  # one run ends: the next one starts, the last still waits
        assert (await rs.wait_run(held[0][0]["id"]))["final_text"] == "done 0"
        async with asyncio.timeout(20):
            await held[limit][1].arrived.wait()
        assert not held[limit + 1][1].arrived.is_set()
        for _, gate in held[1:]:
            gate.release()
        for i, (run, _) in enumerate(held):
            assert (await rs.wait_run(run["id"]))["final_text"] == f"done {i}"
