"""The per-run event log and the store's in-process wake-ups (event streams, claims waiting
for work, cancellation signals to runners).

Every event is a row of `run_events` with a per-run monotonic `seq` (runs.event_seq, bumped in the
writer's transaction), so a stream resumed with `after_seq` loses and repeats nothing. The events a
transaction appends are written when its work is done: one seq bump and one insert per run, however
many events it appended. Readers never poll: writers run their transaction through `Hub.write`,
which hands the events appended in it to the run's subscribers once it has committed. A
subscriber reads the log only to catch up (on subscribing, or when what it was handed does not
follow on from what it has).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from agents.v1 import run_pb2, store_service_pb2
from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from services.api import mapping
from services.api.db.engine import Database, Work
from services.api.db.models import run_events, runs

if TYPE_CHECKING:  # lifecycle imports this module
    from services.api.lifecycle import Claim

STATUS = "run.status"
TURN = "turn"
USAGE = "usage"
TERMINAL_TYPES = {
    run_pb2.RUN_STATUS_COMPLETED: "run.completed",
    run_pb2.RUN_STATUS_REQUIRES_ACTION: "run.requires_action",
    run_pb2.RUN_STATUS_FAILED: "run.failed",
}
T = TypeVar("T")
log = logging.getLogger("parley.api")
_TERMINAL_TYPE_NAMES = frozenset(TERMINAL_TYPES.values())
Signal = store_service_pb2.WatchWorkResponse
_OUTBOX = "parley.events.outbox"  # Connection.info key: events appended in this transaction


@dataclass(frozen=True)
class _Appended:
    run_id: str
    event: run_pb2.RunEvent
    at: datetime


class Subscription:
    """A run's events as their transactions commit, for one reader."""

    def __init__(self) -> None:
        self._events: list[run_pb2.RunEvent] = []
        self._ready = asyncio.Event()

    def deliver(self, event: run_pb2.RunEvent) -> None:
        self._events.append(event)
        self._ready.set()

    async def next(self) -> list[run_pb2.RunEvent]:
        """The events committed since the last call, waiting until there is at least one."""
        await self._ready.wait()
        self._ready.clear()
        batch, self._events = self._events, []
        return batch


class Claimer:
    """A ClaimRun waiting for work. `arm()` before each look at the queue, so a run queued while
    looking is not missed; `wait()` then returns when a queued run woke it (True) or on timeout.
    While it waits, a StartRun may lease its new run to it in its own transaction and hand the
    claim over (`handed`): the run never waits in the queue (Temporal's "sync match")."""

    def __init__(self, hub: Hub, runner_id: str, lease_seconds: int) -> None:
        self._hub = hub
        self._woken = asyncio.Event()
        self.runner_id = runner_id
        self.lease_seconds = lease_seconds
        self.waiting = False  # in wait(), not looking: free to be handed a run
        self.reserved = False  # a StartRun took it: it gets `hand` or `release` shortly
        self.handed: Claim | None = None  # made for it by a StartRun
        self.ended = False  # its ClaimRun has returned or was cancelled

    def arm(self) -> None:
        self._woken.clear()
        if self not in self._hub._claimers:
            self._hub._claimers.append(self)

    def wake(self) -> None:
        self._woken.set()

    def hand(self, claim: Claim) -> None:
        self.handed, self.reserved = claim, False
        self._woken.set()
        if self.ended:  # its runner went away while the StartRun committed
            self._undelivered()

    def _undelivered(self) -> None:
        log.warning(
            "a run leased to runner %s was not handed over: it resumes when its lease expires",
            self.runner_id,
        )

    def release(self) -> None:
        """The StartRun that took it made no run for it: it looks at the queue again."""
        self.reserved = False
        self._woken.set()

    def take_handed(self) -> Claim | None:
        handed, self.handed = self.handed, None
        if handed is not None:
            self._woken.clear()  # used: nothing to pass on
        return handed

    async def wait(self, timeout: float) -> bool:
        self.waiting = True
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            if not self.reserved:
                return False
            await self._woken.wait()  # a StartRun is handing it a run right now
        finally:
            self.waiting = False
        return True


