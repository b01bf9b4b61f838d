"""The spec's examples 1-4, through the REST gateway, executed by the real runner: the store, the
runner and the tool router on loopback gRPC, boto3 in the runner sending Converse to the
scripted fake Bedrock (AWS_ENDPOINT_URL_BEDROCK_RUNTIME), MCP calls to a real `mcp` SDK server.
Each checks the shapes the spec shows and what reached the model."""

from __future__ import annotations

import asyncio
import json
import re


from tests.fakes import bedrock as fb
from tests.spec_examples import (
    BOOKING_TOOL,
    DATA_PLANE,
    DOCS_SEARCH,
    DOCS_SERVER,
    EXAMPLE_4_SCHEMA,
    TEXT_SCHEMA,
    example_defaults,
)

from .runner_suite import RunnerSuite, unique

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
RUN_FIELDS = {
    "id",
    "conversation_id",
    "company_id",
    "user_id",
    "client_op_id",
    "status",
    "tool_choice",
    "effective_config",
    "iterations_used",
    "usage",
    "submitted_inference_job_ids",
    "pending_tool_calls",
    "final_text",
    "final_structured_output",
    "error",
    "started_at",
    "completed_at",
    "live",
    "execution_started_at",
    "duration_ms",
    "latest_event_seq",
    "cache_hit_rate",
    "total_cost_usd",
    "trace_id",
    "metadata",
}
# Fields a runner's pick-up changes (besides status).
PICKED_UP = {"status", "execution_started_at", "latest_event_seq"}


async def test_example_1_hello_world(rs: RunnerSuite) -> None:
    question = unique("What is 2 + 2?")
    answer = fb.Gate(fb.text("4", tokens=(169, 8)))  # holds the model call: the run is running
    rs.bedrock.on(question, answer)
    conversation = await rs.create_conversation(
        name="hello world", system_prompt="You are a helpful assistant. Answer concisely."
    )
    assert UUID.match(conversation["id"])
    assert conversation["version"] == 0 and conversation["name"] == "hello world"
    assert conversation["defaults"] == {
        **example_defaults(),
        "compute_pool_id": None,
        "output_format_schema": None,
        "mcp_servers": [],
        "tools": [],
        "stream": True,
        "prompt_caching": True,
        "thinking": None,
    }
    assert TIMESTAMP.match(conversation["created_at"])

    response = await rs.post_run(
        conversation["id"], payload={"kind": "user_message", "text": question}
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert set(run) == RUN_FIELDS
    assert run["status"] == "pending" and UUID.match(run["id"])
    assert run["conversation_id"] == conversation["id"]
    assert (run["company_id"], run["user_id"]) == (1, 1)
    assert TIMESTAMP.match(run["started_at"]) and run["completed_at"] is None
    for field in ("tool_choice", "iterations_used", "usage", "final_text"):
        assert run[field] is None, field
    assert run["final_structured_output"] is None and run["error"] is None
    assert run["submitted_inference_job_ids"] == [] and run["pending_tool_calls"] == []
    assert run["effective_config"] == {
        **example_defaults(),
        "compute_pool_id": None,
        "output_format_schema": TEXT_SCHEMA,
        "mcp_servers": [],
        "tools": [],
        "stream": True,
        "prompt_caching": True,
        "thinking": None,
    }
    assert run["live"] == {"current_name": "hello world", "messages": []}

    await asyncio.wait_for(answer.arrived.wait(), 10)
    running = await rs.get_run(run["id"])
    assert running["status"] == "running" and running["completed_at"] is None
    assert {k: v for k, v in running.items() if k not in PICKED_UP} == {
        k: v for k, v in run.items() if k not in PICKED_UP
    }
    assert run["execution_started_at"] is None and TIMESTAMP.match(running["execution_started_at"])
    assert running["latest_event_seq"] > run["latest_event_seq"] == 1
    answer.release()

    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] == "4" and done["final_structured_output"] is None
    assert done["iterations_used"] == 1 and len(done["submitted_inference_job_ids"]) == 1
    assert done["usage"] == {
        "prompt_tokens": 169,
        "completion_tokens": 8,
        "total_tokens": 177,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
    }
    assert done["cache_hit_rate"] == 0 and done["total_cost_usd"] == (169 * 5 + 8 * 25) / 1e6
    assert done["error"] is None and done["pending_tool_calls"] == []
    assert TIMESTAMP.match(done["completed_at"])
    assert done["live"] == {"current_name": "hello world", "messages": []}

    stream = await rs.messages(conversation["id"], since=0)
    assert stream["current_version"] == 2 and stream["next_since"] is None
    assert [(m["sequence_no"], m["role"], m["content_blocks"]) for m in stream["messages"]] == [
        (1, "user", [{"type": "text", "text": question}]),
        (2, "assistant", [{"type": "text", "text": "4"}]),
    ]
    assert {m["run_id"] for m in stream["messages"]} == {run["id"]}
    since_1 = await rs.messages(conversation["id"], since=1)
    assert [m["sequence_no"] for m in since_1["messages"]] == [2]
    assert (await rs.conversation(conversation["id"]))["version"] == 2

    (request,) = rs.bedrock.requests_for(question)
    assert request.model_id == "us.anthropic.claude-opus-4-6-v1"
    assert request.body["system"] == [{"text": "You are a helpful assistant. Answer concisely."}]
    assert request.body["messages"] == [{"role": "user", "content": [{"text": question}]}]
    assert request.body["inferenceConfig"] == {"maxTokens": 1024, "temperature": 0.0}
    assert "toolConfig" not in request.body
    assert "outputConfig" not in request.body  # text mode: prose

    # Future runs start with expected_version 2.
    stale = await rs.post_run(conversation["id"], expected_version=0)
    assert stale.status_code == 409, stale.text
    assert stale.json()["type"].endswith("/errors/version-conflict")


