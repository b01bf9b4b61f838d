"""A run survives the death of the process executing it. A runner (or `parley up`) killed with
SIGKILL and started again releases, at its start, the leases its previous process held: the runs
resume at once, well before those leases would expire; one that stops gracefully releases them as
it goes. A runner that dies and is not restarted has its runs resumed by another runner once their
leases expire (woken by that deadline, not a poll). Either way nothing is lost or doubled: each
iteration's model call is made once, plus once more for the call the kill interrupted; a turn
killed mid-stream is written again as a new attempt (its deltas supersede the lost attempt's), and
an approved tool call in flight when its runner dies is never made twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
from agents.v1 import runner_service_pb2, runner_service_pb2_grpc
from prometheus_client import REGISTRY

from services.common.config import Settings
from services.common.internal_auth import Role
from tests.fakes import bedrock as fb
from tests.fakes import eventstream, mcp_servers
from tests.internal import internal_channel
from tests.spec_examples import DOCS_SEARCH, DOCS_SERVER, example_defaults

from .conftest import GatewayClient
from .processes import Process, base_env, free_port, parley_serve, parley_up
from .runner_suite import RunnerSuite, running_runner_suite, start_runner, unique, wait_until
from .sse import deltas_text, read_events

# Longer than any wait below: a run resumed inside it had its lease released, not expired.
LONG_LEASE_S = 120


def runner_process(settings: Settings, bedrock_url: str, cwd: Path, lease_s: int) -> Process:
    """`parley serve runner` on a port of its own (kept across restarts: its name is this host
    and that port), dialing the in-process suite's store and tool router."""
    env = base_env(
        bedrock_url,
        PARLEY_STORE_ADDR=settings.store_addr,
        PARLEY_TOOLING_ADDR=settings.tooling_addr,
        PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
        PARLEY_METRICS_PORT=str(free_port()),
        PARLEY_RUNNER_LEASE_SECONDS=str(lease_s),
    )
    return parley_serve("runner", cwd, env, "runner")


