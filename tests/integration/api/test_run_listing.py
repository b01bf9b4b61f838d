"""Runs as resources over real gRPC, on SQLite and PostgreSQL: listing pages (cursor, filters,
isolation, runs created while paging), client-chosen run ids, and each run's timing, cache and
cost figures with the per-model usage totals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from agents.v1 import conversation_service_pb2, run_pb2
from google.protobuf import json_format, timestamp_pb2
from sqlalchemy import insert

from services.api.db.engine import Database, create_database
from services.api.db.models import conversations, runs
from services.common import catalogue
from services.common.grpc_server import HTTP_STATUS_KEY
from services.api.servicer import START_OUTCOME_KEY as START_OUTCOME

from .conftest import MODEL, Api, expect_error

SEEDED = 2500  # runs of one user, written straight into the store
PRICE = catalogue.packaged().models[MODEL].price


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url)
    yield db
    await db.dispose()


async def seed(
    db: Database, who: tuple[int, int], count: int, start: datetime
) -> list[tuple[str, str]]:
    """`count` finished runs of `who` on one conversation, a millisecond apart but for groups of
    five that share their started_at (the cursor's id tie-break); returns their (id, status),
    newest first as a listing orders them."""
    conversation_id = str(uuid.uuid4())
    config = json_format.MessageToJson(run_pb2.Run().effective_config)
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "conversation_id": conversation_id,
                "company_id": who[0],
                "user_id": who[1],
                "client_op_id": str(uuid.uuid4()),
                "status": ("completed", "failed", "requires_action")[i % 3],
                "payload": "{}",
                "tool_choice": None,
                "effective_config": config,
                "iterations_used": 1,
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "total_tokens": 12,
                "submitted_inference_job_ids": "[]",
                "pending_tool_calls": "[]",
                "started_at": start + timedelta(milliseconds=i // 5),
                "completed_at": start + timedelta(milliseconds=i // 5, seconds=1),
                "event_seq": 3,
                "attempts": 1,
                "cancel_requested": False,
                "execution_cluster": "shared",
                "model": MODEL,
                "run_metadata": "{}",
                "request_hash": "",
                "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00",
            }
        )

    def write(conn: Any) -> None:
        now = start
        conn.execute(
            insert(conversations),
            {
                "id": conversation_id,
                "company_id": who[0],
                "user_id": who[1],
                "name": "seeded",
                "system_prompt": None,
                "defaults": json_format.MessageToJson(run_pb2.Run().effective_config),
                "version": 0,
                "active_run_id": None,
                "latest_run_id": None,
                "created_at": now,
                "updated_at": now,
            },
        )
        conn.execute(insert(runs), rows)

    await db.write(write)
    ordered = sorted(rows, key=lambda r: (r["started_at"], r["id"]), reverse=True)
    return [(row["id"], row["status"]) for row in ordered]


async def list_all(api: Api, who: tuple[int, int], **query: Any) -> list[run_pb2.Run]:
    seen: list[run_pb2.Run] = []
    before = None
    while True:
        request = conversation_service_pb2.ListRunsRequest(**query)
        if before is not None:
            request.before = before
        page = await api.public.ListRuns(request, metadata=api.auth(who))
        seen += page.runs
        if not page.HasField("next_before"):
            return seen
        before = page.next_before


async def test_pages_cover_every_run_once_while_runs_are_created(api: Api, store: Database) -> None:
    who = api.user()
    seeded = [i for i, _ in await seed(store, who, SEEDED, datetime(2026, 1, 1, tzinfo=UTC))]
    conversation = await api.create(who)
    created: list[str] = []
    stop = asyncio.Event()

    async def create_runs() -> None:  # one run after another on a conversation, all along
        version = 0
        while not stop.is_set():
            run = await api.start(who, conversation.id, expected_version=version)
            await api.claim(run.id)
            version = await api.commit(
                run.id,
                run_pb2.Run(status=run_pb2.RUN_STATUS_FAILED, error={"type": "X", "message": "x"}),
            )
            created.append(run.id)

    creator = asyncio.create_task(create_runs())
    try:
        listed = await list_all(api, who, limit=100)
    finally:
        stop.set()
        await creator
    ids = [run.id for run in listed]
    assert len(ids) == len(set(ids)), "a run was listed twice"
    assert [i for i in ids if i not in created] == seeded  # every run there before, in order
    keys = [(r.started_at.ToDatetime(), r.id) for r in listed]
    assert keys == sorted(keys, reverse=True)
    assert all(not run.HasField("live") for run in listed)
    assert created, "no run was created while paging"


async def test_filters_limits_and_cursors(api: Api, store: Database) -> None:
    who, other = api.user(), api.user()
    start = datetime(2026, 2, 1, tzinfo=UTC)
    seeded = await seed(store, who, 30, start)  # statuses: completed, failed, requires_action
    await seed(store, other, 5, start)

    failed = await list_all(api, who, status="failed")
    assert [r.id for r in failed] == [i for i, status in seeded if status == "failed"]
    two = await list_all(api, who, status="completed, requires_action", limit=4)
    assert [r.id for r in two] == [i for i, status in seeded if status != "failed"]
    middle = await list_all(
        api,
        who,
        created_after=_stamp(start + timedelta(milliseconds=1)),
        created_before=_stamp(start + timedelta(milliseconds=4)),
    )
    assert len(middle) == 10  # milliseconds 2 and 3, five runs each

    page = await api.public.ListRuns(
        conversation_service_pb2.ListRunsRequest(limit=1000), metadata=api.auth(who)
    )
    assert len(page.runs) == 30 and not page.HasField("next_before")  # 1000 read as 100
    first = await api.public.ListRuns(
        conversation_service_pb2.ListRunsRequest(limit=2), metadata=api.auth(who)
    )
    for bad in ({"limit": 0}, {"status": "done"}, {"before": "nonsense"}, {"before": "a.b"}):
        request = conversation_service_pb2.ListRunsRequest(**bad)
        await expect_error(api.public.ListRuns(request, metadata=api.auth(who)), "InvalidRequest")
    # A cursor is bound to its listing: not another user's, nor a conversation's.
    replayed = conversation_service_pb2.ListRunsRequest(before=first.next_before)
    await expect_error(api.public.ListRuns(replayed, metadata=api.auth(other)), "InvalidRequest")
    theirs = await list_all(api, other)
    assert len(theirs) == 5 and all(r.user_id == other[1] for r in theirs)

    conversation_id = (await api.get_run(who, seeded[0][0])).conversation_id
    mine = conversation_service_pb2.ListConversationRunsRequest(id=conversation_id, limit=7)
    page = await api.public.ListConversationRuns(mine, metadata=api.auth(who))
    assert [r.id for r in page.runs] == [i for i, _ in seeded[:7]]
    tampered = conversation_service_pb2.ListConversationRunsRequest(
        id=conversation_id, before=page.next_before[:-2] + "AA"
    )
    await expect_error(
        api.public.ListConversationRuns(tampered, metadata=api.auth(who)), "InvalidRequest"
    )
    await expect_error(
        api.public.ListConversationRuns(mine, metadata=api.auth(other)), "ConversationNotFound"
    )


async def start_outcome(
    api: Api, who: tuple[int, int], conversation_id: str, **body: Any
) -> tuple[run_pb2.Run, str | None, str | None]:
    call = api.public.StartRun(api.start_request(conversation_id, **body), metadata=api.auth(who))
    run = await call
    initial = dict(await call.initial_metadata() or ())
    return run, initial.get(HTTP_STATUS_KEY), initial.get(START_OUTCOME)


async def test_client_chosen_run_id_replays_and_conflicts(api: Api) -> None:
    who = api.user()
    conversation, other = await api.create(who), await api.create(who)
    run_id, op = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"run_id": run_id, "client_op_id": op, "metadata": {"ticket": "T-1", "n": 2}}
    results = await asyncio.gather(
        *(start_outcome(api, who, conversation.id, **body) for _ in range(20))
    )
    assert {run.id for run, _, _ in results} == {run_id}
    assert sorted(str(o) for _, _, o in results) == ["accepted"] + ["duplicate"] * 19
    assert sorted(str(s) for _, s, _ in results) == ["200"] * 19 + ["None"]
    run = await api.get_run(who, run_id)
    assert json_format.MessageToDict(run.metadata) == {"ticket": "T-1", "n": 2}
    assert len(run.trace_id) == 32 and int(run.trace_id, 16)

    for changed in (
        {**body, "client_op_id": str(uuid.uuid4())},  # another body
        {**body, "metadata": {"ticket": "T-2"}},
    ):
        await expect_error(api.start(who, conversation.id, **changed), "RunIdConflict")
    await expect_error(api.start(who, other.id, **body), "RunIdConflict")  # another conversation
    await expect_error(api.start(api.user(), conversation.id, **body), "ConversationNotFound")
    # 20 different bodies racing for one new run_id: one starts it, the others conflict.
    fresh = str(uuid.uuid4())
    racers = [await api.create(who) for _ in range(4)]
    raced = await asyncio.gather(
        *(api.start(who, racers[i % 4].id, run_id=fresh) for i in range(20)),
        return_exceptions=True,
    )
    started = [r for r in raced if isinstance(r, run_pb2.Run)]
    refused = [r for r in raced if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) == 1 and started[0].id == fresh, raced
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    await expect_error(api.start(who, conversation.id, run_id="not-a-uuid"), "InvalidRequest")
    await expect_error(
        api.start(who, conversation.id, metadata={"big": "x" * 17000}), "InvalidRequest"
    )
    plain = await api.start(who, other.id)
    assert json_format.MessageToDict(plain.metadata) == {} and plain.HasField("metadata")


async def test_timing_cache_and_cost_of_a_run_and_usage_totals(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    run = await api.public.StartRun(
        api.start_request(conversation.id),
        metadata=(*api.auth(who), ("traceparent", traceparent)),
    )
    assert run.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert not run.HasField("execution_started_at") and not run.HasField("total_cost_usd")
    assert run.latest_event_seq == 1
    await api.claim(run.id)
    usage = run_pb2.Usage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1200 + 300 + 8000 + 2000,
        cache_read_input_tokens=8000,
        cache_write_input_tokens=2000,
    )
    await api.commit(
        run.id,
        run_pb2.Run(status=run_pb2.RUN_STATUS_COMPLETED, final_text="4", usage=usage),
    )
    done = await api.get_run(who, run.id)
    assert done.usage == usage
    assert done.cache_hit_rate == pytest.approx(8000 / (1200 + 8000 + 2000))
    # Opus 4.6 at the packaged price: 5 / 25 / 0.5 / 6.25 USD per million tokens.
    assert PRICE is not None and (PRICE.input_per_mtok, PRICE.cache_write_per_mtok) == (5, 6.25)
    expected = (1200 * 5 + 300 * 25 + 8000 * 0.5 + 2000 * 6.25) / 1e6
    assert done.total_cost_usd == pytest.approx(expected, abs=1e-12)
    assert done.execution_started_at.ToDatetime() >= done.started_at.ToDatetime()
    elapsed = done.completed_at.ToDatetime() - done.started_at.ToDatetime()
    assert done.duration_ms == elapsed // timedelta(milliseconds=1)
    assert done.latest_event_seq >= 3  # pending, running, completed

    totals = await api.public.GetUsage(
        conversation_service_pb2.GetUsageRequest(), metadata=api.auth(who)
    )
    assert json_format.MessageToDict(totals, preserving_proto_field_name=True) == {
        "models": [
            {
                "model": MODEL,
                "runs": "1",
                "input_tokens": "1200",
                "output_tokens": "300",
                "cache_read_input_tokens": "8000",
                "cache_write_input_tokens": "2000",
                "total_cost_usd": pytest.approx(expected, abs=1e-12),
            }
        ],
        "total_cost_usd": pytest.approx(expected, abs=1e-12),
    }
    later = conversation_service_pb2.GetUsageRequest(
        created_after=_stamp(datetime.now(UTC) + timedelta(hours=1))
    )
    empty = await api.public.GetUsage(later, metadata=api.auth(who))
    assert list(empty.models) == [] and empty.total_cost_usd == 0


def test_the_price_in_force_is_the_latest_dated_one_on_or_before_the_start() -> None:
    parsed = catalogue.parse(
        """
[[data_planes]]
id = "dp"
companies = ["*"]
[[clusters]]
name = "shared"
provider = "bedrock"
companies = ["*"]
[[models]]
id = "m"
bedrock = "m-1"
price = [
  { input_per_mtok = 2.0, output_per_mtok = 4.0, as_of = "2026-12-01" },
  { input_per_mtok = 1.0, output_per_mtok = 3.0, cache_read_per_mtok = 0.1, as_of = "2026-06-01" },
]
""",
        "test.toml",
    )
    model = parsed.models["m"]
    assert model.price is not None and model.price.input_per_mtok == 2.0  # the newest
    assert model.price_in_force(datetime(2026, 5, 31, 23, tzinfo=UTC)) is None
    june = model.price_in_force(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert june is not None and june.as_of.month == 6
    assert (
        june.cost_nano_usd(1_000_000, 0, 1_000_000, 1_000_000)
        == 1_000_000_000 + 100_000_000 + 1_000_000_000
    )
    assert model.price_in_force(datetime(2026, 12, 1, tzinfo=UTC)) == model.price
