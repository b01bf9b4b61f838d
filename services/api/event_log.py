"""The run event log and its subscriptions: every event of a run is a row of `run_events` with a
per-run monotonic `seq` (runs.event_seq, bumped in the writer's transaction), so a stream resumed
with `after_seq` loses and repeats nothing.

Writers run their transaction through `EventLog.write`; the events `append`ed in it get their seqs
when its work is done (one bump and one insert per run) and go to the run's subscribers in this
process once it has committed. A writer that updates the run's row anyway moves event_seq in that
statement (`SEQ_BUMP`, then `seqs_taken`), and a new run is inserted with its seq: then the bump
is not a statement of its own. On PostgreSQL the transaction also notifies the other api processes
(notifications.py), whose subscribers of the run then read the log. Readers never poll: a
subscriber reads the log only to catch up. An event is stored as data; what is presentation (a
failed run's title and docs link) is rendered when it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from agents.v1 import message_pb2, run_pb2
from sqlalchemy import String, and_, bindparam, cast, insert, select, update
from sqlalchemy.engine import Connection

from services.api import mapping
from services.api.db.engine import Database, Work
from services.api.notifications import EVENTS, Notifications, sent_by
from services.api.db.models import run_events, runs

STATUS: Final = "run.status"
TURN: Final = "turn"
USAGE: Final = "usage"
MESSAGE_DELTA: Final = "message.delta"
REASONING_DELTA: Final = "reasoning.delta"
TURN_RESTARTED: Final = "turn.restarted"
TOOL_CALL: Final = "tool.call"
TOOL_RESULT: Final = "tool.result"
# What a runner may append to the run it holds (the store writes the status, usage and
# terminal events itself).
RUNNER_TYPES: Final = frozenset(
    {MESSAGE_DELTA, REASONING_DELTA, TURN_RESTARTED, TURN, TOOL_CALL, TOOL_RESULT}
)
_DELTAS = (MESSAGE_DELTA, REASONING_DELTA)
TERMINAL_TYPES: Final = {
    run_pb2.RUN_STATUS_COMPLETED: "run.completed",
    run_pb2.RUN_STATUS_REQUIRES_ACTION: "run.requires_action",
    run_pb2.RUN_STATUS_FAILED: "run.failed",
}
T = TypeVar("T")
_TERMINAL_TYPE_NAMES = frozenset(TERMINAL_TYPES.values())
_OUTBOX = "parley.events.outbox"  # Connection.info key: events appended in this transaction
_TAKEN = "parley.events.taken"  # Connection.info key: run id -> (last seq, count) bumped already


@dataclass(frozen=True, slots=True)
class _Appended:
    run_id: str
    event: run_pb2.RunEvent
    at: datetime


@dataclass(frozen=True, slots=True)
class Batch:
    events: list[run_pb2.RunEvent]  # committed by this process, in the order delivered
    read_log: bool  # others were committed elsewhere (or may have been missed): read the log

    def after(self, seq: int) -> list[run_pb2.RunEvent] | None:
        """The events after `seq` a reader that has seen up to `seq` sends next, or None when
        it must read the log instead: something was committed elsewhere, or the delivered
        events leave a gap anywhere (another api process committed the seqs in between and its
        notification has not come yet; or commits were delivered out of order). Events at or
        before `seq` were read from the log already."""
        if self.read_log:
            return None
        events = [e for e in self.events if e.seq > seq]
        if [e.seq for e in events] != list(range(seq + 1, seq + 1 + len(events))):
            return None
        return events


class Subscription:
    """A run's events as their transactions commit, for one reader."""

    def __init__(self) -> None:
        self._events: list[run_pb2.RunEvent] = []
        self._read_log = False
        self._ready = asyncio.Event()

    def deliver(self, event: run_pb2.RunEvent) -> None:
        self._events.append(event)
        self._ready.set()

    def committed_elsewhere(self) -> None:
        """Another api process committed events of the run (or one may have been missed)."""
        self._read_log = True
        self._ready.set()

    async def next(self) -> Batch:
        """What happened since the last call, waiting until something did."""
        await self._ready.wait()
        self._ready.clear()
        batch = Batch(self._events, self._read_log)
        self._events, self._read_log = [], False
        return batch


