"""Approval of server-side tool calls, through the gateway against a real SDK MCP server that
counts its calls: a held call pauses the run (kind approval), an approved one runs exactly once
in the resuming run (also under 20 concurrent resumes), a denied one reaches the model as an
error with the reason, and the decision, who made it and when stay in the message stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from tests.fakes import bedrock as fb
from tests.fakes import mcp_servers
from tests.spec_examples import BOOKING_TOOL, example_defaults

from .runner_suite import RunnerSuite, running_runner_suite, start_runner, unique
from .sse import read_events

DELETE, READ = "db-delete_record", "db-read_record"


@pytest_asyncio.fixture(scope="module")
async def records() -> AsyncIterator[tuple[mcp_servers.RecordsServer, str]]:
    server = mcp_servers.RecordsServer()
    async with mcp_servers.serve(server.server()) as url:
        try:
            yield server, url
        finally:
            server.release_all()


def db(url: str, policy: Any = "always") -> dict[str, Any]:
    return {"alias": "db", "url": url, "require_approval": policy}


async def pause_on(
    rs: RunnerSuite, url: str, question: str, *calls: tuple[str, str, dict[str, Any]], **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A conversation whose first run ends requires_action on `calls`: (conversation, run)."""
    rs.bedrock.on(question, fb.tool_uses(*calls))
    conversation = await rs.create_conversation(defaults=example_defaults(**kw))
    paused = await rs.wait_run((await rs.start_run(conversation["id"], question))["id"])
    assert paused["status"] == "requires_action", paused
    return conversation, paused


async def resume(
    rs: RunnerSuite, conversation: dict[str, Any], paused: dict[str, Any], **payload: Any
) -> Any:
    version = (await rs.conversation(conversation["id"]))["version"]
    return await rs.post_run(
        conversation["id"],
        expected_version=version,
        payload={"kind": "tool_outputs", "outputs": [], **payload},
    )


async def test_an_approved_call_runs_once_and_its_decision_is_kept(
    rs: RunnerSuite, records: tuple[mcp_servers.RecordsServer, str]
) -> None:
    server, url = records
    key, question = uuid.uuid4().hex, unique("Delete that record.")
    conversation, paused = await pause_on(
        rs, url, question, ("d1", DELETE, {"key": key}), mcp_servers=[db(url)]
    )
    (pending,) = paused["pending_tool_calls"]
    assert pending == {
        "tool_use_id": "d1",
        "name": DELETE,
        "arguments": {"key": key},
        "kind": "approval",
        "server_alias": "db",
    }
    assert server.count("delete_record", key) == 0  # held: never made
    paused_events = await read_events(rs, paused["id"])
    assert "tool.call" not in {e["type"] for e in paused_events}

    rs.bedrock.on(question, fb.text("It is gone."))
    r = await resume(
        rs,
        conversation,
        paused,
        approvals=[{"tool_use_id": "d1", "decision": "approve", "reason": "ok by me"}],
    )
    assert r.status_code == 202, r.text
    done = await rs.wait_run(r.json()["id"])
    assert done["status"] == "completed" and done["final_text"] == "It is gone.", done
    assert server.count("delete_record", key) == 1
    events = await read_events(rs, done["id"])
    call = next(e for e in events if e["type"] == "tool.call")
    assert (call["tool_use_id"], call["kind"]) == ("d1", "mcp")
    result = next(e for e in events if e["type"] == "tool.result")
    assert result["tool_use_id"] == "d1" and result["content"][0]["text"] == f"deleted {key}"
    followed = rs.bedrock.requests_for(question)[-1].body["messages"]
    told = followed[-1]["content"][0]["toolResult"]
    assert told["toolUseId"] == "d1" and told["content"][0] == {"text": f"deleted {key}"}

    stream = await rs.messages(conversation["id"], since=2)  # after the paused run's messages
    tool_turn = next(m for m in stream["messages"] if m["role"] == "tool")
    (block,) = tool_turn["content_blocks"]
    assert block["tool_use_id"] == "d1" and block["is_error"] is False
    assert block["approval"] == {
        "decision": "approve",
        "reason": "ok by me",
        "company_id": 1,
        "user_id": 1,
        "decided_at": done["started_at"],
    }


