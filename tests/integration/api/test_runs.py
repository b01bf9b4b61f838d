"""Starting runs: request checks, config merge, tool choice, idempotency, compare-and-swap."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from agents.v1 import conversation_service_pb2 as svc
from agents.v1 import run_pb2
from google.protobuf import json_format

from services.common.grpc_server import HTTP_STATUS_KEY
from tests.blocks import assistant, text

from .conftest import Api, defaults, expect_error

TEXT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
CATALOGUE = defaults(
    tools=[{"name": "confirm_booking"}],
    mcp_servers=[
        {"alias": "docs", "url": "https://docs.test/mcp"},
        {"alias": "kb", "url": "https://kb.test/mcp", "tools": [{"name": "search"}]},
    ],
)


async def start_call(
    api: Api, who: tuple[int, int], conversation_id: str, **body: object
) -> tuple[run_pb2.Run, str | None]:
    """A StartRun and the HTTP status its initial metadata asks for (None: the default 202)."""
    call = api.public.StartRun(api.start_request(conversation_id, **body), metadata=api.auth(who))
    run = await call
    status = dict(await call.initial_metadata() or ()).get(HTTP_STATUS_KEY)
    return run, status


def as_dict(message: object) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)  # type: ignore


async def test_new_run_is_pending_with_effective_config(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who, name="hello world", defaults=defaults(max_tokens=1024))
    run, status = await start_call(api, who, conversation.id)
    assert status is None
    assert run.status == run_pb2.RUN_STATUS_PENDING and uuid.UUID(run.id).version == 4
    assert (run.conversation_id, run.company_id, run.user_id) == (conversation.id, *who)
    assert as_dict(run.effective_config) == {
        **defaults(),
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 1024,
        "temperature": 0.0,
        "output_format_schema": TEXT_SCHEMA,
        "stream": True,
        "prompt_caching": True,
    }
    for field in (
        "tool_choice",
        "iterations_used",
        "usage",
        "final_text",
        "final_structured_output",
        "error",
        "completed_at",
    ):
        assert not run.HasField(field), field
    assert list(run.submitted_inference_job_ids) == [] and list(run.pending_tool_calls) == []
    assert run.HasField("started_at")
    assert run.live.current_name == "hello world" and list(run.live.messages) == []
    assert await api.get_run(who, run.id) == run


async def test_unnamed_conversation_has_null_current_name(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id)
    assert run.HasField("live") and not run.live.HasField("current_name")


async def test_replay_returns_the_original_run_with_200(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    op = str(uuid.uuid4())
    first, first_status = await start_call(api, who, conversation.id, client_op_id=op)
    again, again_status = await start_call(
        api,
        who,
        conversation.id,
        client_op_id=op,
        expected_version=7,
        payload={"user_message": {"text": "something else"}},
    )
    assert (first_status, again_status) == (None, "200")
    assert again == first
    upper, _ = await start_call(api, who, conversation.id, client_op_id=op.upper())
    assert upper.id == first.id  # a UUID is a UUID, whatever its case
    other = await api.create(who)
    elsewhere, status = await start_call(api, who, other.id, client_op_id=op)
    assert status is None and elsewhere.id != first.id


async def test_replay_of_an_ended_run_at_the_current_version_returns_it(api: Api) -> None:
    """A replay whose body would start a run now (its run ended, expected_version is current)
    still answers with its run (the run's unique client_op_id refuses a second one), and the
    conversation stays as that run left it."""
    who = api.user()
    conversation = await api.create(who)
    op = str(uuid.uuid4())
    first, _ = await start_call(api, who, conversation.id, client_op_id=op)
    await api.claim(first.id)
    done = run_pb2.Run(status=run_pb2.RUN_STATUS_COMPLETED, iterations_used=1, final_text="4")
    version = await api.commit(first.id, done, assistant(text("4")))
    again, status = await start_call(
        api, who, conversation.id, client_op_id=op, expected_version=version
    )
    assert status == "200" and again.id == first.id
    assert again.status == run_pb2.RUN_STATUS_COMPLETED
    after = await api.public.GetConversation(
        svc.GetConversationRequest(id=conversation.id), metadata=api.auth(who)
    )
    assert after.version == version
    fresh, status = await start_call(api, who, conversation.id, expected_version=version)
    assert status is None and fresh.id != first.id  # and the conversation was left startable


async def test_twenty_concurrent_identical_requests_create_one_run(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    op = str(uuid.uuid4())
    results = await asyncio.gather(
        *(start_call(api, who, conversation.id, client_op_id=op) for _ in range(20))
    )
    assert len({run.id for run, _ in results}) == 1
    assert sorted(str(status) for _, status in results) == ["200"] * 19 + ["None"]


async def test_concurrent_different_requests_start_exactly_one(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    results = await asyncio.gather(
        *(api.start(who, conversation.id) for _ in range(10)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, run_pb2.Run)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) == 1 and len(refused) == 9, results
    assert all(e.code() == grpc.StatusCode.ABORTED for e in refused)


async def test_stale_version_is_a_conflict(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    error, info = await expect_error(
        api.start(who, conversation.id, expected_version=3), "VersionConflict"
    )
    assert error.code() == grpc.StatusCode.ABORTED
    assert "3" in error.details() and "0" in error.details()
    assert (info.metadata["expected_version"], info.metadata["current_version"]) == ("3", "0")


async def test_a_pending_run_blocks_the_next(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id)
    error, info = await expect_error(api.start(who, conversation.id), "VersionConflict")
    assert run.id in error.details() and "pending" in error.details()
    assert info.metadata["run_id"] == run.id and info.metadata["run_status"] == "pending"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_op_id": "not-a-uuid"}, "client_op_id"),
        ({"client_op_id": ""}, "client_op_id"),
        ({"expected_version": -1}, "expected_version"),
        ({"payload": {"user_message": {"text": ""}}}, "text"),
        ({"payload": {}}, "kind"),
    ],
)
async def test_start_run_request_is_validated(api: Api, change: dict, field: str) -> None:
    who = api.user()
    conversation = await api.create(who)
    error, _ = await expect_error(api.start(who, conversation.id, **change), "InvalidRequest")
    assert field in error.details()


@pytest.mark.parametrize("missing", ["expected_version", "payload"])
async def test_start_run_required_fields(api: Api, missing: str) -> None:
    who = api.user()
    conversation = await api.create(who)
    request = api.start_request(conversation.id)
    request.ClearField(missing)
    error, _ = await expect_error(
        api.public.StartRun(request, metadata=api.auth(who)), "InvalidRequest"
    )
    assert missing in error.details()


async def test_override_is_merged_sparsely(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who, defaults=dict(CATALOGUE, max_tokens=1024))
    run = await api.start(
        who,
        conversation.id,
        config_override={
            "max_iterations": 8,
            "temperature": 0.5,
            "compute_pool_id": "pool-1",
            "mcp_servers": {"values": []},
        },
    )
    config = as_dict(run.effective_config)
    assert (
        config["max_iterations"],
        config["temperature"],
        config["compute_pool_id"],
        config["max_tokens"],
    ) == (8, 0.5, "pool-1", 1024)
    assert "mcp_servers" not in config  # replaced by an empty list
    assert [t["name"] for t in config["tools"]] == ["confirm_booking"]


async def test_override_schema_switches_modes(api: Api) -> None:
    who = api.user()
    structured = {"type": "object", "properties": {"n": {"type": "integer"}}}
    conversation = await api.create(who, defaults=defaults(output_format_schema=structured))
    run = await api.start(who, conversation.id, config_override={"output_format_schema": {}})
    assert as_dict(run.effective_config)["output_format_schema"] == TEXT_SCHEMA


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"model": "nope"}, "UnknownModel"),
        ({"data_plane_id": "nope"}, "UnknownDataPlane"),
        ({"max_iterations": -1}, "InvalidRequest"),
        ({"tools": {"values": [{"name": "bad-name"}]}}, "InvalidCallerToolName"),
        (
            {"mcp_servers": {"values": [{"alias": "_", "url": "https://x.test"}]}},
            "InvalidToolAlias",
        ),
        ({"output_format_schema": {"allOf": []}}, "UnsupportedOutputSchema"),
    ],
)
async def test_override_is_validated(api: Api, override: dict, code: str) -> None:
    who = api.user()
    conversation = await api.create(who)
    error, _ = await expect_error(api.start(who, conversation.id, config_override=override), code)
    assert "config_override" in error.details()


@pytest.mark.parametrize(
    ("tool_choice", "code"),
    [
        ({"specific_tool": {"name": "nope"}}, "UnknownToolChoiceName"),
        ({"specific_tool": {"name": "search", "mcp_alias": "web"}}, "UnknownToolChoiceMcpAlias"),
        ({"specific_tool": {"name": "not_allowed", "mcp_alias": "kb"}}, "UnknownToolChoiceName"),
        ({}, "InvalidRequest"),
    ],
)
async def test_tool_choice_is_checked(api: Api, tool_choice: dict, code: str) -> None:
    who = api.user()
    conversation = await api.create(who, defaults=CATALOGUE)
    await expect_error(api.start(who, conversation.id, tool_choice=tool_choice), code)


async def test_tool_choice_is_checked_against_the_override(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who, defaults=CATALOGUE)
    await expect_error(
        api.start(
            who,
            conversation.id,
            tool_choice={"any": {}},
            config_override={"tools": {"values": []}, "mcp_servers": {"values": []}},
        ),
        "InvalidRequest",
    )
    await expect_error(
        api.start(
            who,
            conversation.id,
            tool_choice={"specific_tool": {"name": "confirm_booking"}},
            config_override={"tools": {"values": [{"name": "other"}]}},
        ),
        "UnknownToolChoiceName",
    )


@pytest.mark.parametrize(
    "tool_choice",
    [
        {"auto": {}},
        {"any": {}},
        {"specific_tool": {"name": "confirm_booking"}},
        {"specific_tool": {"name": "anything", "mcp_alias": "docs"}},
        {"specific_tool": {"name": "search", "mcp_alias": "kb"}},
    ],
)
async def test_valid_tool_choices_are_kept(api: Api, tool_choice: dict) -> None:
    who = api.user()
    conversation = await api.create(who, defaults=CATALOGUE)
    run = await api.start(who, conversation.id, tool_choice=tool_choice)
    assert as_dict(run.tool_choice) == tool_choice
    assert (await api.get_run(who, run.id)).tool_choice == run.tool_choice


async def test_tool_outputs_without_a_paused_run(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    error, _ = await expect_error(
        api.start(
            who,
            conversation.id,
            payload={"tool_outputs": {"outputs": [{"tool_use_id": "t1", "content": "x"}]}},
        ),
        "NoPendingToolCalls",
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
