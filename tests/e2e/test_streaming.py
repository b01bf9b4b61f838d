"""The live run through the gateway: a streamed answer grows on the SSE stream and in
live.messages, resumes mid-stream without loss, is cut off at once by a cancel; tool.call and
tool.result events; thinking kept and sent back in a tool loop, and what thinking refuses."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx

from tests.fakes import bedrock as fb
from tests.spec_examples import DOCS_SEARCH, DOCS_SERVER, example_defaults

from .runner_suite import RunnerSuite, unique
from .sse import deltas_text, read_events

ANSWER = "Two plus two is four, and four is the answer you asked for."


async def test_the_answer_grows_on_the_stream_and_in_live_messages(rs: RunnerSuite) -> None:
    question = unique("Stream me an answer.")
    held = fb.StreamGate(replace(fb.text(ANSWER), pieces=6), after=2)
    rs.bedrock.on(question, held)
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(held.arrived.wait(), 10)
    so_far = fb.eventstream.pieces(ANSWER, 6)[:2]

    async def partial() -> str | None:
        live = (await rs.get_run(run["id"]))["live"]["messages"]
        return live[-1]["content_blocks"][0]["text"] if live and live[-1]["partial"] else None

    for _ in range(500):  # the held deltas reach the store within the flush interval
        if await partial() == "".join(so_far):
            break
        await asyncio.sleep(0.01)
    live = (await rs.get_run(run["id"]))["live"]["messages"]
    assert live == [
        {
            "turn_index": 0,
            "role": "assistant",
            "content_blocks": [{"type": "text", "text": "".join(so_far)}],
            "partial": True,
        }
    ]
    # A client reads the stream while the model writes, drops the connection, and comes back.
    first = await read_events(rs, run["id"], until=lambda e: e["type"] == "message.delta")
    assert first[-1]["type"] == "message.delta" and first[-1]["text"] == "".join(so_far)
    held.release()
    rest = await read_events(rs, run["id"], headers={"Last-Event-ID": str(first[-1]["seq"])})
    everything = await read_events(rs, run["id"])
    assert [e["seq"] for e in first + rest] == [e["seq"] for e in everything]  # none lost or twice
    done = everything[-1]["run"]
    assert done["status"] == "completed" and done["final_text"] == ANSWER
    assert deltas_text(everything) == ANSWER  # the deltas concatenate to the turn's text
    types = [e["type"] for e in everything]
    assert types.index("message.delta") < types.index("usage") < types.index("turn")
    assert {
        (e["turn_index"], e["block_index"], e["attempt"])
        for e in everything
        if e["type"] == "message.delta"
    } == {(0, 0, 1)}
    assert done["live"]["messages"] == []
    (request,) = rs.bedrock.requests_for(question)
    assert request.streamed


async def test_cancelling_mid_stream_closes_the_model_stream_at_once(rs: RunnerSuite) -> None:
    question = unique("Write me a long story.")
    held = fb.StreamGate(replace(fb.text(ANSWER), pieces=8), after=1)
    rs.bedrock.on(question, held)
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(held.arrived.wait(), 10)
    r = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers())
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
    assert r.json()["error"]["type"] == "AgentLoopCancelled"
    await asyncio.wait_for(held.disconnected.wait(), 5)  # the fake saw the connection close
    assert not held.released.is_set()
    events = await read_events(rs, run["id"])
    assert deltas_text(events) == fb.eventstream.pieces(ANSWER, 8)[0]  # what was written, kept
    messages = await rs.messages(conversation["id"])
    assert [m["role"] for m in messages["messages"]] == ["user"]  # no half answer committed


async def test_tool_calls_and_results_are_events(rs: RunnerSuite, docs_url: str) -> None:
    question = unique("Search the docs.")
    rs.bedrock.on(
        question,
        fb.tool_uses(("m1", DOCS_SEARCH, {"query": "rate limits"}), say="Let me look."),
        fb.text("100 per minute."),
    )
    conversation = await rs.create_conversation(
        defaults=example_defaults(mcp_servers=[{**DOCS_SERVER, "url": docs_url}])
    )
    run = await rs.start_run(conversation["id"], question)
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    events = await read_events(rs, run["id"])
    kinds = [e["type"] for e in events if e["type"] not in ("usage", "message.delta")]
    assert kinds == [
        "run.status",
        "run.status",
        "turn",  # the assistant's call
        "tool.call",  # written before the call is made
        "tool.result",
        "turn",  # the tool turn
        "turn",
        "run.completed",
    ]
    # The run a terminal event carries ends where its log does: at that event.
    assert events[-1]["run"]["latest_event_seq"] == events[-1]["seq"] == done["latest_event_seq"]
    call = next(e for e in events if e["type"] == "tool.call")
    assert (call["tool_use_id"], call["name"], call["kind"]) == ("m1", DOCS_SEARCH, "mcp")
    assert call["arguments"] == {"query": "rate limits"}
    result = next(e for e in events if e["type"] == "tool.result")
    assert result["tool_use_id"] == "m1" and result["is_error"] is False
    assert "100 requests per minute" in result["content"][0]["text"]
    assert call["text"] is None and result["name"] is None  # other events' fields are null
    assert deltas_text(events, 0) == "Let me look." and deltas_text(events, 2) == "100 per minute."


async def test_stream_off_calls_converse_and_writes_no_deltas(rs: RunnerSuite) -> None:
    question = unique("No streaming please.")
    rs.bedrock.on(question, fb.text("whole"))
    conversation = await rs.create_conversation(defaults=example_defaults(stream=False))
    done = await rs.wait_run((await rs.start_run(conversation["id"], question))["id"])
    assert done["final_text"] == "whole" and done["effective_config"]["stream"] is False
    events = await read_events(rs, done["id"])
    assert "message.delta" not in {e["type"] for e in events}
    assert [r.streamed for r in rs.bedrock.requests_for(question)] == [False]


THINKING = {"enabled": True, "budget_tokens": 2048}


async def test_thinking_is_kept_and_sent_back_in_a_tool_loop(
    rs: RunnerSuite, docs_url: str
) -> None:
    question = unique("Think, then search.")
    rs.bedrock.on(
        question,
        fb.tool_uses(
            ("m1", DOCS_SEARCH, {"query": "limits"}), reasoning="I should search the docs."
        ),
        fb.text("100 per minute.", reasoning="The docs say 100."),
    )
    conversation = await rs.create_conversation(
        defaults=example_defaults(
            max_tokens=4096,
            temperature=1.0,
            thinking=THINKING,
            mcp_servers=[{**DOCS_SERVER, "url": docs_url}],
        )
    )
    done = await rs.wait_run((await rs.start_run(conversation["id"], question))["id"])
    # The fake refuses a tool loop whose assistant turn lost its (signed) reasoning: it passed.
    assert done["status"] == "completed", done["error"]
    first, second = rs.bedrock.requests_for(question)
    assert first.body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert second.body["messages"][1]["content"][0] == fb.reasoning_block(
        "I should search the docs."
    )
    stream = await rs.messages(conversation["id"])
    assistant = [m for m in stream["messages"] if m["role"] == "assistant"]
    assert [m["content_blocks"][0] for m in assistant] == [
        {
            "type": "reasoning",
            "text": "I should search the docs.",
            "signature": fb.signature_of("I should search the docs."),
            "redacted_content": None,
        },
        {
            "type": "reasoning",
            "text": "The docs say 100.",
            "signature": fb.signature_of("The docs say 100."),
            "redacted_content": None,
        },
    ]
    events = await read_events(rs, done["id"])
    assert deltas_text(events, 0, "reasoning.delta") == "I should search the docs."
    assert deltas_text(events, 2, "reasoning.delta") == "The docs say 100."
    # Without the reasoning, Bedrock (and so the fake) refuses the same loop.
    refused = await _converse(rs, {**second.body, "messages": _without_reasoning(second.body)})
    assert refused.status_code == 400 and "thinking block" in refused.text


async def _converse(rs: RunnerSuite, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=rs.bedrock.url) as fake:
        return await fake.post("/model/m/converse", json=body)


def _without_reasoning(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**m, "content": [b for b in m["content"] if "reasoningContent" not in b]}
        for m in body["messages"]
    ]


async def test_what_the_model_refuses_with_thinking_on_is_a_400(rs: RunnerSuite) -> None:
    def problem(r: httpx.Response) -> tuple[int, str]:
        return r.status_code, r.json()["type"].rsplit("/", 1)[-1]

    cold = await rs.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(max_tokens=4096, thinking=THINKING)},
        headers=rs.headers(),
    )  # example_defaults sets temperature 0.0
    assert problem(cold) == (400, "invalid-thinking-config") and "temperature" in cold.text
    small = await rs.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(temperature=1.0, thinking=THINKING)},
        headers=rs.headers(),
    )  # max_tokens 1024 <= budget 2048
    assert problem(small) == (400, "invalid-thinking-config") and "max_tokens" in small.text
    conversation = await rs.create_conversation(
        defaults=example_defaults(tools=[{"name": "confirm", "input_schema": {"type": "object"}}])
    )
    forced = await rs.post_run(
        conversation["id"],
        tool_choice={"kind": "any"},
        config_override={"thinking": THINKING, "max_tokens": 4096, "temperature": 1.0},
    )
    assert problem(forced) == (400, "invalid-thinking-config") and "tool_choice" in forced.text
    override = await rs.post_run(
        conversation["id"], config_override={"thinking": THINKING, "max_tokens": 4096}
    )
    assert problem(override) == (400, "invalid-thinking-config")
    assert "config_override.temperature" in override.text  # the defaults' 0.0 is in the way
