"""Parley at scale: 2 api + 2 gateway + 2 runner + 1 tooling processes (`parley migrate`, then
`parley serve …`) on one PostgreSQL behave as one. Runs started through one gateway are streamed
and cancelled through the other, and a model's deltas reach a stream through the other while it
writes; then, under load, api, gateway and runner processes are killed
with SIGKILL and started again, and every run still ends, once, with every event streamed in
order (streams resumed with Last-Event-ID through whichever gateway answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dataclasses import replace

from tests.fakes import bedrock as fb

from .runner_suite import unique, wait_until
from .scale import Followed, chaos, follow, running

pytestmark = pytest.mark.postgres
# How long processes are killed and started again while the load runs: bounded here (a dozen
# kills); `make bench` runs the long chaos cell (tests/bench/run.py, chaos_s).
CHAOS_S = 12.0
WORKERS = 6  # clients, each running two-turn conversations one after another


async def test_runs_started_through_one_gateway_stream_and_cancel_through_the_other(
    make_postgres_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    """Pinned: gateway i dials only api i, runner i only api i's store. A run started through
    gateway i is handed to runner i there; its events and its cancel come through the other
    gateway, so each of them crosses from one api process to the other."""
    url = await make_postgres_url(migrated=False)  # `parley migrate` does it
    async with running(url, tmp_path, pinned=True) as (_, bedrock, gw):
        finished, cancelled = [], []
        for i in range(4):
            start, other = gw[i % 2], gw[1 - i % 2]
            question = unique(f"Question {i} through gateway {i % 2 + 1}.")
            bedrock.on(question, fb.text(f"answer {i}"))
            conversation = await start.create_conversation()
            r = await start.post_run(
                conversation["id"], payload={"kind": "user_message", "text": question}
            )
            assert r.status_code == 202, r.text
            finished.append((i, question, r.json()["id"], other))
        for i in range(2):
            start, other = gw[i], gw[1 - i]
            question = unique(f"Cancel me through gateway {2 - i}.")
            gate = fb.Gate(fb.text("never seen"))
            bedrock.on(question, gate)
            conversation = await start.create_conversation()
            r = await start.post_run(
                conversation["id"], payload={"kind": "user_message", "text": question}
            )
            assert r.status_code == 202, r.text
            cancelled.append((question, r.json()["id"], other, gate))

        streams = [follow(lambda o=other: o, run_id) for _, _, run_id, other in finished]
        for (i, question, run_id, other), got in zip(
            finished, await asyncio.gather(*streams), strict=True
        ):
            assert got.gap_free and got.types[-1] == "run.completed", (run_id, got)
            assert (await other.get_run(run_id))["final_text"] == f"answer {i}"
            assert len(bedrock.requests_for(question)) == 1
        for question, run_id, other, gate in cancelled:
            await asyncio.wait_for(gate.arrived.wait(), 20)  # running: its model call waits
            stream = asyncio.create_task(follow(lambda o=other: o, run_id))
            r = await other.http.post(f"/agents/runs/{run_id}/cancel", headers=other.headers())
            assert r.status_code == 200, r.text
            # The cancel's bounded wait saw the runner's commit, made through the other api.
            assert (r.json()["status"], r.json()["error"]["type"]) == (
                "failed",
                "AgentLoopCancelled",
            )
            got = await stream
            assert got.gap_free and got.types[-1] == "run.failed", (run_id, got)
            assert len(bedrock.requests_for(question)) == 1


async def test_deltas_reach_a_stream_through_the_other_gateway_while_the_model_writes(
    make_postgres_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    """Pinned: the run's runner writes its deltas through api 1; a stream through gateway 2
    (api 2), open before the model starts, shows them while the model is held mid-answer (so
    they came live, by NOTIFY, not from a later read of the log), then the rest, in order."""
    url = await make_postgres_url(migrated=False)
    async with running(url, tmp_path, pinned=True) as (_, bedrock, gw):
        question = unique("Stream across api processes.")
        answer = "Written in one api process, read in the other."
        held = fb.StreamGate(replace(fb.text(answer), pieces=6), after=3)
        waiting = fb.Gate(held)  # the model answers once the stream is open
        bedrock.on(question, waiting)
        conversation = await gw[0].create_conversation()
        r = await gw[0].post_run(
            conversation["id"], payload={"kind": "user_message", "text": question}
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        await asyncio.wait_for(waiting.arrived.wait(), 20)
        followed = Followed()
        stream = asyncio.create_task(follow(lambda: gw[1], run_id, into=followed))
        await wait_until(lambda: "run.status" in followed.types, deadline_s=20)  # subscribed
        waiting.release()
        await asyncio.wait_for(held.arrived.wait(), 20)
        await wait_until(lambda: "message.delta" in followed.types, deadline_s=20)
        assert "turn" not in followed.types  # the model is still mid-answer
        held.release()
        await asyncio.wait_for(stream, 30)
    assert followed.gap_free and followed.types[-1] == "run.completed", followed
    assert followed.connections == 1  # one stream, nothing read again
    assert followed.faults(claims=1) == ([], [])
    shown = "".join(e["text"] for e in followed.events if e["type"] == "message.delta")
    assert shown == answer


async def test_kill_9_of_api_gateway_and_runner_processes_under_load_loses_and_doubles_nothing(
    make_postgres_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    url = await make_postgres_url(migrated=False)
    report = await chaos(url, tmp_path, CHAOS_S, WORKERS, min_kills=6)
    print(f"\n{report.line()}")
    assert report.lost == [] and report.duplicated == [], report
    assert report.deltas > 0, report  # the model streamed (the default)
    assert len(report.kills) >= 6, report.kills
    assert {name.split("-")[0] for name in report.kills} == {"api", "gateway", "runner"}
