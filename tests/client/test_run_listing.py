"""Runs as resources through the client against a real `parley up --fake-model`: the listings
(cursor pages, the iterators that follow them, filters), usage totals, the new run fields, and
client-chosen run ids with their start outcome. Each test has a user of its own, so its listings
hold only the runs it made."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from parley_client import (
    BadRequestError,
    Parley,
    Run,
    RunIdConflict,
    RunStatus,
    StartOutcome,
    ToolChoice,
)
from tests.fakes.tcp_proxy import Proxy

from .conftest import BOOKING_TOOL, Holding, example_config

MODEL = example_config().model


def completed_runs(client: Parley, conversation_id: str, n: int) -> list[Run]:
    """`n` runs on the conversation, one after the other, each waited for."""
    return [
        client.runs.wait(client.runs.start(conversation_id, f"run {i}").id, timeout=30)
        for i in range(n)
    ]


def test_pages_follow_the_cursor_with_no_duplicates_or_gaps(client: Parley) -> None:
    first = client.conversations.create(defaults=example_config())
    second = client.conversations.create(defaults=example_config())
    made = completed_runs(client, first.id, 3) + completed_runs(client, second.id, 2)
    newest_first = [r.id for r in reversed(made)]

    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = client.runs.list(limit=2, before=before)
        assert len(page.runs) <= 2 and all(r.live is None for r in page.runs)
        seen += [r.id for r in page.runs]
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == newest_first and pages == 3

    # A run started while the iterator walks sorts before its cursor: the walk neither repeats
    # a run nor skips one.
    walk = client.runs.iter_all(page_size=2)
    walked = [next(walk).id, next(walk).id]
    late = client.runs.wait(client.runs.start(second.id, "late").id)
    walked += [r.id for r in walk]
    assert walked == newest_first
    assert [r.id for r in client.runs.iter_all()][0] == late.id

    only_first = client.conversations.list_runs(first.id, limit=2)
    assert [r.id for r in only_first.runs] == [made[2].id, made[1].id]
    assert only_first.next_before is not None
    walked_first = [r.id for r in client.conversations.iter_runs(first.id, page_size=1)]
    assert walked_first == [r.id for r in reversed(made[:3])]
    rest = client.conversations.list_runs(first.id, before=only_first.next_before)
    assert [r.id for r in rest.runs] == [made[0].id] and rest.next_before is None
    with pytest.raises(BadRequestError) as foreign:  # a cursor belongs to its listing
        client.runs.list(before=only_first.next_before)
    assert foreign.value.status == 400


def test_listed_runs_carry_timing_cost_and_trace(client: Parley) -> None:
    conversation = client.conversations.create(defaults=example_config())
    (done,) = completed_runs(client, conversation.id, 1)
    (listed,) = client.conversations.list_runs(conversation.id).runs
    for run in (done, listed):
        assert run.status == RunStatus.COMPLETED and run.started_at and run.completed_at
        assert run.execution_started_at is not None
        assert run.started_at <= run.execution_started_at <= run.completed_at
        assert run.duration_ms is not None and run.duration_ms >= 0
        assert run.latest_event_seq is not None and run.latest_event_seq > 2
        assert run.trace_id is not None and len(run.trace_id) == 32
        int(run.trace_id, 16)
        assert run.metadata == {}
        assert run.usage is not None and run.usage.prompt_tokens > 0
        assert (run.usage.cache_read_input_tokens, run.usage.cache_write_input_tokens) == (0, 0)
        assert run.cache_hit_rate == 0  # input tokens, none of them from the cache
        assert run.total_cost_usd is not None and run.total_cost_usd > 0  # the model is priced
    assert listed.model_dump(exclude={"live"}) == done.model_dump(exclude={"live"})
    # the terminal event is the run's latest: nothing after it
    (terminal,) = client.runs.stream(done.id, after_seq=(done.latest_event_seq or 0) - 1)
    assert terminal.is_terminal and terminal.seq == done.latest_event_seq
    assert terminal.run.latest_event_seq == terminal.seq  # type: ignore[attr-defined]


def test_status_and_time_filters(client: Parley, holding: Holding) -> None:
    plain = client.conversations.create(defaults=example_config(tools=[BOOKING_TOOL]))
    completed = completed_runs(client, plain.id, 2)
    paused = client.runs.wait(
        client.runs.start(plain.id, "book it", tool_choice=ToolChoice.tool(BOOKING_TOOL.name)).id
    )
    assert paused.status == RunStatus.REQUIRES_ACTION
    key = holding.gates.key()
    held = client.conversations.create(defaults=holding.config())
    running = client.runs.start(held.id, key, tool_choice=ToolChoice.tool("hold", "gate"))
    holding.gates.wait_arrived(key)
    assert [r.id for r in client.runs.list(status="running").runs] == [running.id]
    failed = client.runs.cancel(running.id)
    holding.gates.open(key)

    def ids(**filters: object) -> list[str]:
        return [r.id for r in client.runs.iter_all(page_size=1, **filters)]  # type: ignore[arg-type]

    assert ids(status="completed") == [completed[1].id, completed[0].id]
    assert ids(status=RunStatus.REQUIRES_ACTION) == [paused.id]
    assert ids(status=[RunStatus.FAILED, RunStatus.REQUIRES_ACTION]) == [failed.id, paused.id]
    assert ids(status="completed,failed") == [failed.id, completed[1].id, completed[0].id]
    assert ids(status="pending") == []
    # the bounds are exclusive, on started_at
    assert completed[0].started_at is not None and failed.started_at is not None
    assert ids(created_after=completed[0].started_at, created_before=failed.started_at) == [
        paused.id,
        completed[1].id,
    ]
    after = completed[1].started_at
    assert after is not None
    assert ids(created_after=after.isoformat(), status="completed") == []  # RFC 3339 strings too
    assert ids(created_before=after - timedelta(days=1)) == []
    conversation_filtered = client.conversations.iter_runs(
        plain.id, status=["requires_action"], created_after=completed[0].started_at
    )
    assert [r.id for r in conversation_filtered] == [paused.id]

    with pytest.raises(ValueError, match="time zone"):
        client.runs.list(created_after=datetime.now())  # naive: local time or UTC?
    with pytest.raises(BadRequestError) as unknown:
        client.runs.list(status="finished")
    assert "status" in unknown.value.detail
    with pytest.raises(BadRequestError):
        client.runs.list(limit=0)
    with pytest.raises(BadRequestError):
        client.runs.list(before="not-a-cursor")
    assert len(client.runs.list(limit=500).runs) == 4  # more than 100 is read as 100


def test_usage_sums_the_runs_per_model(client: Parley) -> None:
    assert client.usage.get().models == [] and client.usage.get().total_cost_usd == 0
    conversation = client.conversations.create(defaults=example_config())
    runs = completed_runs(client, conversation.id, 3)
    report = client.usage.get()
    (entry,) = report.models
    assert report.for_model(MODEL) == entry and report.for_model("other") is None
    assert entry.model == MODEL and entry.runs == 3
    usages = [r.usage for r in runs if r.usage is not None]
    assert entry.input_tokens == sum(u.prompt_tokens for u in usages)
    assert entry.output_tokens == sum(u.completion_tokens for u in usages)
    assert (entry.cache_read_input_tokens, entry.cache_write_input_tokens) == (0, 0)
    costs = [r.total_cost_usd or 0.0 for r in runs]
    assert entry.total_cost_usd == pytest.approx(sum(costs), abs=1e-9)
    assert report.total_cost_usd == pytest.approx(sum(costs), abs=1e-9)
    assert runs[0].started_at is not None
    since_first = client.usage.get(created_after=runs[0].started_at)
    assert since_first.models[0].runs == 2
    assert since_first.total_cost_usd == pytest.approx(sum(costs[1:]), abs=1e-9)
    assert client.usage.get(created_before=runs[0].started_at).models == []


def test_a_chosen_run_id_replays_as_a_duplicate(client: Parley) -> None:
    conversation = client.conversations.create(defaults=example_config())
    run_id = str(uuid.uuid4())
    metadata = {"ticket": "T-9", "tags": ["a", "b"], "n": 3}
    first = client.runs.start(
        conversation.id, "chosen", run_id=run_id, metadata=metadata, expected_version=0
    )
    assert first.id == run_id and first.start_outcome is StartOutcome.ACCEPTED
    assert not first.duplicate and first.client_op_id == run_id  # the key follows the run_id
    assert first.metadata == metadata
    client.runs.wait(run_id)
    # the same call again (another process, say): the same body, so the original run
    again = client.runs.start(
        conversation.id, "chosen", run_id=run_id, metadata=metadata, expected_version=0
    )
    assert again.id == run_id and again.start_outcome is StartOutcome.DUPLICATE
    assert again.duplicate and again.status == RunStatus.COMPLETED
    assert again.metadata == metadata
    assert len(client.messages.list(conversation.id).messages) == 2

    with pytest.raises(RunIdConflict) as other_body:
        client.runs.start(conversation.id, "chosen", run_id=run_id, metadata={"ticket": "T-10"})
    assert other_body.value.status == 409 and other_body.value.slug == "run-id-conflict"
    elsewhere = client.conversations.create(defaults=example_config())
    with pytest.raises(RunIdConflict):
        client.runs.start(elsewhere.id, "chosen", run_id=run_id, expected_version=0)
    # without expected_version the client reads the version, now 2: another body
    with pytest.raises(RunIdConflict):
        client.runs.start(conversation.id, "chosen", run_id=run_id, metadata=metadata)
    assert [r.id for r in client.runs.iter_all()] == [run_id]
    (listed,) = client.runs.list().runs
    assert listed.metadata == metadata and listed.start_outcome is None


def test_a_lost_answer_to_a_start_with_a_run_id_starts_it_once(
    proxied: Parley, proxy: Proxy
) -> None:
    conversation = proxied.conversations.create(defaults=example_config())
    path = f"/agents/conversations/{conversation.id}/runs"
    proxy.drop_response("POST", path)
    run_id = str(uuid.uuid4())
    run = proxied.runs.start(conversation.id, "lost", run_id=run_id, metadata={"k": "v"})
    assert len(proxy.seen("POST", path)) == 2
    assert run.id == run_id and run.start_outcome is StartOutcome.DUPLICATE
    assert [r.id for r in proxied.runs.iter_all()] == [run_id]
    assert proxied.runs.wait(run_id).metadata == {"k": "v"}


def test_a_resuming_run_takes_a_chosen_run_id_and_metadata(client: Parley) -> None:
    conversation = client.conversations.create(defaults=example_config(tools=[BOOKING_TOOL]))
    paused = client.runs.wait(
        client.runs.start(
            conversation.id, "book it", tool_choice=ToolChoice.tool(BOOKING_TOOL.name)
        ).id
    )
    (call,) = paused.caller_tool_calls
    run_id = str(uuid.uuid4())
    resumed = client.runs.submit_tool_outputs(
        paused, {call.tool_use_id: "yes"}, run_id=run_id, metadata={"step": "confirm"}
    )
    assert resumed.id == run_id and resumed.start_outcome is StartOutcome.ACCEPTED
    done = client.runs.wait(run_id)
    assert done.final_text == "confirm_booking returned: yes"
    assert done.metadata == {"step": "confirm"}
    listed = [(r.id, r.metadata) for r in client.conversations.iter_runs(conversation.id)]
    assert listed == [(run_id, {"step": "confirm"}), (paused.id, {})]
