"""Runs executed end to end: REST gateway -> store -> runner -> boto3 -> the scripted fake
Bedrock on loopback. The spec's examples 1, 3 and 4, and the failure paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from tests.fakes import bedrock as fb

from .conftest import example_defaults
from .runner_suite import RunnerSuite, running_runner_suite
from tests.spec_examples import EXAMPLE_4_SCHEMA

BOOKING_TOOL = {
    "name": "confirm_booking",
    "description": "Ask the user to confirm a proposed booking slot.",
    "input_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["proposed_slot"],
        "properties": {"proposed_slot": {"type": "string"}},
    },
}


@pytest_asyncio.fixture(scope="module")
async def rs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[RunnerSuite]:
    async with running_runner_suite(await make_database_url()) as suite:
        yield suite


def unique(text: str) -> str:
    """A first user message no other test uses (the fake's scripts are keyed on it)."""
    import uuid

    return f"{text} [{uuid.uuid4().hex[:8]}]"


async def test_example_1_completes_with_final_text(rs: RunnerSuite) -> None:
    question = unique("What is 2 + 2?")
    rs.bedrock.on(question, fb.text("4", tokens=(169, 8)))
    conversation = await rs.create_conversation(
        name="hello world", system_prompt="You are a helpful assistant. Answer concisely."
    )
    run = await rs.start_run(conversation["id"], question)
    assert run["status"] == "pending"
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] == "4" and done["final_structured_output"] is None
    assert done["iterations_used"] == 1 and len(done["submitted_inference_job_ids"]) == 1
    assert done["usage"] == {"prompt_tokens": 169, "completion_tokens": 8, "total_tokens": 177}
    assert done["error"] is None and done["pending_tool_calls"] == []
    assert done["completed_at"] is not None
    assert done["live"] == {"current_name": "hello world", "messages": []}
    stream = await rs.messages(conversation["id"])
    assert stream["current_version"] == 2
    assert [(m["sequence_no"], m["role"], m["content_blocks"]) for m in stream["messages"]] == [
        (1, "user", [{"type": "text", "text": question}]),
        (2, "assistant", [{"type": "text", "text": "4"}]),
    ]
    (request,) = rs.bedrock.requests_for(question)
    assert request.model_id == "us.anthropic.claude-opus-4-6-v1"
    assert request.body["system"] == [{"text": "You are a helpful assistant. Answer concisely."}]
    assert request.body["inferenceConfig"] == {"maxTokens": 1024, "temperature": 0.0}
    assert "toolConfig" not in request.body
    assert "outputConfig" not in request.body  # text mode: prose


async def test_example_3_requires_action_then_resume_completes(rs: RunnerSuite) -> None:
    question = unique("Find me a meeting time for tomorrow afternoon.")
    rs.bedrock.on(
        question,
        fb.tool_uses(
            (
                "tooluse_DWXPKZ50JDGib5GmShyUgJ",
                "confirm_booking",
                {"proposed_slot": "tomorrow afternoon"},
            )
        ),
        fb.text("Great news! Your meeting has been confirmed for tomorrow afternoon."),
    )
    conversation = await rs.create_conversation(
        name="booking flow",
        system_prompt="You are a booking assistant.",
        defaults=example_defaults(max_iterations=5, tools=[BOOKING_TOOL]),
    )
    run = await rs.start_run(
        conversation["id"],
        question,
        tool_choice={"kind": "specific_tool", "name": "confirm_booking"},
    )
    paused = await rs.wait_run(run["id"])
    assert paused["status"] == "requires_action", paused
    assert paused["iterations_used"] == 1 and paused["final_text"] is None
    assert paused["pending_tool_calls"] == [
        {
            "tool_use_id": "tooluse_DWXPKZ50JDGib5GmShyUgJ",
            "name": "confirm_booking",
            "arguments": {"proposed_slot": "tomorrow afternoon"},
        }
    ]
    assert (await rs.conversation(conversation["id"]))["version"] == 2
    (first,) = rs.bedrock.requests_for(question)
    assert first.body["toolConfig"]["toolChoice"] == {"tool": {"name": "confirm_booking"}}
    assert first.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "confirm_booking"

    resumed = await rs.start_run(
        conversation["id"],
        expected_version=2,
        payload={
            "kind": "tool_outputs",
            "outputs": [
                {
                    "tool_use_id": "tooluse_DWXPKZ50JDGib5GmShyUgJ",
                    "content": "User confirmed the proposed slot.",
                    "is_error": False,
                }
            ],
        },
    )
    done = await rs.wait_run(resumed["id"])
    assert done["status"] == "completed", done
    assert done["iterations_used"] == 1
    assert done["final_text"].startswith("Great news!")
    _, second = rs.bedrock.requests_for(question)
    assert "toolChoice" not in second.body["toolConfig"]  # tool_choice is per run
    assert [m["role"] for m in second.body["messages"]] == ["user", "assistant", "user"]
    assert second.body["messages"][2]["content"] == [
        {
            "toolResult": {
                "toolUseId": "tooluse_DWXPKZ50JDGib5GmShyUgJ",
                "content": [{"text": "User confirmed the proposed slot."}],
                "status": "success",
            }
        }
    ]
    assert (await rs.messages(conversation["id"]))["current_version"] == 4


