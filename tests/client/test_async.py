"""`AsyncParley` against the same real server: the same operations, driven by asyncio."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from parley_client import (
    AsyncParley,
    ConflictError,
    NotFoundError,
    BadRequestError,
    RunCompletedEvent,
    RunEvent,
    Run,
    RunIdConflict,
    RunStatus,
    StartOutcome,
    ToolChoice,
    TurnEvent,
    VersionConflict,
    WaitTimeout,
)
from tests.fakes.tcp_proxy import Proxy

from .conftest import BOOKING_TOOL, Holding, Server, example_config


@pytest_asyncio.fixture
async def aclient(parley_server: Server, user: int) -> AsyncIterator[AsyncParley]:
    async with AsyncParley(parley_server.url, parley_server.token(user)) as parley:
        yield parley


@pytest_asyncio.fixture
async def aproxied(parley_server: Server, proxy: Proxy, user: int) -> AsyncIterator[AsyncParley]:
    async with AsyncParley(proxy.url, parley_server.token(user), max_retries=3) as parley:
        yield parley


async def test_conversations_and_messages(aclient: AsyncParley) -> None:
    made = [
        await aclient.conversations.create(name=f"a{i}", defaults=example_config())
        for i in range(3)
    ]
    page = await aclient.conversations.list(per_page=2)
    assert (page.total_records, page.total_pages, page.next_page) == (3, 2, 2)
    walked = [c.id async for c in aclient.conversations.iter_all(per_page=2)]
    assert walked == [c.id for c in reversed(made)]
    assert (await aclient.conversations.get(made[0].id)).name == "a0"
    run = await aclient.runs.start(made[0].id, "hello async")
    done = await aclient.runs.wait(run.id, timeout=30)
    assert done.final_text == "You said: hello async"
    (job,) = await aclient.runs.inference_jobs(run.id)
    assert job.run_id == run.id and job.iteration == 1 and "hello async" in job.request_json
    texts = [m.text async for m in aclient.messages.iter_all(made[0].id, per_page=1)]
    assert texts == ["hello async", "You said: hello async"]
    with pytest.raises(VersionConflict):
        await aclient.runs.start(made[0].id, "stale", expected_version=0)
    with pytest.raises(NotFoundError):
        await aclient.runs.get(str(uuid.uuid4()))


async def test_a_lost_start_answer_is_retried_once_with_the_same_key(
    aproxied: AsyncParley, proxy: Proxy
) -> None:
    conversation = await aproxied.conversations.create(defaults=example_config())
    path = f"/agents/conversations/{conversation.id}/runs"
    proxy.drop_response("POST", path)
    run = await aproxied.runs.start(conversation.id, "lost", expected_version=0)
    assert run.start_outcome == "duplicate"
    assert {r.json()["client_op_id"] for r in proxy.seen("POST", path)} == {run.client_op_id}  # type: ignore[index]
    await aproxied.runs.wait(run.id)
    assert len((await aproxied.messages.list(conversation.id)).messages) == 2


async def test_stream_resumes_after_a_cut_connection(
    aproxied: AsyncParley, aclient: AsyncParley, proxy: Proxy, holding: Holding
) -> None:
    key = holding.gates.key()
    conversation = await aproxied.conversations.create(defaults=holding.config())
    run = await aproxied.runs.start(
        conversation.id, key, tool_choice=ToolChoice.tool("hold", "gate")
    )
    received: list[RunEvent] = []
    async with aproxied.runs.stream(run.id) as events:
        async for event in events:
            received.append(event)
            if isinstance(event, TurnEvent) and event.turn.role == "assistant":
                break
        await asyncio.to_thread(holding.gates.wait_arrived, key)
        assert proxy.cut() >= 1
        holding.gates.open(key)
        await aclient.runs.wait(run.id, timeout=30)
        received += [event async for event in events]
    everything = [event async for event in aclient.runs.stream(run.id)]
    assert [(e.seq, e.type) for e in received] == [(e.seq, e.type) for e in everything]
    assert isinstance(received[-1], RunCompletedEvent)
    assert len(proxy.seen("GET", f"/agents/runs/{run.id}/events")) == 2


async def test_wait_timeout_cancel_and_caller_tools(aclient: AsyncParley, holding: Holding) -> None:
    key = holding.gates.key()
    conversation = await aclient.conversations.create(defaults=holding.config())
    run = await aclient.runs.start(
        conversation.id, key, tool_choice=ToolChoice.tool("hold", "gate")
    )
    await asyncio.to_thread(holding.gates.wait_arrived, key)
    with pytest.raises(WaitTimeout):
        await aclient.runs.wait(run.id, timeout=0.2)
    cancelled = await aclient.runs.cancel(run.id)
    assert cancelled.cancelled
    assert (await aclient.runs.cancel(run.id)).cancelled
    holding.gates.open(key)
    paused = await aclient.runs.wait(
        (
            await aclient.runs.start(
                conversation.id, "book it", tool_choice=ToolChoice.tool(BOOKING_TOOL.name)
            )
        ).id
    )
    assert paused.status == "requires_action"
    with pytest.raises(ConflictError):
        await aclient.runs.cancel(paused.id)
    (call,) = paused.caller_tool_calls
    resumed = await aclient.runs.submit_tool_outputs(paused, {call.tool_use_id: "yes"})
    assert (await aclient.runs.wait(resumed.id)).final_text == "confirm_booking returned: yes"


async def test_run_listings_usage_and_a_chosen_run_id(aclient: AsyncParley) -> None:
    conversations = [await aclient.conversations.create(defaults=example_config()) for _ in "ab"]
    made = []
    for i, conversation in enumerate(conversations * 2):
        run = await aclient.runs.start(conversation.id, f"async {i}")
        made.append(await aclient.runs.wait(run.id, timeout=30))
    newest_first = [r.id for r in reversed(made)]
    page = await aclient.runs.list(limit=3)
    assert [r.id for r in page.runs] == newest_first[:3] and page.next_before is not None
    rest = await aclient.runs.list(limit=3, before=page.next_before)
    assert [r.id for r in rest.runs] == newest_first[3:] and rest.next_before is None
    assert [r.id async for r in aclient.runs.iter_all(page_size=1)] == newest_first
    assert [r.id async for r in aclient.runs.iter_all(status=[RunStatus.FAILED])] == []
    first = conversations[0].id
    by_conversation = [r.id async for r in aclient.conversations.iter_runs(first, page_size=1)]
    assert by_conversation == [made[2].id, made[0].id]
    assert made[0].started_at is not None
    later = await aclient.conversations.list_runs(
        first, status="completed", created_after=made[0].started_at
    )
    assert [r.id for r in later.runs] == [made[2].id]
    with pytest.raises(BadRequestError):
        await aclient.conversations.list_runs(first, before=page.next_before)

    report = await aclient.usage.get()
    (entry,) = report.models
    assert entry.runs == 4 and entry.output_tokens == sum(
        r.usage.completion_tokens for r in made if r.usage is not None
    )
    assert report.total_cost_usd == pytest.approx(sum(r.total_cost_usd or 0 for r in made))
    assert (await aclient.usage.get(created_after=made[-1].started_at)).models == []

    run_id = str(uuid.uuid4())
    version = (await aclient.conversations.get(first)).version

    async def start(conversation_id: str) -> Run:
        return await aclient.runs.start(
            conversation_id,
            "chosen",
            run_id=run_id,
            metadata={"via": "async"},
            expected_version=version,
        )

    accepted, duplicate = await start(first), await start(first)
    assert accepted.start_outcome is StartOutcome.ACCEPTED and accepted.id == run_id
    assert duplicate.start_outcome is StartOutcome.DUPLICATE and duplicate.id == run_id
    with pytest.raises(RunIdConflict):
        await start(conversations[1].id)
    assert (await aclient.runs.wait(run_id)).metadata == {"via": "async"}