async def test_a_denied_call_reaches_the_model_as_an_error_with_the_reason(
    rs: RunnerSuite, records: tuple[mcp_servers.RecordsServer, str]
) -> None:
    server, url = records
    key, question = uuid.uuid4().hex, unique("Delete it, please.")
    conversation, paused = await pause_on(
        rs, url, question, ("d1", DELETE, {"key": key}), mcp_servers=[db(url)]
    )
    rs.bedrock.on(question, fb.text("Understood, I will not."))
    r = await resume(
        rs,
        conversation,
        paused,
        approvals=[{"tool_use_id": "d1", "decision": "deny", "reason": "not today"}],
    )
    done = await rs.wait_run(r.json()["id"])
    assert done["status"] == "completed", done
    assert server.count("delete_record", key) == 0
    (told,) = [
        b["toolResult"]
        for b in rs.bedrock.requests_for(question)[-1].body["messages"][-1]["content"]
        if "toolResult" in b
    ]
    assert told["status"] == "error" and "not today" in told["content"][0]["text"]
    stream = await rs.messages(conversation["id"], since=2)
    (block,) = stream["messages"][0]["content_blocks"]  # the resuming run's input turn
    assert block["is_error"] is True and "not today" in block["content"][0]["text"]
    assert block["approval"]["decision"] == "deny" and block["approval"]["reason"] == "not today"
    assert block["approval"]["decided_at"] == done["started_at"]


async def test_a_list_holds_only_its_tools_and_every_pending_call_must_be_answered_rightly(
    rs: RunnerSuite, records: tuple[mcp_servers.RecordsServer, str]
) -> None:
    server, url = records
    key, question = uuid.uuid4().hex, unique("Read it, delete it, confirm.")
    conversation, paused = await pause_on(
        rs,
        url,
        question,
        ("r1", READ, {"key": key}),
        ("d1", DELETE, {"key": key}),
        ("c1", "confirm_booking", {"proposed_slot": "now"}),
        mcp_servers=[db(url, ["delete_record"])],
        tools=[BOOKING_TOOL],
    )
    assert server.count("read_record", key) == 1  # not on the list: ran at once
    assert [
        (p["tool_use_id"], p["kind"], p["server_alias"]) for p in paused["pending_tool_calls"]
    ] == [
        ("d1", "approval", "db"),
        ("c1", "caller", None),
    ]
    output = {"tool_use_id": "c1", "content": "confirmed"}
    approve = {"tool_use_id": "d1", "decision": "approve"}
    refused = {
        "tool-call-awaits-approval": {"outputs": [output, {**output, "tool_use_id": "d1"}]},
        "not-an-approval-request": {
            "outputs": [output],
            "approvals": [approve, {**approve, "tool_use_id": "c1"}],
        },
        "incomplete-tool-outputs": {"outputs": [output]},
        "invalid-request": {"outputs": [output], "approvals": [{"tool_use_id": "d1"}]},
    }
    for slug, payload in refused.items():
        r = await resume(rs, conversation, paused, **payload)
        assert r.status_code == 400 and r.json()["type"].endswith(f"/{slug}"), (slug, r.text)
    maybe = await resume(
        rs, conversation, paused, outputs=[output], approvals=[{**approve, "decision": "maybe"}]
    )
    assert maybe.status_code == 400 and "decision" in maybe.text
    assert server.count("delete_record", key) == 0

    rs.bedrock.on(question, fb.text("Done."))
    r = await resume(rs, conversation, paused, outputs=[output], approvals=[approve])
    assert r.status_code == 202, r.text
    assert (await rs.wait_run(r.json()["id"]))["final_text"] == "Done."
    assert (server.count("read_record", key), server.count("delete_record", key)) == (1, 1)


