"""Starting runs: idempotency, compare-and-swap, and the checks on tool outputs."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from agents.v1 import message_pb2, run_pb2

from tests.blocks import text, tool_use

from .conftest import Suite
from .problems import assert_problem


async def test_idempotent_retry_returns_the_original_run(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    op = str(uuid.uuid4())
    first = await suite.start_run(conversation["id"], client_op_id=op)
    again = await suite.start_run(
        conversation["id"],
        client_op_id=op,
        payload={"kind": "user_message", "text": "something else"},
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    # The same client_op_id on another conversation is another run.
    other = await suite.create_conversation()
    elsewhere = await suite.start_run(other["id"], client_op_id=op)
    assert elsewhere.status_code == 202 and elsewhere.json()["id"] != first.json()["id"]


async def test_twenty_concurrent_identical_posts_create_one_run(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    op = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(suite.start_run(conversation["id"], client_op_id=op) for _ in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    assert len({r.json()["id"] for r in responses}) == 1


async def test_concurrent_different_ops_start_exactly_one_run(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    responses = await asyncio.gather(*(suite.start_run(conversation["id"]) for _ in range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 9, codes


async def test_stale_version_is_a_conflict(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    body = assert_problem(
        await suite.start_run(conversation["id"], expected_version=3), 409, "version-conflict"
    )
    assert "3" in body["detail"] and "0" in body["detail"]


async def test_a_pending_run_blocks_the_next_one(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    run = (await suite.start_run(conversation["id"])).json()
    body = assert_problem(await suite.start_run(conversation["id"]), 409, "version-conflict")
    assert run["id"] in body["detail"] or "pending" in body["detail"].lower()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"client_op_id": "not-a-uuid"}, "client_op_id"),
        ({"client_op_id": ""}, "client_op_id"),
        ({"expected_version": -1}, "expected_version"),
        ({"payload": {"kind": "user_message", "text": ""}}, "text"),
        ({"payload": {"text": "no kind"}}, "kind"),
        ({"payload": {"kind": "telepathy"}}, "kind"),
    ],
)
async def test_start_run_body_is_validated(suite: Suite, change: dict, detail: str) -> None:
    conversation = await suite.create_conversation()
    response = await suite.start_run(conversation["id"], **change)
    assert_problem(response, 400, "invalid-request", detail_has=detail)


@pytest.mark.parametrize("missing", ["client_op_id", "expected_version", "payload"])
async def test_start_run_required_fields(suite: Suite, missing: str) -> None:
    conversation = await suite.create_conversation()
    body = {
        "client_op_id": str(uuid.uuid4()),
        "expected_version": 0,
        "payload": {"kind": "user_message", "text": "hi"},
    }
    del body[missing]
    response = await suite.http.post(
        f"/agents/conversations/{conversation['id']}/runs", json=body, headers=suite.headers()
    )
    assert_problem(response, 400, "invalid-request", detail_has=missing)


async def test_tool_outputs_without_a_paused_run(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    response = await suite.start_run(
        conversation["id"],
        payload={"kind": "tool_outputs", "outputs": [{"tool_use_id": "t1", "content": "x"}]},
    )
    assert_problem(response, 409, "no-pending-tool-calls")


async def test_tool_outputs_are_checked_against_the_paused_run(fresh_suite: Suite) -> None:
    suite = fresh_suite
    conversation = await suite.create_conversation(
        defaults={
            "model": "anthropic.claude-opus-4.6",
            "data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185",
            "tools": [{"name": "ask_user"}, {"name": "confirm"}],
            "mcp_servers": [{"alias": "docs", "url": "https://docs.test/mcp"}],
        }
    )
    run = (await suite.start_run(conversation["id"])).json()
    await suite.claim()
    paused = run_pb2.Run(
        status=run_pb2.RUN_STATUS_REQUIRES_ACTION,
        iterations_used=2,
        usage=run_pb2.Usage(),
        submitted_inference_job_ids=["j1", "j2"],
        pending_tool_calls=[
            run_pb2.PendingToolCall(tool_use_id="c1", name="ask_user"),
            run_pb2.PendingToolCall(tool_use_id="c2", name="confirm"),
        ],
    )
    await suite.commit(
        run["id"],
        paused,
        message_pb2.Message(
            role=message_pb2.ROLE_ASSISTANT, content_blocks=[tool_use("m1", "docs-search", q="x")]
        ),
        message_pb2.Message(
            role=message_pb2.ROLE_TOOL,
            content_blocks=[
                message_pb2.ContentBlock(
                    tool_result=message_pb2.ToolResultBlock(tool_use_id="m1", content=[text("hit")])
                )
            ],
        ),
        message_pb2.Message(
            role=message_pb2.ROLE_ASSISTANT,
            content_blocks=[
                tool_use("c1", "ask_user", q="?"),
                tool_use("m2", "docs-search", q="y"),
                tool_use("c2", "confirm"),
            ],
        ),
    )
    version = (
        await suite.http.get(f"/agents/conversations/{conversation['id']}", headers=suite.headers())
    ).json()["version"]
    assert version == 4

    def outputs(*ids: str) -> dict:
        return {
            "kind": "tool_outputs",
            "outputs": [{"tool_use_id": i, "content": "ok", "is_error": False} for i in ids],
        }

    cases = [
        (outputs("c1", "nope"), "unknown-tool-use-id", "nope"),
        (outputs("c1", "m2"), "not-a-client-tool-call", "m2"),
        (outputs("c1"), "incomplete-tool-outputs", "c2"),
        (outputs("c1", "c2", "c2"), "incomplete-tool-outputs", "c2"),
    ]
    for payload, slug, detail in cases:
        response = await suite.start_run(
            conversation["id"], expected_version=version, payload=payload
        )
        assert_problem(response, 400, slug, detail_has=detail)

    declined = {
        "kind": "tool_outputs",
        "outputs": [
            {"tool_use_id": "c2", "content": "declined", "is_error": True},
            {"tool_use_id": "c1", "content": "tomorrow"},
        ],
    }
    response = await suite.start_run(conversation["id"], expected_version=version, payload=declined)
    assert response.status_code == 202, response.text
    claimed = await suite.claim()
    results = [b.tool_result for b in claimed.input.content_blocks]
    assert {(r.tool_use_id, r.is_error) for r in results} == {("c1", False), ("c2", True)}