async def test_example_2_mcp_search_loop(rs: RunnerSuite, docs_url: str) -> None:
    question = unique("Search the Narrative docs for information about rate limiting.")
    searches = [
        fb.tool_uses((f"tooluse_s{n}", DOCS_SEARCH, {"query": f"rate limiting {n}"}))
        for n in range(5)
    ]
    answer = fb.Gate(
        fb.text("According to the Narrative.io documentation, the API returns a 429 ...")
    )
    rs.bedrock.on(question, *searches, answer)
    conversation = await rs.create_conversation(
        name="docs search",
        defaults=example_defaults(
            max_iterations=8, max_tokens=2048, mcp_servers=[{**DOCS_SERVER, "url": docs_url}]
        ),
    )
    assert conversation["defaults"]["mcp_servers"] == [
        {**DOCS_SERVER, "url": docs_url, "tools": [], "require_approval": None}
    ]
    assert conversation["defaults"]["data_plane_id"] == DATA_PLANE
    run = await rs.start_run(conversation["id"], question, tool_choice={"kind": "auto"})

    # While the last model call is in flight, live.messages shows every tool call and result.
    await asyncio.wait_for(answer.arrived.wait(), 20)
    running = await rs.get_run(run["id"])
    assert running["status"] == "running"
    live = running["live"]["messages"]
    assert [t["turn_index"] for t in live] == list(range(10))
    assert [t["role"] for t in live] == ["assistant", "tool"] * 5
    assert [t["content_blocks"][0]["tool_use_id"] for t in live] == [
        f"tooluse_s{n}" for n in range(5) for _ in range(2)
    ]
    assert live[0]["content_blocks"][0]["name"] == DOCS_SEARCH
    answer.release()

    done = await rs.wait_run(run["id"])
    assert done["live"]["messages"] == []
    assert done["status"] == "completed", done
    assert done["iterations_used"] == 6 == len(done["submitted_inference_job_ids"])
    assert done["final_text"].startswith("According to the Narrative.io documentation")
    assert done["usage"]["prompt_tokens"] == 5 * 150 + 169
    stream = await rs.messages(conversation["id"])
    assert stream["current_version"] == 12
    roles = [m["role"] for m in stream["messages"]]
    assert roles == ["user", *(["assistant", "tool"] * 5), "assistant"]
    first_result = stream["messages"][2]["content_blocks"][0]
    assert first_result["tool_use_id"] == "tooluse_s0" and first_result["is_error"] is False
    assert "Rate limiting" in str(first_result["content"])
    committed = [m["content_blocks"] for m in stream["messages"][1:11]]
    assert committed == [t["content_blocks"] for t in live]  # de-duplicable by tool_use_id
    requests = rs.bedrock.requests_for(question)
    names = [t["toolSpec"]["name"] for t in requests[0].body["toolConfig"]["tools"]]
    assert names == [DOCS_SEARCH]
    assert requests[0].body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert "toolChoice" not in requests[1].body["toolConfig"]
    assert [m["role"] for m in requests[-1].body["messages"]] == ["user"] + [
        "assistant",
        "user",
    ] * 5


