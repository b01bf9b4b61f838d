"""Two api processes on one PostgreSQL database behave as one: what one commits, queues or cancels
reaches the streams, waiting claims and runner watches held by the other (LISTEN/NOTIFY), and a
listener that lost its connection makes its readers look again, so nothing committed meanwhile is
missed. Each `running_api` is a whole api process's store (its own pool, listener and queue)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest
from agents.v1 import conversation_service_pb2 as svc
from agents.v1 import run_pb2, store_service_pb2
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from services.api import event_log
from services.api.db.engine import create_database
from services.api.event_log import EventLog
from services.api.notifications import APPLICATION_NAME, EVENTS, MAX_PAYLOAD_BYTES
from services.api.run_queue import RunQueue
from services.api.runs import Runs
from services.api.validation import ConfigRules
from services.common.auth import DEFAULT_SCOPE, Principal
from services.common.config import Settings
from services.common.contract import CANCELLED_MESSAGE
from tests.blocks import assistant, text
from tests.conftest import PG_ADMIN_DSN
from tests.internal import INTERNAL_SECRET

from .conftest import SECRET, Api, running_api

pytestmark = pytest.mark.postgres


@asynccontextmanager
async def two_api_processes(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> AsyncIterator[tuple[Api, Api, str]]:
    url = await make_postgres_url()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_api(url))
        b = await stack.enter_async_context(running_api(url))
        yield a, b, url


def _claims_waiting() -> float:
    return REGISTRY.get_sample_value("parley_api_claims_waiting") or 0.0


def _watchers() -> float:
    return REGISTRY.get_sample_value("parley_api_work_watchers") or 0.0


async def _until(condition: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    until = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _done() -> run_pb2.Run:
    return run_pb2.Run(status=run_pb2.RUN_STATUS_COMPLETED, iterations_used=1, final_text="4")


async def _stream(
    api: Api, who: tuple[int, int], run_id: str, seen: list[run_pb2.RunEvent]
) -> None:
    async for event in api.public.StreamRunEvents(
        svc.StreamRunEventsRequest(id=run_id), metadata=api.auth(who)
    ):
        seen.append(event)


async def test_a_runners_event_batches_reach_the_other_process_one_notification_each(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> None:
    """A runner's AppendRunEvents of 1,000 deltas (far more text than a notification may carry)
    and its CommitRun with the turn's event, both through A: B's stream gets every event, in
    order, and each transaction sent one notification for the run (its id and last seq), not one
    per event nor the events themselves."""
    async with two_api_processes(make_postgres_url) as (a, b, url):
        who = a.user()
        run = await a.start(who, (await a.create(who)).id)
        await a.claim(run.id)
        seen: list[run_pb2.RunEvent] = []
        stream = asyncio.create_task(_stream(b, who, run.id, seen))
        await _until(lambda: len(seen) == 2, "the events so far")
        heard: list[str] = []
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        listener = await asyncpg.connect(dsn)
        try:
            await listener.add_listener(EVENTS, lambda *args: heard.append(args[3]))
            deltas = [
                run_pb2.RunEvent(
                    type="message.delta", block_index=0, text=f"{i:04d}{'x' * 96}", attempt=1
                )
                for i in range(1000)
            ]
            assert sum(len(d.text) for d in deltas) > 10 * MAX_PAYLOAD_BYTES
            await a.store.AppendRunEvents(
                store_service_pb2.AppendRunEventsRequest(
                    run_id=run.id, runner_id="runner-1", events=deltas
                )
            )
            answer = assistant(text("".join(d.text for d in deltas)))
            live = run_pb2.LiveTurn(role=answer.role, content_blocks=answer.content_blocks)
            await a.store.CommitRun(
                store_service_pb2.CommitRunRequest(
                    run_id=run.id,
                    runner_id="runner-1",
                    run=_done(),
                    turns=[answer],
                    events=[run_pb2.RunEvent(type="turn", turn=live)],
                )
            )
            await asyncio.wait_for(stream, 15)
            # Delivered after everything committed before it: all of the run's are in by then.
            await listener.execute(f"NOTIFY {EVENTS}, 'sentinel'")
            await _until(lambda: "sentinel" in heard, "the sentinel notification")
        finally:
            await listener.close()
    assert [e.seq for e in seen] == list(range(1, 1005))
    assert [e.type for e in seen[2:]] == ["message.delta"] * 1000 + ["turn", "run.completed"]
    assert [e.text for e in seen[2:1002]] == [d.text for d in deltas]
    mine = [payload.split(" ")[1:] for payload in heard if run.id in payload]
    assert mine == [[run.id, "1002"], [run.id, "1004"]]  # the batch's, then the commit's


async def test_events_committed_through_one_process_reach_streams_on_the_other(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> None:
    async with two_api_processes(make_postgres_url) as (a, b, _):
        who = a.user()
        run = await a.start(who, (await a.create(who)).id)
        seen: list[run_pb2.RunEvent] = []
        stream = asyncio.create_task(_stream(b, who, run.id, seen))  # followed on B
        await _until(lambda: len(seen) == 1, "the stream's first event")  # read from the log

        # Everything else is committed through A: B hears of each commit.
        await a.claim(run.id)
        await _until(lambda: len(seen) == 2, "the running event, committed on A")
        turn = assistant(text("4"))
        await a.store.AppendLiveTurn(
            store_service_pb2.AppendLiveTurnRequest(
                run_id=run.id,
                runner_id="runner-1",
                turn=run_pb2.LiveTurn(
                    turn_index=0, role=turn.role, content_blocks=turn.content_blocks
                ),
            )
        )
        await _until(lambda: len(seen) == 3, "the turn event, committed on A")
        await a.commit(run.id, _done(), turn)
        await asyncio.wait_for(stream, 10)  # B's stream ended at the terminal event
    assert [(e.seq, e.type) for e in seen] == [
        (1, "run.status"),
        (2, "run.status"),
        (3, "turn"),
        (4, "run.completed"),
    ]


async def test_a_stream_sends_what_another_process_committed_between_two_of_its_own_commits(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> None:
    """A runner's writes alternate between the api processes (round robin): deltas committed
    through A, more through B, the rest through A. A reader on A that wakes after both of A's
    commits, before B's notification has come, holds A's two batches with B's seq between
    them: it reads that seq from the log, never sends A's next event over the gap (the chaos
    test's turn whose deltas stopped short). A here is a store of the test's own whose
    listener is not started: B's notification never comes, as if still on its way."""
    async with two_api_processes(make_postgres_url) as (_, b, url):
        who = b.user()
        run = await b.start(who, (await b.create(who)).id)
        await b.claim(run.id)
        settings = Settings(database_url=url, jwt_secret=SECRET, internal_secret=INTERNAL_SECRET)
        db = create_database(url)
        log = EventLog(db)
        runs = Runs(log, RunQueue(log), ConfigRules.from_settings(settings))
        principal = Principal(who[0], who[1], frozenset(DEFAULT_SCOPE.split()))

        def delta(piece: str) -> run_pb2.RunEvent:
            return run_pb2.RunEvent(type="message.delta", text=piece, attempt=1)

        async def through_a(piece: str) -> None:
            await log.write(lambda conn: event_log.append(conn, run.id, delta(piece)))

        stream = runs.events(principal, run.id, 0)
        try:
            seen = [await anext(stream), await anext(stream)]  # pending, running: the log
            await through_a("All good: ")  # seq 3, for A's reader
            await b.store.AppendRunEvents(
                store_service_pb2.AppendRunEventsRequest(
                    run_id=run.id, runner_id="runner-1", events=[delta("nothing lost, ")]
                )
            )  # seq 4, A unaware
            await through_a("nothing doubled.")  # seq 5, for A's reader
            while seen[-1].seq < 5:  # the reader wakes only now
                seen.append(await asyncio.wait_for(anext(stream), 10))
        finally:
            await stream.aclose()
            await db.dispose()
    assert [e.seq for e in seen] == [1, 2, 3, 4, 5]
    assert "".join(e.text for e in seen[2:]) == "All good: nothing lost, nothing doubled."