class Hub:
    """Wake-ups inside one store process: claims waiting for work, runners watching for
    cancellations (WatchWork streams) and event streams waiting for a run's next event."""

    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[Signal]] = set()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._claimers: deque[Claimer] = deque()

    @contextmanager
    def claimer(self, runner_id: str, lease_seconds: int) -> Iterator[Claimer]:
        """A waiting claim for the length of one ClaimRun. A queued run wakes one claimer only
        (the longest waiting), so runners do not race for it; a claimer that leaves woken
        without looking again (it had claimed another run, or was cancelled) wakes the next."""
        claimer = Claimer(self, runner_id, lease_seconds)
        try:
            yield claimer
        finally:
            claimer.ended = True
            if claimer in self._claimers:
                self._claimers.remove(claimer)
            elif claimer._woken.is_set():
                self.runs_queued()
            if claimer.handed is not None:  # cancelled after the hand-over
                claimer._undelivered()

    def runs_queued(self) -> None:
        if self._claimers:
            self._claimers.popleft().wake()

    def waiting_claimer(self) -> Claimer | None:
        """The longest-waiting claimer, taken off the list for a StartRun to hand its run to;
        the StartRun gives it back (`hand` or `release`) whatever happens."""
        for claimer in self._claimers:
            if claimer.waiting:
                self._claimers.remove(claimer)
                claimer.reserved = True
                return claimer
        return None

    @contextmanager
    def watch(self) -> Iterator[asyncio.Queue[Signal]]:
        queue: asyncio.Queue[Signal] = asyncio.Queue(maxsize=1024)
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)

    def cancel_requested(self, run_id: str) -> None:
        signal = Signal(kind=Signal.KIND_CANCEL_REQUESTED, run_id=run_id)
        for queue in self._watchers:
            if not queue.full():  # a runner that far behind renews its leases: it learns there
                queue.put_nowait(signal)

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

    async def write(self, db: Database, fn: Work[T]) -> T:
        """`db.write(fn)`; once it has committed, the events `append`ed in it go to their runs'
        subscribers (nothing goes out when it rolls back)."""
        outbox: list[_Appended] = []

        def work(conn: Connection) -> T:
            conn.info[_OUTBOX] = outbox
            try:
                result = fn(conn)
            finally:
                del conn.info[_OUTBOX]
            _store(conn, outbox)
            return result

        result = await db.write(work)
        for appended in outbox:
            for subscription in self._subscribers.get(appended.run_id, ()):
                subscription.deliver(appended.event)
        return result


_NEXT_SEQ = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"))
    .values(event_seq=runs.c.event_seq + bindparam("count"))
    .returning(runs.c.event_seq)
)
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


def append(
    conn: Connection, run_id: str, event: run_pb2.RunEvent, now: datetime | None = None
) -> run_pb2.RunEvent:
    """Add `event` to the run's log (inside a `Hub.write`); it gets its seq when the
    transaction's work is done."""
    outbox = conn.info.get(_OUTBOX)
    if outbox is None:
        raise RuntimeError("events.append outside Hub.write: its subscribers would never hear")
    now = now or datetime.now(UTC)
    event.created_at.CopyFrom(mapping.timestamp(now))
    outbox.append(_Appended(run_id, event, now))
    return event


def _store(conn: Connection, outbox: list[_Appended]) -> None:
    """Number the transaction's events in order (one seq bump per run) and insert them."""
    by_run: dict[str, list[_Appended]] = {}
    for appended in outbox:
        by_run.setdefault(appended.run_id, []).append(appended)
    rows = []
    for run_id, appended_to_run in by_run.items():
        count = len(appended_to_run)
        last = conn.execute(_NEXT_SEQ, {"run_id": run_id, "count": count}).scalar_one()
        for seq, appended in enumerate(appended_to_run, start=last - count + 1):
            appended.event.seq = seq
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


def status_event(status: int) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type=STATUS, status=status)


def read(conn: Connection, run_id: str, after_seq: int) -> list[run_pb2.RunEvent]:
    rows = conn.execute(_READ, {"run_id": run_id, "after": after_seq})
    return [mapping.from_json(data, run_pb2.RunEvent()) for (data,) in rows]


def live_turns(conn: Connection, run_id: str) -> list[run_pb2.LiveTurn]:
    rows = conn.execute(_TURNS, {"run_id": run_id})
    return [mapping.from_json(data, run_pb2.RunEvent()).turn for (data,) in rows]