async def test_example_3_pause_and_resume(rs: RunnerSuite) -> None:
    question = unique("Find me a meeting time for tomorrow afternoon.")
    call_id = "tooluse_DWXPKZ50JDGib5GmShyUgJ"
    rs.bedrock.on(
        question,
        fb.tool_uses((call_id, "confirm_booking", {"proposed_slot": "tomorrow afternoon"})),
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
    assert run["tool_choice"] == {
        "kind": "specific_tool",
        "name": "confirm_booking",
        "mcp_alias": None,
    }
    paused = await rs.wait_run(run["id"])
    assert paused["status"] == "requires_action", paused
    assert paused["iterations_used"] == 1 and paused["final_text"] is None
    assert paused["pending_tool_calls"] == [
        {
            "tool_use_id": call_id,
            "name": "confirm_booking",
            "arguments": {"proposed_slot": "tomorrow afternoon"},
            "kind": "caller",
            "server_alias": None,
        }
    ]
    assert (await rs.conversation(conversation["id"]))["version"] == 2
    (first,) = rs.bedrock.requests_for(question)
    assert first.body["toolConfig"]["toolChoice"] == {"tool": {"name": "confirm_booking"}}
    assert first.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "confirm_booking"

    # A user message while tool outputs are awaited is a version conflict that says why.
    blocked = await rs.post_run(conversation["id"], expected_version=2)
    assert blocked.status_code == 409 and "tool" in blocked.json()["detail"].lower()

    outputs = [
        {"tool_use_id": call_id, "content": "User confirmed the proposed slot.", "is_error": False}
    ]
    resumed = await rs.start_run(
        conversation["id"],
        expected_version=2,
        payload={"kind": "tool_outputs", "outputs": outputs},
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
                "toolUseId": call_id,
                "content": [{"text": "User confirmed the proposed slot."}],
                "status": "success",
            }
        }
    ]
    stream = await rs.messages(conversation["id"], since=2)
    assert stream["current_version"] == 4
    assert [m["role"] for m in stream["messages"]] == ["tool", "assistant"]
    assert stream["messages"][0]["content_blocks"] == [
        {
            "type": "tool_result",
            "tool_use_id": call_id,
            "is_error": False,
            "content": [{"type": "text", "text": "User confirmed the proposed slot."}],
            "approval": None,
        }
    ]


async def test_example_4_structured_output(rs: RunnerSuite) -> None:
    question = unique("User u-123 logged in and stayed for 1800 seconds.")
    answer = {"event": {"type": "login", "user_id": "u-123", "session_duration_seconds": 1800}}
    rs.bedrock.on(question, fb.json_text(answer))
    conversation = await rs.create_conversation(
        name="event logger",
        defaults=example_defaults(max_tokens=1024, output_format_schema=EXAMPLE_4_SCHEMA),
    )
    assert conversation["defaults"]["output_format_schema"] == EXAMPLE_4_SCHEMA
    run = await rs.start_run(conversation["id"], question)
    assert run["effective_config"]["output_format_schema"] == EXAMPLE_4_SCHEMA
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] is None and done["final_structured_output"] == answer
    assert done["iterations_used"] == 1
    (request,) = rs.bedrock.requests_for(question)
    structure = request.body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(structure["schema"]) == EXAMPLE_4_SCHEMA
