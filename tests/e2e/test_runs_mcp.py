"""Runs whose model calls MCP tools through the real tool router, against real MCP servers built
with the `mcp` SDK (tests/fakes/mcp_servers.py) and the scripted fake Bedrock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.fakes import bedrock as fb
from tests.fakes import mcp_servers

from tests.spec_examples import BOOKING_TOOL, DOCS_SERVER, example_defaults
from tests.spec_examples import DOCS_SEARCH as SEARCH

from .runner_suite import RunnerSuite, unique


@pytest_asyncio.fixture(scope="module")
async def slow_url() -> AsyncIterator[str]:
    server = mcp_servers.tool_server(
        "slow", [mcp_servers.ToolSpec("wait", mcp_servers.OBJECT_Q)], call_delay=60
    )
    async with mcp_servers.serve(server) as url:
        yield url


def docs(url: str, **changes: Any) -> dict[str, Any]:
    return example_defaults(
        mcp_servers=[{**DOCS_SERVER, "url": url}],
        **changes,
    )


def search(n: int) -> fb.Reply:
    return fb.tool_uses((f"tooluse_s{n}", SEARCH, {"query": f"rate limiting {n}"}))


async def test_max_iterations_exceeded(rs: RunnerSuite, docs_url: str) -> None:
    question = unique("Keep searching forever.")
    rs.bedrock.on(question, search(0), search(1), fb.text("finally"))
    conversation = await rs.create_conversation(defaults=docs(docs_url, max_iterations=2))
    run = await rs.start_run(conversation["id"], question)
    failed = await rs.wait_run(run["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "AgentLoopMaxIterationsExceeded"
    assert failed["error"]["message"] == "max iterations exceeded after 2 iterations"
    assert failed["error"]["title"] == "Max Iterations Exceeded"
    assert failed["iterations_used"] == 2 == len(failed["submitted_inference_job_ids"])
    assert failed["usage"]["total_tokens"] == 360
    assert (await rs.messages(conversation["id"]))["current_version"] == 5
    nxt = await rs.start_run(conversation["id"], unique("summarise"), expected_version=5)
    assert (await rs.wait_run(nxt["id"]))["final_text"] == "finally"


async def test_mixed_turn_runs_mcp_calls_and_pauses_for_the_caller(
    rs: RunnerSuite, docs_url: str
) -> None:
    question = unique("Search, then confirm with me.")
    rs.bedrock.on(
        question,
        fb.tool_uses(
            ("tu_m", SEARCH, {"query": "slots"}),
            ("tu_c", "confirm_booking", {"proposed_slot": "Fri"}),
        ),
        fb.text("Booked for Friday."),
    )
    conversation = await rs.create_conversation(defaults=docs(docs_url, tools=[BOOKING_TOOL]))
    run = await rs.start_run(conversation["id"], question)
    paused = await rs.wait_run(run["id"])
    assert paused["status"] == "requires_action", paused
    assert [c["tool_use_id"] for c in paused["pending_tool_calls"]] == ["tu_c"]
    assert (await rs.conversation(conversation["id"]))["version"] == 3  # user, assistant, tool
    resumed = await rs.start_run(
        conversation["id"],
        expected_version=3,
        payload={
            "kind": "tool_outputs",
            "outputs": [{"tool_use_id": "tu_c", "content": "yes", "is_error": False}],
        },
    )
    done = await rs.wait_run(resumed["id"])
    assert done["status"] == "completed" and done["final_text"] == "Booked for Friday."
    messages = rs.bedrock.requests_for(question)[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["toolResult"]["toolUseId"] for b in messages[2]["content"]] == ["tu_m", "tu_c"]


async def test_cancel_while_an_mcp_call_is_in_flight(rs: RunnerSuite, slow_url: str) -> None:
    question = unique("Wait for the slow tool.")
    rs.bedrock.on(
        question,
        fb.tool_uses(("tu_slow", "slow-wait", {"q": "x"})),
        fb.text("recovered"),
    )
    conversation = await rs.create_conversation(
        defaults=example_defaults(mcp_servers=[{"alias": "slow", "url": slow_url}])
    )
    run = await rs.start_run(conversation["id"], question)
    for _ in range(500):  # the tool_use turn is published before the call is made
        live = await rs.get_run(run["id"])
        if live["live"]["messages"]:
            break
        assert live["status"] in ("pending", "running"), live
        await asyncio.sleep(0.02)
    assert live["live"]["messages"][0]["content_blocks"][0]["tool_use_id"] == "tu_slow"
    r = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers())
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "failed" and cancelled["error"]["type"] == "AgentLoopCancelled"
    assert cancelled["live"]["messages"] == []
    stream = (await rs.messages(conversation["id"]))["messages"]
    assert [m["role"] for m in stream] == ["user", "assistant", "tool"]
    (result,) = stream[2]["content_blocks"]
    assert result["tool_use_id"] == "tu_slow" and result["is_error"] is True
    nxt = await rs.start_run(conversation["id"], unique("and now?"), expected_version=3)
    done = await rs.wait_run(nxt["id"])
    assert done["status"] == "completed" and done["final_text"] == "recovered"