@pytest.mark.parametrize(
    ("policy", "detail"),
    [("sometimes", "require_approval must be"), (["delete_record", "delete_record"], "twice")],
)
async def test_a_bad_policy_is_refused(rs: RunnerSuite, policy: Any, detail: str) -> None:
    r = await rs.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(mcp_servers=[db("https://db.example/mcp", policy)])},
        headers=rs.headers(),
    )
    assert r.status_code == 400 and detail in r.json()["detail"], r.text


async def test_twenty_concurrent_resumes_run_the_approved_call_once(
    rs: RunnerSuite, records: tuple[mcp_servers.RecordsServer, str]
) -> None:
    server, url = records
    key, question = uuid.uuid4().hex, unique("Delete, once.")
    conversation, paused = await pause_on(
        rs, url, question, ("d1", DELETE, {"key": key}), mcp_servers=[db(url)]
    )
    rs.bedrock.on(question, fb.text("Deleted once."))
    shared = str(uuid.uuid4())
    body = {
        "kind": "tool_outputs",
        "outputs": [],
        "approvals": [{"tool_use_id": "d1", "decision": "approve"}],
    }
    answers = await asyncio.gather(
        *(
            rs.post_run(
                conversation["id"],
                expected_version=2,
                client_op_id=shared if i % 2 else str(uuid.uuid4()),
                payload=body,
            )
            for i in range(20)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    accepted = [a.json() for a in answers if a.status_code == 202]
    assert len(accepted) == 1, statuses
    assert {a.json()["id"] for a in answers if a.status_code == 200} <= {accepted[0]["id"]}
    assert set(statuses) <= {200, 202, 409}, statuses
    done = await rs.wait_run(accepted[0]["id"])
    assert done["final_text"] == "Deleted once."
    assert server.count("delete_record", key) == 1
    assert len(rs.bedrock.requests_for(question)) == 2  # the pause, and the one resume


async def test_a_resume_cancelled_before_it_ran_answers_its_approved_calls(
    make_database_url: Callable[[], Awaitable[str]],
    records: tuple[mcp_servers.RecordsServer, str],
) -> None:
    server, url = records
    async with running_runner_suite(
        await make_database_url(), with_runner=False, mcp_allow_private_networks=True
    ) as rs:
        runner = await start_runner(rs.settings)
        try:
            key, question = uuid.uuid4().hex, unique("Delete later.")
            conversation, paused = await pause_on(
                rs, url, question, ("d1", DELETE, {"key": key}), mcp_servers=[db(url)]
            )
        finally:
            await runner.stop()
        r = await resume(
            rs, conversation, paused, approvals=[{"tool_use_id": "d1", "decision": "approve"}]
        )
        cancelled = await rs.http.post(
            f"/agents/runs/{r.json()['id']}/cancel", headers=rs.headers()
        )
        assert cancelled.json()["status"] == "failed", cancelled.text
        stream = await rs.messages(conversation["id"], since=2)
        assert [m["role"] for m in stream["messages"]] == ["tool"]  # d1's result
        (block,) = stream["messages"][0]["content_blocks"]
        assert block["tool_use_id"] == "d1" and block["is_error"] is True
        assert "cancelled before it ran" in block["content"][0]["text"]
        assert block["approval"]["decision"] == "approve"
        assert server.count("delete_record", key) == 0
        # The conversation stays usable: every tool_use has its result.
        runner = await start_runner(rs.settings)
        try:
            follow = unique("Anything else?")
            rs.bedrock.on(question, fb.text("Nothing."))
            version = (await rs.conversation(conversation["id"]))["version"]
            r = await rs.post_run(
                conversation["id"],
                expected_version=version,
                payload={"kind": "user_message", "text": follow},
            )
            assert (await rs.wait_run(r.json()["id"]))["final_text"] == "Nothing."
        finally:
            await runner.stop()