async def test_a_sigkilled_runner_started_again_resumes_its_run_at_once(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        question = unique("Survive a crash and a restart.")
        gate = fb.Gate(fb.text("lost with the runner"))
        rs.bedrock.on(question, gate, fb.text("survived"))
        conversation = await rs.create_conversation()
        runner = runner_process(rs.settings, rs.bedrock.url, tmp_path, LONG_LEASE_S)
        await runner.start()
        try:
            run = await rs.start_run(conversation["id"], question)
            await asyncio.wait_for(gate.arrived.wait(), 30)
            await runner.kill()
            gate.release()  # its answer goes nowhere: the call died with the process
            await runner.start()  # the same runner again: it releases its earlier leases
            done = await rs.wait_run(run["id"], deadline_s=30)
            messages = (await rs.messages(conversation["id"]))["messages"]
        finally:
            await runner.stop()
    assert done["status"] == "completed" and done["final_text"] == "survived", done
    assert done["iterations_used"] == len(done["submitted_inference_job_ids"]) == 1
    assert len(rs.bedrock.requests_for(question)) == 2  # the interrupted call, then its redo
    assert [m["role"] for m in messages] == ["user", "assistant"]


async def test_a_sigkilled_runner_run_is_resumed_by_another_runner_after_its_lease(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        question = unique("Survive a crash.")
        gate = fb.Gate(fb.text("lost with the runner"))
        rs.bedrock.on(question, gate, fb.text("survived"))
        conversation = await rs.create_conversation()
        run = await rs.start_run(conversation["id"], question)
        assert (await rs.get_run(run["id"]))["status"] == "pending"  # no runner yet

        process = runner_process(rs.settings, rs.bedrock.url, tmp_path, lease_s=2)
        await process.start()
        try:
            await asyncio.wait_for(gate.arrived.wait(), 30)
            assert (await rs.get_run(run["id"]))["status"] == "running"
        finally:
            await process.kill()  # and it never comes back
        gate.release()

        runner = await start_runner(rs.settings)  # another runner: it waits out the lease
        try:
            done = await rs.wait_run(run["id"], deadline_s=30)
        finally:
            await runner.stop()
        assert done["status"] == "completed", done
        assert done["final_text"] == "survived"
        assert done["iterations_used"] == len(done["submitted_inference_job_ids"]) == 1
        assert len(rs.bedrock.requests_for(question)) == 2
        stream = await rs.messages(conversation["id"])
        assert stream["current_version"] == 2
        assert [m["role"] for m in stream["messages"]] == ["user", "assistant"]


async def test_a_runner_stopped_gracefully_hands_its_runs_on_at_once(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """SIGTERM (a rolling update): the runner abandons its run and releases its lease as it
    stops, so another runner resumes it well before the lease would expire."""
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        question = unique("Survive a rolling update.")
        gate = fb.Gate(fb.text("abandoned"))
        rs.bedrock.on(question, gate, fb.text("handed on"))
        conversation = await rs.create_conversation()
        leaving = runner_process(rs.settings, rs.bedrock.url, tmp_path, LONG_LEASE_S)
        await leaving.start()
        try:
            run = await rs.start_run(conversation["id"], question)
            await asyncio.wait_for(gate.arrived.wait(), 30)
        finally:
            await leaving.stop()
        gate.release()
        runner = await start_runner(rs.settings)
        try:
            done = await rs.wait_run(run["id"], deadline_s=30)
        finally:
            await runner.stop()
    assert done["status"] == "completed" and done["final_text"] == "handed on", done
    assert done["iterations_used"] == 1 and len(rs.bedrock.requests_for(question)) == 2


async def test_a_sigkilled_parley_up_started_again_resumes_its_run_at_once(
    make_database_url: Callable[[], Awaitable[str]], docs_url: str, tmp_path: Path
) -> None:
    """`parley up` is killed while its run waits on the model for its second iteration (the
    first one, with its MCP call, is recorded); started again, it resumes the run from there."""
    url = await make_database_url()
    http_port = free_port()
    async with fb.serve_fake_bedrock() as bedrock:
        env = base_env(
            bedrock.url,
            PARLEY_DATABASE_URL=url,
            PARLEY_HTTP_PORT=str(http_port),
            PARLEY_API_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_STORE_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_TOOLING_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_RUNNER_LEASE_SECONDS=str(LONG_LEASE_S),
        )
        question = unique("Search, then survive a kill -9 of parley up.")
        gate = fb.Gate(fb.text("lost with the process"))
        search = fb.tool_uses(("tooluse_s1", DOCS_SEARCH, {"query": "rate limiting"}))
        bedrock.on(question, search, gate, fb.text("survived"))
        up = parley_up(tmp_path, env)
        await up.start()
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{http_port}", timeout=30
            ) as http:
                client = GatewayClient(http)
                defaults = example_defaults(mcp_servers=[{**DOCS_SERVER, "url": docs_url}])
                conversation = await client.create_conversation(defaults=defaults)
                started = await client.post_run(
                    conversation["id"], payload={"kind": "user_message", "text": question}
                )
                assert started.status_code == 202, started.text
                run_id = started.json()["id"]
                await asyncio.wait_for(gate.arrived.wait(), 30)
                await up.kill()
                gate.release()
                await up.start()
                done = await client.wait_run(run_id, deadline_s=30)
                messages = (await client.messages(conversation["id"]))["messages"]
        finally:
            await up.stop()
    assert done["status"] == "completed" and done["final_text"] == "survived", done
    assert done["iterations_used"] == len(done["submitted_inference_job_ids"]) == 2
    calls = bedrock.requests_for(question)
    # Iteration 1 once; iteration 2 twice (interrupted, then redone from the recorded turns).
    assert [len(c.body["messages"]) for c in calls] == [1, 3, 3]
    assert calls[1].body["messages"] == calls[2].body["messages"]
    assert len(messages) == 4 and messages[-1]["role"] == "assistant"


async def test_pending_runs_wait_for_a_runner_and_can_be_cancelled(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        cancelled_q, later_q = unique("Never mind."), unique("Picked up later.")
        rs.bedrock.on(later_q, fb.text("picked up"))
        first = await rs.create_conversation()
        run = await rs.start_run(first["id"], cancelled_q)
        r = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers())
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "failed"
        assert r.json()["error"]["type"] == "AgentLoopCancelled"
        assert r.json()["iterations_used"] == 0 and r.json()["submitted_inference_job_ids"] == []
        assert (await rs.messages(first["id"]))["current_version"] == 1  # the input is kept

        second = await rs.create_conversation()
        waiting = await rs.start_run(second["id"], later_q)
        runner = await start_runner(rs.settings)  # claims what was queued while none was up
        try:
            done = await rs.wait_run(waiting["id"])
        finally:
            await runner.stop()
        assert done["final_text"] == "picked up"
        assert rs.bedrock.requests_for(cancelled_q) == []


async def test_a_nudged_runner_asks_again_and_keeps_working(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    """NotifyRunsQueued cuts the runner's waiting ClaimRun short; it asks again at once and
    still picks up the next run."""
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        runner = await start_runner(rs.settings)
        try:
            async with internal_channel(f"127.0.0.1:{runner.port}", Role.API) as channel:
                stub = runner_service_pb2_grpc.RunnerServiceStub(channel)
                for _ in range(3):
                    await wait_until(lambda: _claims_waiting() == 1)  # its long poll waits
                    ended = _claims_ended()
                    await stub.NotifyRunsQueued(runner_service_pb2.NotifyRunsQueuedRequest(count=1))
                    await wait_until(lambda e=ended: _claims_ended() > e)  # cut short
            question = unique("After the nudges.")
            rs.bedrock.on(question, fb.text("still here"))
            run = await rs.start_run((await rs.create_conversation())["id"], question)
            done = await rs.wait_run(run["id"])
        finally:
            await runner.stop()
        assert done["final_text"] == "still here"


async def test_several_runners_execute_each_run_exactly_once(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        runners = [await start_runner(rs.settings) for _ in range(3)]
        try:
            questions = [unique(f"Question {i}") for i in range(12)]
            for q in questions:
                rs.bedrock.on(q, fb.text(f"answer to {q}"))
            conversations = [await rs.create_conversation() for _ in questions]
            runs = await asyncio.gather(
                *(rs.start_run(c["id"], q) for c, q in zip(conversations, questions, strict=True))
            )
            done = await asyncio.gather(*(rs.wait_run(r["id"]) for r in runs))
        finally:
            for runner in runners:
                await runner.stop()
        for q, run in zip(questions, done, strict=True):
            assert run["status"] == "completed" and run["final_text"] == f"answer to {q}"
            assert len(rs.bedrock.requests_for(q)) == 1  # one model call: executed once


def _claims_waiting() -> float:
    return REGISTRY.get_sample_value("parley_api_claims_waiting") or 0.0


def _claims_ended() -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": "agents.v1.StoreService",
        "grpc_method": "ClaimRun",
    }
    return sum(
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": c}) or 0.0
        for c in ("OK", "CANCELLED")
    )


def _renewals() -> tuple[float, float, float]:
    """RenewLeases calls so far, the leases they extended, and the calls that extended one."""
    sample = REGISTRY.get_sample_value
    return (
        sample("parley_api_leases_renewed_count") or 0.0,
        sample("parley_api_leases_renewed_sum") or 0.0,
        sample("parley_api_leases_renewed_bucket", {"le": "1.0"}) or 0.0,
    )


async def test_a_runner_renews_all_its_leases_with_one_call_per_batch(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    """Four runs waiting on their model past their 3 s lease, renewed in batches of 3: each
    round is two RenewLeases calls (3 leases, then 1), not one call per run, and they keep every
    lease (each run is executed once)."""
    async with running_runner_suite(
        await make_database_url(), runner_lease_seconds=3, runner_renew_batch=3
    ) as rs:
        questions = [unique(f"Slow question {i}.") for i in range(4)]
        gates = [fb.Gate(fb.text(f"answer {i}")) for i in range(4)]
        for question, gate in zip(questions, gates, strict=True):
            rs.bedrock.on(question, gate)
        runs = [await rs.start_run((await rs.create_conversation())["id"], q) for q in questions]
        await asyncio.wait_for(asyncio.gather(*(g.arrived.wait() for g in gates)), 10)
        calls0, leases0, singles0 = _renewals()

        def two_rounds_since() -> bool:  # past the leases the runs were claimed with
            calls, _, _ = _renewals()
            return calls - calls0 >= 4 and (calls - calls0) % 2 == 0

        await wait_until(two_rounds_since, deadline_s=20)
        calls, leases, singles = _renewals()
        for gate in gates:
            gate.release()
        done = [await rs.wait_run(run["id"]) for run in runs]
    rounds = (calls - calls0) / 2
    assert leases - leases0 == 4 * rounds  # every round renewed all four leases
    assert singles - singles0 == rounds  # in a call of 3 and a call of 1
    assert [d["final_text"] for d in done] == [f"answer {i}" for i in range(4)]
    assert all(len(rs.bedrock.requests_for(q)) == 1 for q in questions)  # none ran twice


async def _partial_text(rs: RunnerSuite, run_id: str) -> str | None:
    live = (await rs.get_run(run_id))["live"]["messages"]
    return live[-1]["content_blocks"][0]["text"] if live and live[-1]["partial"] else None


async def test_a_runner_killed_mid_stream_loses_and_doubles_nothing(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """SIGKILL while the model streams: the deltas written so far stay; the runner, started
    again, releases its lease and writes the turn again at once as attempt 2 after a
    turn.restarted event, and a client resuming with after_seq sees every event once and can
    tell the superseded deltas apart."""
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        question = unique("Stream through a crash.")
        lost = "This answer is lost with its runner mid-sentence."
        held = fb.StreamGate(replace(fb.text(lost), pieces=6), after=2)
        rs.bedrock.on(question, held, replace(fb.text("Written again, whole."), pieces=3))
        conversation = await rs.create_conversation()
        run = await rs.start_run(conversation["id"], question)
        runner = runner_process(rs.settings, rs.bedrock.url, tmp_path, LONG_LEASE_S)
        await runner.start()
        try:
            await asyncio.wait_for(held.arrived.wait(), 30)
            shown = "".join(eventstream.pieces(lost, 6)[:2])
            for _ in range(1000):  # the held deltas reach the store within the flush interval
                if await _partial_text(rs, run["id"]) == shown:
                    break
                await asyncio.sleep(0.01)
            assert await _partial_text(rs, run["id"]) == shown
            before = await read_events(rs, run["id"], until=lambda e: e["type"] == "message.delta")
            await runner.kill()
            await asyncio.wait_for(held.disconnected.wait(), 10)
            await runner.start()  # the same runner again: it releases its earlier lease
            done = await rs.wait_run(run["id"], deadline_s=30)
            after = await read_events(
                rs, run["id"], headers={"Last-Event-ID": str(before[-1]["seq"])}
            )
        finally:
            await runner.stop()
        assert done["status"] == "completed" and done["final_text"] == "Written again, whole."
        everything = await read_events(rs, run["id"])
        assert [e["seq"] for e in before + after] == [e["seq"] for e in everything]
        assert len({e["seq"] for e in everything}) == len(everything)
        deltas = [e for e in everything if e["type"] == "message.delta"]
        assert "".join(e["text"] for e in deltas if e["attempt"] == 1) == shown
        restart = next(e for e in everything if e["type"] == "turn.restarted")
        assert (restart["turn_index"], restart["attempt"]) == (0, 2)
        assert all(e["attempt"] == 1 for e in deltas if e["seq"] < restart["seq"])
        assert all(e["attempt"] == 2 for e in deltas if e["seq"] > restart["seq"])
        assert deltas_text(everything) == "Written again, whole."  # the latest attempt's
        stream = await rs.messages(conversation["id"])
        assert [m["role"] for m in stream["messages"]] == ["user", "assistant"]
        assert len(rs.bedrock.requests_for(question)) == 2


async def test_an_approved_call_in_flight_when_its_runner_dies_is_not_made_again(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """The runner dies (and never comes back) while an approved call is being made: the runner
    that takes the run over after its lease answers the announced call, never making it again."""
    records = mcp_servers.RecordsServer()
    async with (
        mcp_servers.serve(records.server()) as url,
        running_runner_suite(
            await make_database_url(), with_runner=False, mcp_allow_private_networks=True
        ) as rs,
    ):
        key, question = uuid.uuid4().hex, unique("Delete under a crash.")
        records.hold(key)
        servers = [{"alias": "db", "url": url, "require_approval": "always"}]
        rs.bedrock.on(
            question,
            fb.tool_uses(("d1", "db-delete_record", {"key": key})),
            fb.text("Told you it may not have run."),
        )
        conversation = await rs.create_conversation(defaults=example_defaults(mcp_servers=servers))
        runner = await start_runner(rs.settings)
        try:
            paused = await rs.wait_run((await rs.start_run(conversation["id"], question))["id"])
        finally:
            await runner.stop()
        assert paused["status"] == "requires_action"
        resumed = await rs.post_run(
            conversation["id"],
            expected_version=2,
            payload={
                "kind": "tool_outputs",
                "outputs": [],
                "approvals": [{"tool_use_id": "d1", "decision": "approve"}],
            },
        )
        process = runner_process(rs.settings, rs.bedrock.url, tmp_path, lease_s=2)
        await process.start()
        try:
            await asyncio.to_thread(records.arrived(key).wait, 30)  # the call is being made
        finally:
            await process.kill()  # and it never comes back
        records.release(key)
        runner = await start_runner(rs.settings)
        try:
            done = await rs.wait_run(resumed.json()["id"], deadline_s=30)
        finally:
            await runner.stop()
        assert done["status"] == "completed", done
        assert records.count("delete_record", key) == 1  # made once, never again
        stream = await rs.messages(conversation["id"], since=2)
        (block,) = stream["messages"][0]["content_blocks"]
        assert block["tool_use_id"] == "d1" and block["is_error"] is True
        assert "may or may not have run" in block["content"][0]["text"]
        assert block["approval"]["decision"] == "approve"
