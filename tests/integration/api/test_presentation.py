"""A failed run's title and docs link are presentation: rendered from the catalogue with the docs
base URL in force when the run is read or its events are sent, never stored with the events (so
moving PARLEY_DOCS_BASE_URL moves every link, old events' too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
from agents.v1 import conversation_service_pb2 as svc
from agents.v1 import run_pb2
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from services.api.db import migrate
from services.api.db.engine import create_database
from services.api.db.models import conversations, run_events, runs

from .conftest import running_api

OLD, NEW = "http://old-docs.parley.test/docs", "http://new-docs.parley.test/docs"


async def _stored_events(url: str, run_id: str) -> list[dict]:
    db = create_database(url)
    try:
        rows = await db.read(
            lambda conn: (
                conn.execute(select(run_events.c.data).where(run_events.c.run_id == run_id))
                .scalars()
                .all()
            )
        )
    finally:
        await db.dispose()
    return [orjson.loads(data) for data in rows]


async def test_old_events_show_the_docs_base_url_in_force_when_read(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await make_database_url()
    async with running_api(url, OLD) as api:
        who = api.user()
        run = await api.start(who, (await api.create(who)).id)
        await api.claim(run.id)
        failed = run_pb2.Run(
            status=run_pb2.RUN_STATUS_FAILED,
            error=run_pb2.RunError(type="AgentLoopMaxIterationsExceeded", message="gave up"),
        )
        await api.commit(run.id, failed)
        seen = [
            e
            async for e in api.public.StreamRunEvents(
                svc.StreamRunEventsRequest(id=run.id), metadata=api.auth(who)
            )
        ]
        assert seen[-1].run.error.docs_url == f"{OLD}/errors/max-iterations-exceeded"

    (terminal,) = [e for e in await _stored_events(url, run.id) if e["type"] == "run.failed"]
    assert terminal["run"]["error"] == {
        "type": "AgentLoopMaxIterationsExceeded",
        "message": "gave up",
    }

    async with running_api(url, NEW) as api:  # the same database, a new docs base URL
        events = [
            e
            async for e in api.public.StreamRunEvents(
                svc.StreamRunEventsRequest(id=run.id), metadata=api.auth(who)
            )
        ]
        assert [e.type for e in events] == ["run.status", "run.status", "run.failed"]
        error = events[-1].run.error
        assert error.title == "Max Iterations Exceeded"
        assert error.docs_url == f"{NEW}/errors/max-iterations-exceeded"
        polled = await api.get_run(who, run.id)
        assert polled.error.docs_url == f"{NEW}/errors/max-iterations-exceeded"


def _old_style_rows(conn: Connection) -> None:
    """A failed run's terminal event as the store wrote it before revision 0003."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute(
        insert(conversations),
        {
            "id": "c0000000-0000-4000-8000-000000000000",
            "company_id": 1,
            "user_id": 1,
            "defaults": "{}",
            "version": 1,
            "created_at": at,
            "updated_at": at,
        },
    )
    conn.execute(
        insert(runs),
        {
            "id": "r0000000-0000-4000-8000-000000000000",
            "conversation_id": "c0000000-0000-4000-8000-000000000000",
            "company_id": 1,
            "user_id": 1,
            "client_op_id": "o0000000-0000-4000-8000-000000000000",
            "status": "failed",
            "payload": "{}",
            "effective_config": "{}",
            "started_at": at,
        },
    )
    error = {
        "type": "AgentLoopCancelled",
        "message": "the run was cancelled",
        "title": "Cancelled",
        "docs_url": "http://stale.test/docs/errors/cancelled",
    }
    conn.execute(
        insert(run_events),
        [
            {
                "run_id": "r0000000-0000-4000-8000-000000000000",
                "seq": 1,
                "type": "run.status",
                "data": '{"seq":"1","type":"run.status","status":"RUN_STATUS_PENDING"}',
                "created_at": at,
            },
            {
                "run_id": "r0000000-0000-4000-8000-000000000000",
                "seq": 2,
                "type": "run.failed",
                "data": orjson.dumps(
                    {"seq": "2", "type": "run.failed", "run": {"error": error}}
                ).decode(),
                "created_at": at,
            },
        ],
    )


async def test_migration_drops_the_stored_presentation_of_old_events(
    make_database_url: Callable[..., Awaitable[str]],
) -> None:
    url = await make_database_url(migrated=False)
    await migrate.upgrade(url, "0002")
    db = create_database(url)
    try:
        await db.write(_old_style_rows)
        await migrate.upgrade(url)
        rows = await db.read(
            lambda conn: conn.execute(
                select(run_events.c.seq, run_events.c.data).order_by(run_events.c.seq)
            ).all()
        )
    finally:
        await db.dispose()
    status, failed = (orjson.loads(data) for _, data in rows)
    assert status == {"seq": "1", "type": "run.status", "status": "RUN_STATUS_PENDING"}
    assert failed["run"]["error"] == {
        "type": "AgentLoopCancelled",
        "message": "the run was cancelled",
    }
