"""The spec's examples, through the REST gateway, with the store's runner interface standing in
for the runner (which lands with the run executor) to move runs to their terminal states."""

from __future__ import annotations

import re

from agents.v1 import message_pb2, run_pb2, store_service_pb2
from google.protobuf import json_format, struct_pb2

from .conftest import DATA_PLANE, Suite, example_defaults
from tests.spec_examples import EXAMPLE_4_SCHEMA

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TEXT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
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
}


def text(value: str) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(text=message_pb2.TextBlock(text=value))


def tool_use(tool_use_id: str, name: str, **arguments: object) -> message_pb2.ContentBlock:
    args = struct_pb2.Struct()
    args.update(arguments)
    return message_pb2.ContentBlock(
        tool_use=message_pb2.ToolUseBlock(tool_use_id=tool_use_id, name=name, arguments=args)
    )


async def claim(suite: Suite) -> store_service_pb2.ClaimRunResponse:
    return await suite.store.ClaimRun(
        store_service_pb2.ClaimRunRequest(runner_id="test-runner", lease_seconds=30)
    )


async def commit(
    suite: Suite, run_id: str, run: run_pb2.Run, *turns: message_pb2.Message
) -> store_service_pb2.CommitRunResponse:
    return await suite.store.CommitRun(
        store_service_pb2.CommitRunRequest(
            run_id=run_id, runner_id="test-runner", run=run, turns=list(turns)
        )
    )


async def test_example_1_create_and_start_shapes(suite: Suite) -> None:
    conversation = await suite.create_conversation(
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
    }
    assert TIMESTAMP.match(conversation["created_at"])

    response = await suite.start_run(conversation["id"])
    assert response.status_code == 202, response.text
    run = response.json()
    assert set(run) == RUN_FIELDS
    assert run["status"] == "pending" and UUID.match(run["id"])
    assert run["conversation_id"] == conversation["id"]
    assert (run["company_id"], run["user_id"]) == (1, 1)
    assert TIMESTAMP.match(run["started_at"]) and run["completed_at"] is None
    for field in (
        "tool_choice",
        "iterations_used",
        "usage",
        "final_text",
        "final_structured_output",
        "error",
    ):
        assert run[field] is None, field
    assert run["submitted_inference_job_ids"] == [] and run["pending_tool_calls"] == []
    assert run["effective_config"] == {
        **example_defaults(),
        "compute_pool_id": None,
        "output_format_schema": TEXT_SCHEMA,
        "mcp_servers": [],
        "tools": [],
    }
    assert run["live"] == {"current_name": "hello world", "messages": []}

    polled = await suite.http.get(f"/agents/runs/{run['id']}", headers=suite.headers())
    assert polled.status_code == 200 and polled.json() == run


async def test_example_1_completed_run_and_message_stream(fresh_suite: Suite) -> None:
    suite = fresh_suite
    conversation = await suite.create_conversation(name="hello world")
    run = (await suite.start_run(conversation["id"])).json()

    claimed = await claim(suite)
    assert claimed.run.id == run["id"] and claimed.run.status == run_pb2.RUN_STATUS_RUNNING
    assert claimed.input.role == message_pb2.ROLE_USER
    assert (await suite.http.get(f"/agents/runs/{run['id']}", headers=suite.headers())).json()[
        "status"
    ] == "running"

    job = "e94c6eab-019f-4e96-bb47-049fa60e7988"
    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=1,
        final_text="4",
        usage=run_pb2.Usage(prompt_tokens=169, completion_tokens=8, total_tokens=177),
        submitted_inference_job_ids=[job],
    )
    committed = await commit(
        suite,
        run["id"],
        done,
        message_pb2.Message(role=message_pb2.ROLE_ASSISTANT, content_blocks=[text("4")]),
    )
    assert committed.version == 2

    final = (await suite.http.get(f"/agents/runs/{run['id']}", headers=suite.headers())).json()
    assert final["status"] == "completed" and final["final_text"] == "4"
    assert final["iterations_used"] == 1 and final["submitted_inference_job_ids"] == [job]
    assert final["usage"] == {"prompt_tokens": 169, "completion_tokens": 8, "total_tokens": 177}
    assert final["final_structured_output"] is None and final["error"] is None
    assert TIMESTAMP.match(final["completed_at"])

    stream = (
        await suite.http.get(
            f"/agents/conversations/{conversation['id']}/messages?since=0", headers=suite.headers()
        )
    ).json()
    assert stream["current_version"] == 2 and stream["next_since"] is None
    assert [(m["sequence_no"], m["role"], m["content_blocks"]) for m in stream["messages"]] == [
        (1, "user", [{"type": "text", "text": "What is 2 + 2?"}]),
        (2, "assistant", [{"type": "text", "text": "4"}]),
    ]
    since_1 = (
        await suite.http.get(
            f"/agents/conversations/{conversation['id']}/messages",
            params={"since": 1},
            headers=suite.headers(),
        )
    ).json()
    assert [m["sequence_no"] for m in since_1["messages"]] == [2]
    conversation = (
        await suite.http.get(f"/agents/conversations/{conversation['id']}", headers=suite.headers())
    ).json()
    assert conversation["version"] == 2

    # Future runs start with expected_version 2.
    stale = await suite.start_run(conversation["id"], expected_version=0)
    assert stale.status_code == 409
    assert (await suite.start_run(conversation["id"], expected_version=2)).status_code == 202


