"""Run events as Server-Sent Events through the gateway, reconnecting mid-run; titling; the
inference job records."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agents.v1 import store_service_pb2, store_service_pb2_grpc

from gateway import sse
from services.common.internal_auth import Role
from services.common.metrics import OPEN_EVENT_STREAMS
from tests.fakes import bedrock as fb
from tests.internal import INTERNAL_SECRET, internal_channel
from tests.spec_examples import BOOKING_TOOL, example_defaults

from .runner_suite import RunnerSuite, unique


async def read_events(
    rs: RunnerSuite, run_id: str, *, stop_after: int | None = None, **kw: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """(events, their SSE ids), reading until the stream ends or `stop_after` events."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    headers = {**rs.headers(), **kw.pop("headers", {})}
    async with rs.http.stream(
        "GET", f"/agents/runs/{run_id}/events", headers=headers, **kw
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in frame:
                    events.append(json.loads(frame["data"]))
                    assert frame.get("event") == events[-1]["type"], frame  # `event:` its type
                    ids.append(frame.get("id", ""))
                    if stop_after is not None and len(events) >= stop_after:
                        break
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.lstrip(" ")
    return events, ids


async def test_sse_stream_reconnects_after_seq_without_loss_or_duplicates(
    rs: RunnerSuite,
) -> None:
    question = unique("Ask me something.")
    gate = fb.Gate(fb.tool_uses(("tu_1", "confirm_booking", {"proposed_slot": "now"})))
    rs.bedrock.on(question, gate)
    conversation = await rs.create_conversation(defaults=example_defaults(tools=[BOOKING_TOOL]))
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(gate.arrived.wait(), 10)
    # mid-run: pending and running so far; disconnect after those
    first, first_ids = await asyncio.wait_for(read_events(rs, run["id"], stop_after=2), 10)
    assert [(e["seq"], e["type"], e["status"]) for e in first] == [
        (1, "run.status", "pending"),
        (2, "run.status", "running"),
    ]
    assert first_ids == ["1", "2"]
    gate.release()
    rest, rest_ids = await asyncio.wait_for(
        read_events(rs, run["id"], headers={"Last-Event-ID": first_ids[-1]}), 10
    )
    assert [e["type"] for e in rest] == ["usage", "turn", "tool.call", "run.requires_action"]
    assert [e["seq"] for e in rest] == [3, 4, 5, 6] and rest_ids == ["3", "4", "5", "6"]
    assert rest[0]["usage"] == {
        "prompt_tokens": 150,
        "completion_tokens": 30,
        "total_tokens": 180,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
    }
    assert rest[1]["turn"]["role"] == "assistant"
    assert rest[1]["turn"]["content_blocks"][0]["tool_use_id"] == "tu_1"
    assert {k: rest[2][k] for k in ("tool_use_id", "name", "kind", "arguments")} == {
        "tool_use_id": "tu_1",
        "name": "confirm_booking",
        "kind": "caller",
        "arguments": {"proposed_slot": "now"},
    }
    assert rest[3]["run"]["status"] == "requires_action"
    assert rest[3]["run"]["pending_tool_calls"][0]["tool_use_id"] == "tu_1"
    assert rest[3]["run"]["pending_tool_calls"][0]["kind"] == "caller"
    # after_seq in the query works the same, and a finished stream replays what is asked
    again, _ = await read_events(rs, run["id"], params={"after_seq": 3})
    assert [e["seq"] for e in again] == [4, 5, 6]
    everything, _ = await read_events(rs, run["id"])
    assert [e["seq"] for e in everything] == [1, 2, 3, 4, 5, 6]


async def test_quiet_stream_keeps_alive_and_a_leaving_client_ends_it(
    rs: RunnerSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_S", 0.05)
    question = unique("Think quietly.")
    gate = fb.Gate(fb.text("done"))
    rs.bedrock.on(question, gate)
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(gate.arrived.wait(), 10)
    open_before = OPEN_EVENT_STREAMS._value.get()
    lines: list[str] = []

    async def read_until_keepalive() -> None:
        path = f"/agents/runs/{run['id']}/events"
        async with rs.http.stream("GET", path, headers=rs.headers()) as response:
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ": keep-alive":
                    return  # and the connection goes away

    await asyncio.wait_for(read_until_keepalive(), 10)
    assert "event: run.status" in lines  # the events so far came first
    deadline = asyncio.get_running_loop().time() + 10
    while OPEN_EVENT_STREAMS._value.get() > open_before:  # the gateway let go of the stream
        assert asyncio.get_running_loop().time() < deadline, "the event stream stayed open"
        await asyncio.sleep(0.01)
    gate.release()
    events, _ = await asyncio.wait_for(read_events(rs, run["id"]), 10)
    assert events[-1]["type"] == "run.completed"  # the response ends with its terminal event


async def test_live_view_while_in_flight(rs: RunnerSuite) -> None:
    question = unique("Slow answer please.")
    gate = fb.Gate(fb.text("done"))
    rs.bedrock.on(question, gate)
    conversation = await rs.create_conversation(name="live")
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(gate.arrived.wait(), 10)
    running = await rs.get_run(run["id"])
    assert running["status"] == "running"
    assert running["live"] == {"current_name": "live", "messages": []}
    assert running["completed_at"] is None and running["iterations_used"] is None
    gate.release()
    done = await rs.wait_run(run["id"])
    assert done["live"]["messages"] == []


async def test_event_stream_errors_before_the_first_event_are_problems(rs: RunnerSuite) -> None:
    missing = await rs.http.get(
        "/agents/runs/6d3c8e3a-3f5c-4f38-9a57-0a0f7f3f2b11/events", headers=rs.headers()
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    anonymous = await rs.http.get("/agents/runs/6d3c8e3a-3f5c-4f38-9a57-0a0f7f3f2b11/events")
    assert anonymous.status_code == 401


async def test_titling_names_an_unnamed_conversation_once(rs: RunnerSuite) -> None:
    question = unique("How do I rotate my API keys safely?")
    rs.bedrock.on(question, fb.text("Carefully."))
    conversation = await rs.create_conversation()
    assert conversation["name"] is None
    run = await rs.start_run(conversation["id"], question)
    await rs.wait_run(run["id"])
    for _ in range(200):
        named = await rs.conversation(conversation["id"])
        if named["name"] is not None:
            break
        await asyncio.sleep(0.02)
    assert named["name"].startswith("How do I rotate my API keys safely")
    assert len(named["name"]) <= 61
    assert named["version"] == 2  # titling never touches the version

    # a user-set name is never overwritten
    other_q = unique("Name me not")
    rs.bedrock.on(other_q, fb.text("ok"))
    mine = await rs.create_conversation(name="my name")
    await rs.wait_run((await rs.start_run(mine["id"], other_q))["id"])
    assert (await rs.conversation(mine["id"]))["name"] == "my name"


async def test_inference_jobs_are_recorded_and_readable(rs: RunnerSuite, tmp_path: Path) -> None:
    question = unique("Job record please.")
    rs.bedrock.on(question, fb.text("recorded"))
    conversation = await rs.create_conversation()
    done = await rs.wait_run((await rs.start_run(conversation["id"], question))["id"])
    (job_id,) = done["submitted_inference_job_ids"]
    async with internal_channel(f"127.0.0.1:{rs.store_port}", Role.OPERATOR) as channel:
        job = await store_service_pb2_grpc.StoreServiceStub(channel).GetInferenceJob(
            store_service_pb2.GetInferenceJobRequest(id=job_id)
        )
    assert job.run_id == done["id"] and job.iteration == 1 and job.provider == "bedrock"
    assert json.loads(job.request_json)["messages"][0]["content"] == [{"text": question}]
    assert json.loads(job.response_json)["output"]["message"]["content"] == [{"text": "recorded"}]
    assert job.usage.total_tokens == 177
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "job", job_id],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PARLEY_STORE_ADDR": f"127.0.0.1:{rs.store_port}",
            "PARLEY_INTERNAL_SECRET": INTERNAL_SECRET,
        },
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    shown = json.loads(printed.stdout)
    assert shown["id"] == job_id and shown["request"]["messages"][0]["role"] == "user"
    # Without an internal secret it says, in one line, where it looked and what to do.
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "job", job_id],
        capture_output=True,
        text=True,
        env={**os.environ, "PARLEY_STORE_ADDR": f"127.0.0.1:{rs.store_port}"},
        cwd=tmp_path,
        timeout=60,
    )
    assert refused.returncode != 0 and refused.stdout == ""
    message = refused.stderr.strip()
    assert "\n" not in message, message
    assert "PARLEY_INTERNAL_SECRET" in message and ".parley/internal_secret" in message, message
    # A wrong secret: the store refuses the operator credential.
    wrong = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "job", job_id],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PARLEY_STORE_ADDR": f"127.0.0.1:{rs.store_port}",
            "PARLEY_INTERNAL_SECRET": "not-the-secret-0123456789abcdef",
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert wrong.returncode != 0 and "UNAUTHENTICATED" in wrong.stderr, wrong.stderr