async def test_parallel_caller_calls_and_an_is_error_answer(rs: RunnerSuite) -> None:
    question = unique("Book two slots.")
    rs.bedrock.on(
        question,
        fb.tool_uses(
            ("tu_a", "confirm_booking", {"proposed_slot": "Mon 2pm"}),
            ("tu_b", "confirm_booking", {"proposed_slot": "Tue 3pm"}),
            say="I'll ask about both.",
        ),
        fb.text("Only Monday works, then."),
    )
    conversation = await rs.create_conversation(defaults=example_defaults(tools=[BOOKING_TOOL]))
    run = await rs.start_run(conversation["id"], question)
    paused = await rs.wait_run(run["id"])
    assert paused["status"] == "requires_action"
    assert [c["tool_use_id"] for c in paused["pending_tool_calls"]] == ["tu_a", "tu_b"]
    resumed = await rs.start_run(
        conversation["id"],
        expected_version=2,
        payload={
            "kind": "tool_outputs",
            "outputs": [
                {"tool_use_id": "tu_a", "content": "confirmed", "is_error": False},
                {"tool_use_id": "tu_b", "content": "the user declined", "is_error": True},
            ],
        },
    )
    done = await rs.wait_run(resumed["id"])
    assert done["status"] == "completed" and done["final_text"] == "Only Monday works, then."
    results = rs.bedrock.requests_for(question)[1].body["messages"][2]["content"]
    assert [(r["toolResult"]["toolUseId"], r["toolResult"]["status"]) for r in results] == [
        ("tu_a", "success"),
        ("tu_b", "error"),
    ]


async def test_example_4_structured_output(rs: RunnerSuite) -> None:
    question = unique("User u-123 logged in and stayed for 1800 seconds.")
    answer = {"event": {"type": "login", "user_id": "u-123", "session_duration_seconds": 1800}}
    rs.bedrock.on(question, fb.json_text(answer))
    conversation = await rs.create_conversation(
        name="event logger",
        defaults=example_defaults(max_tokens=1024, output_format_schema=EXAMPLE_4_SCHEMA),
    )
    run = await rs.start_run(conversation["id"], question)
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] is None and done["final_structured_output"] == answer
    assert done["iterations_used"] == 1
    assert done["effective_config"]["output_format_schema"] == EXAMPLE_4_SCHEMA
    (request,) = rs.bedrock.requests_for(question)
    structure = request.body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    import json

    assert json.loads(structure["schema"]) == EXAMPLE_4_SCHEMA


async def test_schema_decode_failures(rs: RunnerSuite) -> None:
    wrong = unique("Record a logout.")
    rs.bedrock.on(wrong, fb.json_text({"event": {"type": "logout"}}))
    truncated = unique("Write a long essay.")
    rs.bedrock.on(truncated, fb.text('{"text": "Once upon a', stop_reason="max_tokens"))
    structured = await rs.create_conversation(
        defaults=example_defaults(output_format_schema=EXAMPLE_4_SCHEMA)
    )
    text_mode = await rs.create_conversation()
    runs = [
        await rs.start_run(structured["id"], wrong),
        await rs.start_run(text_mode["id"], truncated),
    ]
    for run in runs:
        failed = await rs.wait_run(run["id"])
        assert failed["status"] == "failed", failed
        assert failed["error"]["type"] == "AgentLoopSchemaDecodeFailed"
        assert failed["error"]["title"] == "Schema Decode Failed"
        assert failed["error"]["docs_url"].endswith("/errors/schema-decode-failed")
        assert failed["iterations_used"] == 1 and failed["usage"]["total_tokens"] > 0
    assert "output_format_schema at event" in (await rs.get_run(runs[0]["id"]))["error"]["message"]
    # the failed run kept its work: the assistant's reply is in the stream
    assert (await rs.messages(structured["id"]))["current_version"] == 2