@pytest.mark.parametrize("clusters", [[], ["shared"]], ids=["every-cluster", "named-cluster"])
async def test_a_run_started_through_one_process_wakes_a_claim_waiting_on_the_other(
    make_postgres_url: Callable[..., Awaitable[str]], clusters: list[str]
) -> None:
    """Whether the waiting claim serves every cluster or names the run's own."""
    async with two_api_processes(make_postgres_url) as (a, b, _):
        who = a.user()
        conversation = await a.create(who)
        before = _claims_waiting()
        request = store_service_pb2.ClaimRunRequest(
            runner_id="r/1", lease_seconds=60, wait_ms=60_000, clusters=clusters
        )
        claim = asyncio.ensure_future(b.store.ClaimRun(request))
        await _until(lambda: _claims_waiting() > before, "B's claim to wait")
        run = await a.start(who, conversation.id)  # no claim waits on A
        claimed = await asyncio.wait_for(claim, 10)  # well inside its 60 s wait: woken
    assert claimed.run.id == run.id and claimed.attempt == 1


async def test_a_cancel_through_one_process_reaches_a_runner_watching_the_other(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> None:
    """A's CancelRun flags the run; the runner's WatchWork stream is held by B, whose signal it
    gets; the runner commits through B; A's bounded wait for the terminal state sees that commit
    (it answers before its 10 s wait is out, with the run failed)."""
    async with two_api_processes(make_postgres_url) as (a, b, _):
        who = a.user()
        run = await a.start(who, (await a.create(who)).id)
        await b.claim(run.id, runner_id="r/1")
        watching = _watchers()
        watch = b.store.WatchWork(store_service_pb2.WatchWorkRequest(runner_id="r/1"))

        async def runner() -> None:
            async for signal in watch:
                if signal.run_id == run.id:
                    cancelled = run_pb2.Run(
                        status=run_pb2.RUN_STATUS_FAILED,
                        iterations_used=0,
                        error=run_pb2.RunError(
                            type="AgentLoopCancelled", message=CANCELLED_MESSAGE
                        ),
                    )
                    await b.commit(run.id, cancelled, runner_id="r/1")
                    return

        stopping = asyncio.create_task(runner())
        await _until(lambda: _watchers() > watching, "the runner's watch on B")
        answer = await asyncio.wait_for(
            a.public.CancelRun(svc.CancelRunRequest(id=run.id), metadata=a.auth(who)), 8
        )
        await asyncio.wait_for(stopping, 5)
        watch.cancel()
    assert answer.status == run_pb2.RUN_STATUS_FAILED
    assert answer.error.type == "AgentLoopCancelled"


async def test_a_stream_reads_what_was_committed_while_its_listener_was_away(
    make_postgres_url: Callable[..., Awaitable[str]],
) -> None:
    """B's listening connection is cut, and new connections refused, while A commits the run's
    terminal event: that notification never reaches B. Once B listens again, its stream reads
    the log and ends with the event."""
    async with two_api_processes(make_postgres_url) as (a, b, url):
        who = a.user()
        run = await a.start(who, (await a.create(who)).id)
        await a.claim(run.id)
        seen: list[run_pb2.RunEvent] = []
        stream = asyncio.create_task(_stream(b, who, run.id, seen))
        await _until(lambda: len(seen) == 2, "the events so far")
        database = make_url(url).database
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            terminated = await admin.fetch(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = $2",
                database,
                APPLICATION_NAME,
            )
            assert len(terminated) == 2  # A's and B's listeners, gone before the commit
            await a.commit(run.id, _done(), assistant(text("4")))  # on a pooled connection
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
        await asyncio.wait_for(stream, 15)  # B listens again, its stream reads the log
    assert [(e.seq, e.type) for e in seen] == [
        (1, "run.status"),
        (2, "run.status"),
        (3, "run.completed"),
    ]