class EventLog:
    """The store process's writer of run events and their subscribers' registry."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.notifications = Notifications(db)
        self._subscribers: dict[str, set[Subscription]] = {}
        self.notifications.on(EVENTS, self._committed_elsewhere)
        self.notifications.on_reconnect(self._everyone_reads)

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        """Every event of `run_id` committed from now on; subscribe before reading the log."""
        subscription = Subscription()
        self._subscribers.setdefault(run_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(run_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[run_id]

    async def write(self, fn: Work[T]) -> T:
        """`db.write(fn)`; once it has committed, the events `append`ed in it go to their runs'
        subscribers (nothing goes out when it rolls back)."""
        outbox: list[_Appended] = []

        def work(conn: Connection) -> T:
            taken: dict[str, tuple[int, int]] = {}
            conn.info[_OUTBOX], conn.info[_TAKEN] = outbox, taken
            try:
                result = fn(conn)
            finally:
                del conn.info[_OUTBOX], conn.info[_TAKEN]
            _store(conn, outbox, taken, self.notifications)
            return result

        result = await self.db.write(work)
        for appended in outbox:
            for subscription in self._subscribers.get(appended.run_id, ()):
                subscription.deliver(appended.event)
        return result

    def _committed_elsewhere(self, payload: str) -> None:
        run_id = payload.partition(" ")[0]
        for subscription in self._subscribers.get(run_id, ()):
            subscription.committed_elsewhere()

    def _everyone_reads(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.committed_elsewhere()


_NEXT_SEQ = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"))
    .values(event_seq=runs.c.event_seq + bindparam("count"))
    .returning(runs.c.event_seq)
)
# The same, telling the other api processes (PostgreSQL) the run's events up to that seq.
_NEXT_SEQ_NOTIFYING = _NEXT_SEQ.returning(
    sent_by(EVENTS, runs.c.id, cast(runs.c.event_seq, String))
)
# For a writer's own UPDATE of the run's row: `values(event_seq=SEQ_BUMP)` moves the seq on by
# :event_count, and (PostgreSQL) `SEQ_NOTICE` in its RETURNING tells the other api processes.
SEQ_BUMP: Final = runs.c.event_seq + bindparam("event_count")
SEQ_NOTICE: Final = sent_by(EVENTS, runs.c.id, cast(runs.c.event_seq, String))
_INSERT = insert(run_events)
_READ = (
    select(run_events.c.data)
    .where(and_(run_events.c.run_id == bindparam("run_id"), run_events.c.seq > bindparam("after")))
    .order_by(run_events.c.seq)
)
_TURNS = (
    select(run_events.c.data)
    .where(and_(run_events.c.run_id == bindparam("run_id"), run_events.c.type == TURN))
    .order_by(run_events.c.seq)
)
# The live view's events: turns, and the deltas (and restarts) of the turn in flight.
_LIVE = (
    select(run_events.c.type, run_events.c.data)
    .where(
        and_(
            run_events.c.run_id == bindparam("run_id"),
            run_events.c.type.in_((TURN, TURN_RESTARTED, *_DELTAS)),
        )
    )
    .order_by(run_events.c.seq)
)
_LATEST_TURN_OR_DELTA = (
    select(run_events.c.type)
    .where(
        and_(
            run_events.c.run_id == bindparam("run_id"),
            run_events.c.type.in_((TURN, *_DELTAS)),
        )
    )
    .order_by(run_events.c.seq.desc())
    .limit(1)
)
_TOOL_CALLS = select(run_events.c.data).where(
    and_(run_events.c.run_id == bindparam("run_id"), run_events.c.type == TOOL_CALL)
)


def append(
    conn: Connection, run_id: str, event: run_pb2.RunEvent, now: datetime | None = None
) -> run_pb2.RunEvent:
    """Add `event` to the run's log (inside an `EventLog.write`); it gets its seq when the
    transaction's work is done."""
    outbox: list[_Appended] | None = conn.info.get(_OUTBOX)
    if outbox is None:
        raise RuntimeError("append outside EventLog.write: its subscribers would never hear")
    now = now or datetime.now(UTC)
    event.created_at.CopyFrom(mapping.timestamp(now))
    outbox.append(_Appended(run_id, event, now))
    return event


def appended(conn: Connection, run_id: str) -> int:
    """How many events this transaction has appended to the run so far."""
    outbox: list[_Appended] = conn.info[_OUTBOX]
    return sum(1 for appended in outbox if appended.run_id == run_id)


def seqs_taken(conn: Connection, run_id: str, last: int, count: int) -> None:
    """A statement of this transaction moved the run's event_seq on by `count` to `last` (an
    UPDATE with `SEQ_BUMP`, or the run's INSERT): the `count` events the transaction appends to
    the run are numbered up to `last`, with no bump of their own."""
    taken: dict[str, tuple[int, int]] = conn.info[_TAKEN]
    if run_id in taken:
        raise RuntimeError(f"run {run_id}'s seqs were taken twice in one transaction")
    taken[run_id] = (last, count)