async def test_example_3_pause_and_resume(fresh_suite: Suite) -> None:
    suite = fresh_suite
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["proposed_slot"],
        "properties": {"proposed_slot": {"type": "string"}},
    }
    conversation = await suite.create_conversation(
        name="booking flow",
        defaults=example_defaults(
            max_iterations=5,
            tools=[
                {
                    "name": "confirm_booking",
                    "description": "Ask the user to confirm a proposed booking slot.",
                    "input_schema": schema,
                }
            ],
        ),
    )
    started = await suite.start_run(
        conversation["id"],
        payload={"kind": "user_message", "text": "Find me a meeting time for tomorrow afternoon."},
        tool_choice={"kind": "specific_tool", "name": "confirm_booking"},
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["tool_choice"] == {
        "kind": "specific_tool",
        "name": "confirm_booking",
        "mcp_alias": None,
    }

    await claim(suite)
    call_id = "tooluse_DWXPKZ50JDGib5GmShyUgJ"
    paused = run_pb2.Run(
        status=run_pb2.RUN_STATUS_REQUIRES_ACTION,
        iterations_used=1,
        usage=run_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        submitted_inference_job_ids=["3c90c3cc-0d44-4b50-8888-8dd25736052a"],
        pending_tool_calls=[
            run_pb2.PendingToolCall(
                tool_use_id=call_id,
                name="confirm_booking",
                arguments=json_format.ParseDict(
                    {"proposed_slot": "tomorrow afternoon"}, struct_pb2.Struct()
                ),
            )
        ],
    )
    await commit(
        suite,
        run["id"],
        paused,
        message_pb2.Message(
            role=message_pb2.ROLE_ASSISTANT,
            content_blocks=[
                tool_use(call_id, "confirm_booking", proposed_slot="tomorrow afternoon")
            ],
        ),
    )

    polled = (await suite.http.get(f"/agents/runs/{run['id']}", headers=suite.headers())).json()
    assert polled["status"] == "requires_action" and polled["final_text"] is None
    assert polled["pending_tool_calls"] == [
        {
            "tool_use_id": call_id,
            "name": "confirm_booking",
            "arguments": {"proposed_slot": "tomorrow afternoon"},
        }
    ]
    conv = (
        await suite.http.get(f"/agents/conversations/{conversation['id']}", headers=suite.headers())
    ).json()
    assert conv["version"] == 2

    # A user message while tool outputs are awaited is a version conflict that says why.
    blocked = await suite.start_run(conversation["id"], expected_version=2)
    assert blocked.status_code == 409 and "tool" in blocked.json()["detail"].lower()

    resumed = await suite.start_run(
        conversation["id"],
        expected_version=2,
        payload={
            "kind": "tool_outputs",
            "outputs": [
                {
                    "tool_use_id": call_id,
                    "content": "User confirmed the proposed slot.",
                    "is_error": False,
                }
            ],
        },
    )
    assert resumed.status_code == 202, resumed.text
    claimed = await claim(suite)
    assert claimed.run.id == resumed.json()["id"]
    assert claimed.input.role == message_pb2.ROLE_TOOL
    assert claimed.input.content_blocks[0].tool_result.tool_use_id == call_id
    assert [m.sequence_no for m in claimed.history] == [1, 2]
    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=1,
        final_text="Great news!",
        usage=run_pb2.Usage(total_tokens=1),
        submitted_inference_job_ids=["a1b2c3d4-0000-4000-8000-000000000000"],
    )
    assert (
        await commit(
            suite,
            resumed.json()["id"],
            done,
            message_pb2.Message(
                role=message_pb2.ROLE_ASSISTANT, content_blocks=[text("Great news!")]
            ),
        )
    ).version == 4

    stream = (
        await suite.http.get(
            f"/agents/conversations/{conversation['id']}/messages",
            params={"since": 2},
            headers=suite.headers(),
        )
    ).json()
    assert [m["role"] for m in stream["messages"]] == ["tool", "assistant"]
    assert stream["messages"][0]["content_blocks"] == [
        {
            "type": "tool_result",
            "tool_use_id": call_id,
            "is_error": False,
            "content": [{"type": "text", "text": "User confirmed the proposed slot."}],
        }
    ]


async def test_example_4_structured_schema_is_echoed(suite: Suite) -> None:
    schema = EXAMPLE_4_SCHEMA
    conversation = await suite.create_conversation(
        name="event logger", defaults=example_defaults(output_format_schema=schema)
    )
    assert conversation["defaults"]["output_format_schema"] == schema
    run = (await suite.start_run(conversation["id"])).json()
    assert run["effective_config"]["output_format_schema"] == schema


async def test_example_2_mcp_servers_are_echoed(suite: Suite) -> None:
    server = {
        "alias": "docs",
        "url": "https://docs.narrative.io/mcp",
        "description": "Narrative.io documentation MCP server",
    }
    conversation = await suite.create_conversation(
        name="docs search", defaults=example_defaults(max_iterations=8, mcp_servers=[server])
    )
    assert conversation["defaults"]["mcp_servers"] == [{**server, "tools": []}]
    assert conversation["defaults"]["data_plane_id"] == DATA_PLANE