async def test_provider_throttling_fails_the_run_after_botocore_retries(rs: RunnerSuite) -> None:
    question = unique("Are you there?")
    rs.bedrock.on(question, fb.throttled(), fb.throttled())
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    failed = await rs.wait_run(run["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ModelThrottled"
    assert "ThrottlingException" in failed["error"]["message"]
    assert failed["iterations_used"] == 1 == len(failed["submitted_inference_job_ids"])
    assert len(rs.bedrock.requests_for(question)) == 2  # botocore's one retry layer, 2 attempts
    # the conversation is intact: the next run works
    follow_up = unique("Hello again")
    rs.bedrock.on(question, fb.text("yes"))
    nxt = await rs.start_run(conversation["id"], follow_up, expected_version=1)
    assert (await rs.wait_run(nxt["id"]))["final_text"] == "yes"


@pytest.mark.parametrize(
    "body",
    [b'"just a string"', b'[{"output": {}}]', b'{"output": {"message": {"role": "assi', b""],
    ids=["json-string", "json-list", "truncated", "empty"],
)
async def test_an_unreadable_model_answer_fails_the_run_at_once(
    rs: RunnerSuite, body: bytes
) -> None:
    """A 200 whose body is not a Converse answer is the provider's failure: the run ends
    ModelInvocationFailed after that one call (not a crashed task whose lease runs out and is
    retried, not a schema-decode failure of an "empty" reply)."""
    question = unique("Say something.")
    rs.bedrock.on(question, fb.raw(body), fb.text("a second call must not happen"))
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    failed = await rs.wait_run(run["id"])
    assert failed["status"] == "failed", failed
    assert failed["error"]["type"] == "ModelInvocationFailed", failed["error"]
    assert "unreadable" in failed["error"]["message"]
    assert failed["iterations_used"] == 1 == len(failed["submitted_inference_job_ids"])
    assert len(rs.bedrock.requests_for(question)) == 1  # botocore does not retry a 200


async def test_unknown_tool_fails_and_keeps_history_valid(rs: RunnerSuite) -> None:
    question = unique("Use a tool you do not have.")
    rs.bedrock.on(
        question,
        fb.tool_uses(("tu_x", "ghost-search", {"q": "x"}), ("tu_y", "confirm_booking", {})),
        fb.text("ok"),
    )
    conversation = await rs.create_conversation(defaults=example_defaults(tools=[BOOKING_TOOL]))
    run = await rs.start_run(conversation["id"], question)
    failed = await rs.wait_run(run["id"])
    assert failed["error"]["type"] == "AgentLoopUnknownToolAlias", failed
    assert "'ghost-search'" in failed["error"]["message"]
    stream = (await rs.messages(conversation["id"]))["messages"]
    assert [m["role"] for m in stream] == ["user", "assistant", "tool"]
    assert {b["tool_use_id"] for b in stream[2]["content_blocks"]} == {"tu_x", "tu_y"}
    assert all(b["is_error"] for b in stream[2]["content_blocks"])
    nxt = await rs.start_run(conversation["id"], unique("again"), expected_version=3)
    # the fake keys on the conversation's first user message
    assert (await rs.wait_run(nxt["id"]))["status"] == "completed"
    last = rs.bedrock.requests_for(question)[-1].body["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user"]


async def test_cancel_while_the_model_call_is_in_flight(rs: RunnerSuite) -> None:
    question = unique("Think very hard.")
    gate = fb.Gate(fb.text("too late"))
    rs.bedrock.on(question, gate, fb.text("fresh answer"))
    conversation = await rs.create_conversation()
    run = await rs.start_run(conversation["id"], question)
    await asyncio.wait_for(gate.arrived.wait(), 10)
    running = await rs.get_run(run["id"])
    assert running["status"] == "running"
    r = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers())
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "failed", cancelled
    assert cancelled["error"]["type"] == "AgentLoopCancelled"
    assert cancelled["error"]["docs_url"].endswith("/errors/cancelled")
    assert cancelled["iterations_used"] == 1 == len(cancelled["submitted_inference_job_ids"])
    gate.release()
    again = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers())
    assert again.status_code == 409 and again.json()["type"].endswith("/run-not-cancellable")
    other = await rs.http.post(f"/agents/runs/{run['id']}/cancel", headers=rs.headers(1, 999))
    assert other.status_code == 404
    # the next run on the conversation works
    nxt = await rs.start_run(conversation["id"], unique("still there?"), expected_version=1)
    done = await rs.wait_run(nxt["id"])
    assert done["status"] == "completed" and done["final_text"] == "fresh answer"