def _store(
    conn: Connection,
    outbox: list[_Appended],
    taken: dict[str, tuple[int, int]],
    notifications: Notifications,
) -> None:
    """Number the transaction's events in order (one seq bump per run, which notifies the other
    api processes on PostgreSQL, unless the writer's own statement took the seqs) and insert
    them."""
    by_run: dict[str, list[_Appended]] = {run_id: [] for run_id in taken}
    for appended in outbox:
        by_run.setdefault(appended.run_id, []).append(appended)
    rows: list[dict[str, Any]] = []
    statement, notifying = _NEXT_SEQ, {}
    if notifications.enabled:
        statement, notifying = _NEXT_SEQ_NOTIFYING, notifications.params()
    for run_id, appended_to_run in by_run.items():
        count = len(appended_to_run)
        if run_id in taken:
            last, expected = taken[run_id]
            if count != expected:  # a gap or a repeated seq in the log: never commit that
                raise RuntimeError(f"run {run_id}: {count} events appended, {expected} taken")
        else:
            params = {"run_id": run_id, "count": count, **notifying}
            last = conn.execute(statement, params).scalar_one()
        for seq, appended in enumerate(appended_to_run, start=last - count + 1):
            appended.event.seq = seq
            if appended.event.HasField("run"):  # the run as it ends: its log ends here too
                appended.event.run.latest_event_seq = last
            rows.append(
                {
                    "run_id": run_id,
                    "seq": seq,
                    "type": appended.event.type,
                    "data": mapping.to_json(appended.event),
                    "created_at": appended.at,
                }
            )
    if rows:
        conn.execute(_INSERT, rows)


def is_terminal(event: run_pb2.RunEvent) -> bool:
    return event.type in _TERMINAL_TYPE_NAMES


def status_event(status: run_pb2.RunStatus) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type=STATUS, status=status)


def terminal_event(run: run_pb2.Run) -> run_pb2.RunEvent:
    """The event a run's terminal state commits with, carrying the run as it ends."""
    return run_pb2.RunEvent(type=TERMINAL_TYPES[run.status], status=run.status, run=run)


def read(conn: Connection, run_id: str, after_seq: int) -> list[run_pb2.RunEvent]:
    rows = conn.execute(_READ, {"run_id": run_id, "after": after_seq}).scalars()
    return [mapping.from_json(data, run_pb2.RunEvent()) for data in rows]


def live_turns(conn: Connection, run_id: str) -> list[run_pb2.LiveTurn]:
    """The turns the run published (what a runner resuming it continues from)."""
    rows = conn.execute(_TURNS, {"run_id": run_id}).scalars()
    return [mapping.from_json(data, run_pb2.RunEvent()).turn for data in rows]


def live_view(conn: Connection, run_id: str) -> list[run_pb2.LiveTurn]:
    """live.messages: the published turns, then the turn the model is writing (its deltas so
    far, of the latest attempt), when it has written any. Only the deltas after the last turn
    are decoded."""
    rows = list(conn.execute(_LIVE, {"run_id": run_id}))
    last = max((i for i, (kind, _) in enumerate(rows) if kind == TURN), default=-1)
    turns = [
        mapping.from_json(data, run_pb2.RunEvent()).turn for kind, data in rows if kind == TURN
    ]
    tail = [mapping.from_json(data, run_pb2.RunEvent()) for _, data in rows[last + 1 :]]
    partial = partial_turn(len(turns), tail)
    return turns if partial is None else [*turns, partial]


def partial_turn(turn_index: int, events: list[run_pb2.RunEvent]) -> run_pb2.LiveTurn | None:
    """The turn in flight from the deltas and restarts after the last turn event: the blocks of
    the latest attempt, in block order (a block with no text yet, like a tool call being
    written, is not shown); None when that attempt has written nothing yet."""
    attempt = max((e.attempt for e in events), default=0)
    blocks: dict[int, run_pb2.RunEvent] = {}
    for event in events:
        if event.type not in _DELTAS or event.attempt != attempt:
            continue
        found = blocks.get(event.block_index)
        if found is None:
            blocks[event.block_index] = run_pb2.RunEvent(type=event.type, text=event.text)
        else:
            found.text += event.text
    if not blocks:
        return None
    content = []
    for index in sorted(blocks):
        block = blocks[index]
        if block.type == REASONING_DELTA:
            content.append(
                message_pb2.ContentBlock(reasoning=message_pb2.ReasoningBlock(text=block.text))
            )
        else:
            content.append(message_pb2.ContentBlock(text=message_pb2.TextBlock(text=block.text)))
    return run_pb2.LiveTurn(
        turn_index=turn_index, role=message_pb2.ROLE_ASSISTANT, content_blocks=content, partial=True
    )


def partial_turn_lost(conn: Connection, run_id: str) -> bool:
    """Whether the run's latest delta comes after its latest turn: a turn was being written."""
    latest = conn.execute(_LATEST_TURN_OR_DELTA, {"run_id": run_id}).scalar()
    return latest in _DELTAS


def announced_tool_calls(conn: Connection, run_id: str) -> list[str]:
    """The tool_use_ids of the run's tool.call events (calls that may have been made)."""
    rows = conn.execute(_TOOL_CALLS, {"run_id": run_id}).scalars()
    return [mapping.from_json(data, run_pb2.RunEvent()).tool_use_id for data in rows]
