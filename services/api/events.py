"""The per-run event log and the store's in-process wake-ups.

Every event is a row of `run_events` with a per-run monotonic `seq` (runs.event_seq, bumped in the
writer's transaction), so a stream resumed with `after_seq` loses and repeats nothing. Readers
never poll: they wait on the `Hub`, which writers poke after their transaction commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from agents.v1 import run_pb2, store_service_pb2
from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import mapping
from services.api.db.models import run_events, runs

STATUS = "run.status"
TURN = "turn"
USAGE = "usage"
TERMINAL_TYPES = {
    run_pb2.RUN_STATUS_COMPLETED: "run.completed",
    run_pb2.RUN_STATUS_REQUIRES_ACTION: "run.requires_action",
    run_pb2.RUN_STATUS_FAILED: "run.failed",
}
Signal = store_service_pb2.WatchWorkResponse


class Hub:
    """Wake-ups inside one store process: runners watching for work (WatchWork streams) and
    event streams waiting for a run's next event."""

    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[Signal]] = set()
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self) -> Iterator[asyncio.Queue[Signal]]:
        queue: asyncio.Queue[Signal] = asyncio.Queue(maxsize=1024)
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)

    def _broadcast(self, signal: Signal) -> None:
        for queue in self._watchers:
            if queue.full() and signal.kind == Signal.KIND_RUNS_QUEUED:
                continue  # a queued wake-up is already waiting; the runner claims until empty
            queue.put_nowait(signal)

    def runs_queued(self) -> None:
        self._broadcast(Signal(kind=Signal.KIND_RUNS_QUEUED))

    def cancel_requested(self, run_id: str) -> None:
        self._broadcast(Signal(kind=Signal.KIND_CANCEL_REQUESTED, run_id=run_id))

    @contextmanager
    def waiter(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set by the next `notify(run_id)`; register before reading, then wait."""
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[run_id]

    def notify(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()


async def append(
    conn: AsyncConnection, run_id: str, event: run_pb2.RunEvent, now: datetime | None = None
) -> int:
    """Give `event` the run's next seq and store it (inside the caller's transaction)."""
    now = now or datetime.now(UTC)
    seq = (
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(event_seq=runs.c.event_seq + 1)
            .returning(runs.c.event_seq)
        )
    ).scalar_one()
    event.seq = seq
    event.created_at.CopyFrom(mapping.timestamp(now))
    await conn.execute(
        insert(run_events).values(
            run_id=run_id, seq=seq, type=event.type, data=mapping.to_json(event), created_at=now
        )
    )
    return seq


def status_event(status: int) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type=STATUS, status=status)


async def read(conn: AsyncConnection, run_id: str, after_seq: int) -> list[run_pb2.RunEvent]:
    rows = await conn.execute(
        select(run_events.c.data)
        .where(and_(run_events.c.run_id == run_id, run_events.c.seq > after_seq))
        .order_by(run_events.c.seq)
    )
    return [mapping.from_json(data, run_pb2.RunEvent()) for (data,) in rows]


async def live_turns(conn: AsyncConnection, run_id: str) -> list[run_pb2.LiveTurn]:
    rows = await conn.execute(
        select(run_events.c.data)
        .where(and_(run_events.c.run_id == run_id, run_events.c.type == TURN))
        .order_by(run_events.c.seq)
    )
    return [mapping.from_json(data, run_pb2.RunEvent()).turn for (data,) in rows]
