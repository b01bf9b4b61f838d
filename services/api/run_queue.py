"""The run queue: which runner executes which run, and until when.

A run is runnable while it is pending, or running on a lease (lease_owner, lease_expires_at) that
expired (its runner is gone). `claim` leases the oldest runnable runs of the execution clusters the
runner serves (all, or those it names), as many as the runner has room for (one transaction, one
reply), or waits (a long poll) until one is offered: a StartRun leases its new run to the
longest-waiting claim that serves the run's cluster, in its own transaction (`offer`, Temporal's
"sync match"), else wakes one such claim to look again; a running lease's expiry wakes it too.
Runners renew their leases in one call, learn of cancellations on their `watch` stream, and a
runner that lost a lease can neither renew nor commit (`held`). A runner that restarts `release`s
the leases its earlier incarnations held, so their runs resume at once. On PostgreSQL, runs queued
or released and cancellations requested in one api process wake the claims and watchers of the
others too (notifications.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agents.v1 import run_pb2, store_service_pb2
from sqlalchemy import (
    ColumnElement,
    FromClause,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningUpdate

from services.api import event_log, mapping, validation
from services.api.db.models import conversations, inference_jobs, messages, runs
from services.api.db.rows import ConversationRow, MessageRow, RunRow
from services.api.notifications import CANCELS, RUNS_QUEUED, Notifications
from services.common.errors import ParleyError
from services.common.incidents import LEASE_LOST
from services.common.metrics import (
    CLAIMS_WAITING,
    LEASES_RELEASED,
    LEASES_RENEWED,
    RUNS_PENDING,
    RUNS_RUNNING,
    WORK_WATCHERS,
)

DEFAULT_LEASE_SECONDS: Final = 60
# A claim of several runs stops adding runs once their histories and inputs reach this many bytes
# (far below the gRPC message limit): a long conversation's run comes alone.
CLAIM_BYTES: Final = 16 * 2**20
INCARNATION_SEPARATOR: Final = "/"  # a runner_id is `<runner name>/<incarnation>`
# RUNS_PENDING is counted again after this process queues or claims runs, at most once per
# PENDING_MIN_INTERVAL_S, and every PENDING_MAX_INTERVAL_S anyway (other processes' runs).
PENDING_MIN_INTERVAL_S: Final = 1.0
PENDING_MAX_INTERVAL_S: Final = 15.0
log = logging.getLogger("parley.api")
Signal = store_service_pb2.WatchWorkResponse


def run_not_found(run_id: str) -> ParleyError:
    return ParleyError("RunNotFound", f"run {run_id} was not found", run_id=run_id)


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run just leased, with what its runner needs of its conversation."""

    run: RunRow
    conversation: ConversationRow
    history: list[MessageRow]
    live_turns: list[run_pb2.LiveTurn]  # published by an earlier holder (a resumed run)
    usage: run_pb2.Usage  # of the inference jobs an earlier holder recorded
    announced: list[str]  # tool_use_ids of an earlier holder's tool.call events
    partial_turn_lost: bool  # an earlier holder streamed a turn it never published


@dataclass(frozen=True, slots=True)
class Claim:
    claimed: ClaimedRun | None
    retry_after_ms: int  # none claimed: until the earliest running lease expires (0: none)
    more: tuple[ClaimedRun, ...] = ()  # further runs the same claim leased (max_runs > 1)


# --- waiting claims ----------------------------------------------------------------------------


class _State(enum.Enum):
    LOOKING = enum.auto()  # its claim transaction is under way
    WAITING = enum.auto()  # between looks: a StartRun may hand it a run
    TAKEN = enum.auto()  # a StartRun took it: `hand` or `release` follows shortly
    ENDED = enum.auto()  # its ClaimRun returned or was cancelled


class WaitingClaim:
    """One ClaimRun's place in the line. `look()` before each look at the queue, so a run queued
    while looking is not missed; `wait()` returns a run handed to it by a StartRun, or None when
    a queued run woke it (to look again) or its time ran out."""

    def __init__(
        self,
        line: WaitingLine,
        runner_id: str,
        lease_seconds: int,
        clusters: frozenset[str] | None = None,
    ) -> None:
        self._line = line
        self.runner_id = runner_id
        self.lease_seconds = lease_seconds
        self.clusters = clusters  # the execution clusters its runner serves; None: every one
        self.state = _State.LOOKING
        self._woken = asyncio.Event()
        self.woken_for: str | None = None  # the cluster of the queued run that woke it
        self._handed: Claim | None = None

    def serves(self, cluster: str | None) -> bool:
        """Whether it may take a run of `cluster` (None: of a cluster not known yet)."""
        return self.clusters is None or (cluster is not None and cluster in self.clusters)

    def look(self) -> None:
        self._woken.clear()
        self.state = _State.LOOKING
        self._line.enter(self)

    async def wait(self, timeout: float) -> Claim | None:
        self.state = _State.WAITING
        CLAIMS_WAITING.inc()
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            if self.state is _State.TAKEN:
                await self._woken.wait()  # a StartRun is handing it a run right now
        finally:
            CLAIMS_WAITING.dec()
        if self.state is _State.WAITING:
            self.state = _State.LOOKING
        handed, self._handed = self._handed, None
        if handed is not None:
            self._woken.clear()  # used: nothing to pass on
        return handed

    @property
    def woken(self) -> bool:
        """A queued run (or a hand-over) woke it since its last `look()`."""
        return self._woken.is_set()

    def wake(self, cluster: str | None = None) -> None:
        self.woken_for = cluster
        self._woken.set()

    def hand(self, claim: Claim) -> None:
        """A StartRun leased its new run to this claim."""
        if self.state is _State.ENDED:  # its runner went away while the StartRun committed
            _undelivered(self.runner_id)
            return
        self._handed, self.state = claim, _State.LOOKING
        self._woken.set()

    def release(self) -> None:
        """The StartRun that took it made no run for it: it looks at the queue again."""
        if self.state is _State.TAKEN:
            self.state = _State.LOOKING
        self._woken.set()

    def end(self) -> bool:
        """Its ClaimRun returned or was cancelled. True when it leaves with a queued run's
        wake-up it did not act on (to pass on to the next waiting claim)."""
        taken, self.state = self.state is _State.TAKEN, _State.ENDED
        if self._handed is not None:  # cancelled after a hand-over
            _undelivered(self.runner_id)
            return False
        return not taken and self._woken.is_set()  # a taken one: see `hand`


def _undelivered(runner_id: str) -> None:
    log.warning(
        "a run leased to runner %s was not handed over: it resumes when its lease expires",
        runner_id,
    )


class WaitingLine:
    """The claims waiting in this store process, oldest first. A queued run wakes one of them
    only (the longest waiting), so runners do not race for it."""

    def __init__(self) -> None:
        self._line: deque[WaitingClaim] = deque()

    @contextmanager
    def join(
        self, runner_id: str, lease_seconds: int, clusters: frozenset[str] | None = None
    ) -> Iterator[WaitingClaim]:
        """A place for the length of one ClaimRun. One that leaves woken without looking again
        (it claimed another run, or was cancelled) passes its wake-up on."""
        waiting = WaitingClaim(self, runner_id, lease_seconds, clusters)
        try:
            yield waiting
        finally:
            in_line = waiting in self._line
            if in_line:
                self._line.remove(waiting)
            if waiting.end() and not in_line:
                self.runs_queued(waiting.woken_for)

    def enter(self, waiting: WaitingClaim) -> None:
        if waiting not in self._line:
            self._line.append(waiting)

    def runs_queued(self, cluster: str | None = None) -> None:
        """A run of `cluster` was queued (None: a run of any cluster): wake the longest-waiting
        claim that may take it."""
        for waiting in self._line:
            if cluster is None or waiting.serves(cluster):
                self._line.remove(waiting)
                waiting.wake(cluster)
                return

    def take(self, cluster: str | None = None) -> WaitingClaim | None:
        """The longest-waiting claim that serves `cluster` (None, when the StartRun does not know
        its run's cluster yet: one that serves every cluster), out of the line for the StartRun
        to hand its run to; the StartRun gives it back (`hand` or `release`) whatever happens."""
        for waiting in self._line:
            if waiting.state is _State.WAITING and waiting.serves(cluster):
                self._line.remove(waiting)
                waiting.state = _State.TAKEN
                return waiting
        return None

    def names_clusters(self) -> bool:
        """Whether a claim in line serves only some clusters (then a StartRun needs its run's
        cluster to pick the claim it hands the run to)."""
        return any(waiting.clusters is not None for waiting in self._line)

    def serves(self, cluster: str) -> bool:
        """Whether a claim in line may take a run of `cluster`."""
        return any(waiting.serves(cluster) for waiting in self._line)

    def wake_all(self) -> None:
        """Every claim looks again (runs may have been queued unheard)."""
        for waiting in list(self._line):
            self._line.remove(waiting)
            waiting.wake()


# --- the StartRun hand-off ---------------------------------------------------------------------


class Offer:
    """A StartRun's new run on its way into the queue: `lease` it before its INSERT and `place`
    it after, inside that transaction. It is inserted leased to the waiting claim the offer holds,
    if that claim serves the run's cluster; when no claim in this process's line serves it, the
    other api processes hear of the run when the transaction commits."""

    def __init__(
        self, waiting: WaitingClaim | None, line: WaitingLine, others: Notifications
    ) -> None:
        self._waiting = waiting
        self._line = line
        self._others = others
        self.claim: Claim | None = None
        self.placed = False
        self.cluster: str | None = None

    def lease(self, run: RunRow) -> RunRow:
        """The new pending run as it is inserted: leased (running, its first attempt) to the
        waiting claim when that claim serves its cluster, so no UPDATE follows the INSERT."""
        waiting = self._waiting
        if waiting is None or not waiting.serves(run.execution_cluster):
            return run
        now = datetime.now(UTC)
        return dataclasses.replace(
            run,
            status="running",
            lease_owner=waiting.runner_id,
            lease_expires_at=now + _lease(waiting.lease_seconds),
            attempts=1,
            execution_started_at=now,
        )

    def place(self, conn: Connection, run: RunRow, conversation: ConversationRow) -> None:
        """After the INSERT of `run` (as `lease` made it)."""
        cluster = run.execution_cluster
        self.placed, self.cluster = True, cluster
        if run.lease_owner is not None and run.execution_started_at is not None:
            self.claim = Claim(_claimed(conn, run, run.execution_started_at, conversation), 0)
        elif self._others.enabled and not self._line.serves(cluster):
            self._others.notify(conn, RUNS_QUEUED, _queued({cluster: 1}))


# --- statements ---------------------------------------------------------------------------------


def _runnable(table: FromClause) -> ColumnElement[bool]:
    """Pending, or running on a lease that has expired at :now (its runner is gone)."""
    return or_(
        table.c.status == "pending",
        and_(table.c.status == "running", table.c.lease_expires_at < bindparam("now")),
    )


def _leasing(run_id: Any) -> ReturningUpdate[Any]:
    """UPDATE … RETURNING that leases the run `run_id` (a value or a subquery) to :runner."""
    claimed_at = bindparam("claimed_at", type_=runs.c.started_at.type)
    return (
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status="running",
            lease_owner=bindparam("runner"),
            lease_expires_at=bindparam("expires"),
            attempts=runs.c.attempts + 1,
            # A claim's clock is read before its statement, which may find a run started after
            # that instant (PostgreSQL's statement snapshot): execution never precedes the start.
            execution_started_at=func.coalesce(
                runs.c.execution_started_at,
                case((runs.c.started_at > claimed_at, runs.c.started_at), else_=claimed_at),
            ),
        )
        .returning(*runs.c)
    )


def _in_clusters(table: FromClause) -> ColumnElement[bool]:
    return table.c.execution_cluster.in_(bindparam("clusters", expanding=True))


def _claim_statement(skip_locked: bool, by_cluster: bool) -> ReturningUpdate[Any]:
    candidate = runs.alias("candidate")
    runnable = _runnable(candidate)
    if by_cluster:
        runnable = and_(runnable, _in_clusters(candidate))
    oldest = (
        select(candidate.c.id)
        .where(runnable)
        .order_by(candidate.c.started_at, candidate.c.id)
        .limit(1)
    )
    if skip_locked:
        oldest = oldest.with_for_update(skip_locked=True)
    return _leasing(oldest.scalar_subquery())


# By (is_postgres, the runner names its clusters).
_CLAIM = {
    (pg, named): _claim_statement(pg, named) for pg in (False, True) for named in (False, True)
}
_EARLIEST_LEASE = {
    False: select(func.min(runs.c.lease_expires_at)).where(runs.c.status == "running"),
    True: select(func.min(runs.c.lease_expires_at)).where(
        and_(runs.c.status == "running", _in_clusters(runs))
    ),
}
_PENDING = (
    select(runs.c.status, runs.c.execution_cluster, func.count())
    .where(runs.c.status.in_(("pending", "running")))
    .group_by(runs.c.status, runs.c.execution_cluster)
)
_CONVERSATION = select(conversations).where(conversations.c.id == bindparam("id"))
_HISTORY = (
    select(messages)
    .where(messages.c.conversation_id == bindparam("id"))
    .order_by(messages.c.sequence_no)
)
_USAGE = select(
    func.coalesce(func.sum(inference_jobs.c.prompt_tokens), 0),
    func.coalesce(func.sum(inference_jobs.c.completion_tokens), 0),
    func.coalesce(func.sum(inference_jobs.c.cache_read_tokens), 0),
    func.coalesce(func.sum(inference_jobs.c.cache_write_tokens), 0),
).where(inference_jobs.c.run_id == bindparam("run_id"))
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("id"))
_HELD_FOR_UPDATE = _RUN_BY_ID.with_for_update()
_RELEASE = (
    update(runs)
    .where(
        and_(
            runs.c.status == "running",
            runs.c.lease_owner.like(bindparam("earlier"), escape="\\"),
            runs.c.lease_owner != bindparam("runner"),
        )
    )
    .values(lease_owner=None, lease_expires_at=bindparam("now"))  # held by nobody, runnable
    .returning(runs.c.id, runs.c.execution_cluster)
)
_GIVE_BACK = (  # the runs a claim leased for a caller that left before it could take them
    update(runs)
    .where(
        and_(
            runs.c.status == "running",
            runs.c.id.in_(bindparam("run_ids", expanding=True)),
            runs.c.lease_owner == bindparam("runner"),
        )
    )
    .values(lease_owner=None, lease_expires_at=bindparam("now"))  # held by nobody, runnable
    .returning(runs.c.id, runs.c.execution_cluster)
)
_RENEW = (
    update(runs)
    .where(
        and_(
            runs.c.id.in_(bindparam("run_ids", expanding=True)),
            runs.c.status == "running",
            runs.c.lease_owner == bindparam("runner"),
        )
    )
    .values(lease_expires_at=bindparam("expires"))
    .returning(runs.c.id, runs.c.cancel_requested)
)


def _queued(clusters: Mapping[str, int]) -> str:
    """A RUNS_QUEUED payload: how many runs of each cluster (bounded by the clusters, not the
    runs: a payload has 8000 bytes at most)."""
    return " ".join(f"{cluster}={count}" for cluster, count in clusters.items())


def _queued_counts(payload: str) -> dict[str, int]:
    counts = {}
    for item in payload.split():
        cluster, _, count = item.rpartition("=")
        counts[cluster] = int(count)
    return counts


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape character: backslash) for values starting with `prefix`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _lease(seconds: int) -> timedelta:
    validation.at_least(seconds, 0, "lease_seconds")
    return timedelta(seconds=seconds or DEFAULT_LEASE_SECONDS)


def _claimed(
    conn: Connection, run: RunRow, now: datetime, conversation: ConversationRow | None = None
) -> ClaimedRun:
    """What the runner needs of a run just leased to it (and of its conversation, read here
    unless the caller's transaction has it)."""
    resumed = run.attempts > 1  # a lost runner's run: hand over what it already did
    if not resumed:
        event_log.append(conn, run.id, event_log.status_event(run_pb2.RUN_STATUS_RUNNING), now)
    if conversation is None:
        conversation = ConversationRow(
            *conn.execute(_CONVERSATION, {"id": run.conversation_id}).one()
        )
    history = []
    if conversation.version:  # messages are numbered 1..version: at 0 there are none to read
        history = [MessageRow(*row) for row in conn.execute(_HISTORY, {"id": conversation.id})]
    live: list[run_pb2.LiveTurn] = []
    usage = run_pb2.Usage()
    announced: list[str] = []
    partial = False
    if resumed:
        live = event_log.live_turns(conn, run.id)
        prompt, completion, read, write = (
            int(n) for n in conn.execute(_USAGE, {"run_id": run.id}).one()
        )
        usage = run_pb2.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion + read + write,
            cache_read_input_tokens=read,
            cache_write_input_tokens=write,
        )
        announced = event_log.announced_tool_calls(conn, run.id)
        partial = event_log.partial_turn_lost(conn, run.id)
    return ClaimedRun(run, conversation, history, live, usage, announced, partial)


def _retry_after_ms(conn: Connection, now: datetime, clusters: list[str] | None) -> int:
    statement = _EARLIEST_LEASE[clusters is not None]
    earliest: datetime | None = conn.execute(statement, {"clusters": clusters or []}).scalar()
    if earliest is None:
        return 0
    if earliest.tzinfo is None:
        earliest = earliest.replace(tzinfo=UTC)
    return max(1, int((earliest - now).total_seconds() * 1000) + 1)


def _response(claim: Claim) -> store_service_pb2.ClaimRunResponse:
    if claim.claimed is None:
        return store_service_pb2.ClaimRunResponse(retry_after_ms=claim.retry_after_ms)
    response = _claimed_response(claim.claimed)
    response.more.extend(_claimed_response(claimed) for claimed in claim.more)
    return response


def _claimed_response(claimed: ClaimedRun) -> store_service_pb2.ClaimRunResponse:
    run = mapping.run_to_proto(claimed.run, claimed.conversation.name)
    payload = mapping.from_json(claimed.run.payload, run_pb2.RunPayload())
    return store_service_pb2.ClaimRunResponse(
        run=run,
        system_prompt=claimed.conversation.system_prompt or "",
        history=[mapping.message_to_proto(row) for row in claimed.history],
        input=mapping.input_turn(payload, claimed.run, claimed.conversation.version + 1),
        resumed_turns=claimed.live_turns,
        resumed_usage=claimed.usage,
        attempt=claimed.run.attempts,
        cancel_requested=claimed.run.cancel_requested,
        approved_calls=mapping.approved_calls(payload, claimed.run, claimed.history),
        started_tool_use_ids=claimed.announced,
        partial_turn_lost=claimed.partial_turn_lost,
        traceparent=claimed.run.traceparent or "",
    )


def held(conn: Connection, lock: bool, run_id: str, runner_id: str) -> RunRow:
    """The run, locked when `lock` (PostgreSQL): RunNotFound, or LeaseLost unless `runner_id`
    holds its lease."""
    row = conn.execute(_HELD_FOR_UPDATE if lock else _RUN_BY_ID, {"id": run_id}).first()
    if row is None:
        raise run_not_found(run_id)
    run = RunRow(*row)
    if run.status != "running" or run.lease_owner != runner_id:
        holder = run.lease_owner or "nobody"
        raise ParleyError(
            LEASE_LOST,
            f"lease lost on run {run_id}: it is {run.status}, held by {holder}, not by {runner_id}",
            run_id=run_id,
        )
    return run


# --- the queue ----------------------------------------------------------------------------------


class RunQueue:
    """The store process's run queue: its waiting claims and the runners watching for work."""

    def __init__(self, log: event_log.EventLog) -> None:
        self._log = log
        self._db = log.db
        self._line = WaitingLine()
        self._watchers: set[asyncio.Queue[Signal]] = set()
        self._pending_changed = asyncio.Event()
        self._giving_back: set[asyncio.Task[None]] = set()
        self._notifications = log.notifications
        self._notifications.on(RUNS_QUEUED, self._queued_elsewhere)
        self._notifications.on(CANCELS, self.signal_cancel)
        self._notifications.on_reconnect(self._line.wake_all)

    async def claim(
        self,
        runner_id: str,
        lease_seconds: int,
        wait_ms: int,
        clusters: Sequence[str] = (),
        max_runs: int = 1,
    ) -> store_service_pb2.ClaimRunResponse:
        """Lease the oldest runnable runs of `clusters` (none named: of every cluster), up to
        `max_runs` of them or CLAIM_BYTES of history (one UPDATE … RETURNING each, in one
        transaction), or wait up to `wait_ms` for one: handed over by a StartRun, or found on
        looking again when a queued run or the earliest running lease's expiry wakes this
        claim."""
        if not runner_id:
            raise ParleyError("InvalidRequest", "runner_id is required", field="runner_id")
        validation.at_least(max_runs, 0, "max_runs")
        lease = _lease(lease_seconds)
        named = sorted(set(clusters)) or None
        statement = _CLAIM[self._db.is_postgres, named is not None]

        def oldest(conn: Connection) -> Claim:
            now = datetime.now(UTC)
            params = {"now": now, "runner": runner_id, "expires": now + lease, "claimed_at": now}
            if named is not None:
                params["clusters"] = named
            leased: list[ClaimedRun] = []
            size = 0
            while len(leased) < max(1, max_runs) and size < CLAIM_BYTES:
                row = conn.execute(statement, params).first()  # the oldest runnable one left
                if row is None:
                    break
                leased.append(claimed := _claimed(conn, RunRow(*row), now))
                size += len(claimed.run.payload)
                size += sum(len(message.content_blocks) for message in claimed.history)
            if not leased:
                return Claim(None, _retry_after_ms(conn, now, named))
            return Claim(leased[0], 0, tuple(leased[1:]))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, wait_ms) / 1000
        serves = frozenset(named) if named is not None else None
        with self._line.join(runner_id, lease_seconds, serves) as waiting:
            while True:
                waiting.look()
                # The look runs to its end even when the caller leaves meanwhile (SQLite's store
                # thread finishes it anyway): what it leased then is given back, not stranded
                # on a lease nobody renews.
                look = asyncio.ensure_future(self._log.write(oldest))
                try:
                    claim = await asyncio.shield(look)
                except asyncio.CancelledError:
                    look.add_done_callback(lambda done: self._give_back(runner_id, done))
                    raise
                left = deadline - loop.time()
                if claim.claimed is not None:
                    self._pending_changed.set()
                if claim.claimed is not None or left <= 0:
                    return _response(claim)
                if claim.retry_after_ms:
                    left = min(left, claim.retry_after_ms / 1000)
                handed = await waiting.wait(left)
                if handed is not None:  # a StartRun leased its new run to this claim
                    return _response(handed)

    def _give_back(self, runner_id: str, look: asyncio.Future[Claim]) -> None:
        if look.cancelled() or look.exception() is not None:
            return
        claim = look.result()
        leased = [c.run.id for c in (claim.claimed, *claim.more) if c is not None]
        if leased:
            task = asyncio.create_task(self._release_leased(runner_id, leased))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)

    async def _release_leased(self, runner_id: str, run_ids: list[str]) -> None:
        params = {"run_ids": run_ids, "runner": runner_id, "now": datetime.now(UTC)}

        def give_back(conn: Connection) -> dict[str, str]:
            released = {run_id: cluster for run_id, cluster in conn.execute(_GIVE_BACK, params)}
            if released:
                self._notifications.notify(conn, RUNS_QUEUED, _queued(Counter(released.values())))
            return released

        try:
            released = await self._db.write(give_back)
        except Exception:  # noqa: BLE001 - the leases then expire as a lost runner's do
            log.exception("giving back %d runs claimed by %s failed", len(run_ids), runner_id)
            return
        LEASES_RELEASED.inc(len(released))
        log.info("claim by %s ended before its answer: gave back %d runs", runner_id, len(released))
        for cluster in released.values():
            self._line.runs_queued(cluster)

    def names_clusters(self) -> bool:
        """Whether a StartRun should learn its run's cluster before its offer (see `offer`)."""
        return self._line.names_clusters()

    @asynccontextmanager
    async def offer(self, cluster: str | None = None) -> AsyncIterator[Offer]:
        """For one StartRun whose run will be of `cluster` (None: not known yet): its run, once
        `placed`, goes to the longest-waiting claim that serves the cluster (leased in the
        StartRun's transaction, handed over when it has committed) or, with none waiting, wakes
        the next such claim, here or (none here) in another api process; a StartRun that fails
        or makes no run gives the waiting claim back."""
        waiting = self._line.take(cluster)
        offer = Offer(waiting, self._line, self._notifications)
        try:
            yield offer
        except BaseException:
            if waiting is not None:
                waiting.release()
            raise
        if offer.placed:
            self._pending_changed.set()
        if waiting is not None and offer.claim is not None:
            waiting.hand(offer.claim)
            return
        if waiting is not None:
            waiting.release()  # a replay made no run, or the run is of a cluster it does not serve
        if offer.placed:
            self._line.runs_queued(offer.cluster)

    def pending_changed(self) -> None:
        """Runs left the pending state here outside a claim (a pending run cancelled)."""
        self._pending_changed.set()

    async def report_pending(self, clusters: Iterable[str]) -> None:
        """Keep RUNS_PENDING (per execution cluster) current, until cancelled: counted by the
        database after this process queued or claimed runs, and every PENDING_MAX_INTERVAL_S
        for other processes' runs. The count is a database read, never a call on the loop."""
        known = list(clusters)
        while True:
            self._pending_changed.clear()
            counts: dict[tuple[str, str], int] | None
            try:
                rows = await self._db.read(lambda conn: conn.execute(_PENDING).all())
                counts = {(status, cluster): n for status, cluster, n in rows}
            except Exception:  # noqa: BLE001 - a metric must not stop the store; logged, retried
                log.warning("counting pending runs failed", exc_info=True)
                counts = None
            if counts is not None:
                for cluster in {*known, *(cluster for _, cluster in counts)}:
                    RUNS_PENDING.labels(cluster).set(counts.get(("pending", cluster), 0))
                    RUNS_RUNNING.labels(cluster).set(counts.get(("running", cluster), 0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PENDING_MAX_INTERVAL_S):
                    await self._pending_changed.wait()
            await asyncio.sleep(PENDING_MIN_INTERVAL_S)  # a rate limit, not a wait for work

    async def renew(
        self, runner_id: str, run_ids: Sequence[str], lease_seconds: int
    ) -> store_service_pb2.RenewLeasesResponse:
        """Extend the leases the runner still holds; the others are `lost`."""
        if not run_ids:
            return store_service_pb2.RenewLeasesResponse()
        params = {
            "run_ids": list(run_ids),
            "runner": runner_id,
            "expires": datetime.now(UTC) + _lease(lease_seconds),
        }

        def renew(conn: Connection) -> dict[str, bool]:
            return {run_id: cancel for run_id, cancel in conn.execute(_RENEW, params)}

        renewed = await self._db.write(renew)
        LEASES_RENEWED.observe(len(renewed))
        return store_service_pb2.RenewLeasesResponse(
            cancel_requested=[run_id for run_id, cancel in renewed.items() if cancel],
            lost=[run_id for run_id in run_ids if run_id not in renewed],
        )

    async def release(
        self, runner_name: str, runner_id: str
    ) -> store_service_pb2.ReleaseLeasesResponse:
        """Make the runs that earlier incarnations of `runner_name` hold runnable at once (the
        runner restarted: their executions died with the old process) and wake claims for
        them; the leases of `runner_id`, the runner's current incarnation, are kept."""
        if not runner_name or INCARNATION_SEPARATOR in runner_name:
            raise ParleyError(
                "InvalidRequest",
                f"runner_name is required and may not contain {INCARNATION_SEPARATOR!r}",
                field="runner_name",
            )
        prefix = runner_name + INCARNATION_SEPARATOR
        if not runner_id.startswith(prefix) or runner_id == prefix:
            raise ParleyError(
                "InvalidRequest",
                f"runner_id must be `{prefix}<incarnation>` for runner_name {runner_name!r}",
                field="runner_id",
            )
        params = {"earlier": _like_prefix(prefix), "runner": runner_id, "now": datetime.now(UTC)}

        def release(conn: Connection) -> dict[str, str]:
            released = {run_id: cluster for run_id, cluster in conn.execute(_RELEASE, params)}
            if released:
                self._notifications.notify(conn, RUNS_QUEUED, _queued(Counter(released.values())))
            return released

        released = await self._db.write(release)
        if released:
            LEASES_RELEASED.inc(len(released))
            log.info("runner %s restarted: released %d leases", runner_name, len(released))
            for cluster in released.values():
                self._line.runs_queued(cluster)
        return store_service_pb2.ReleaseLeasesResponse(run_ids=list(released))

    def _queued_elsewhere(self, payload: str) -> None:
        """Another api process queued or released runs: wake as many claims that may take
        them."""
        for cluster, count in _queued_counts(payload).items():
            for _ in range(count):
                self._line.runs_queued(cluster)

    @contextmanager
    def watch(self) -> Iterator[asyncio.Queue[Signal]]:
        """Signals for one runner's WatchWork stream, as they happen."""
        queue: asyncio.Queue[Signal] = asyncio.Queue(maxsize=1024)
        self._watchers.add(queue)
        WORK_WATCHERS.inc()
        try:
            yield queue
        finally:
            self._watchers.discard(queue)
            WORK_WATCHERS.dec()

    def announce_cancel(self, conn: Connection, run_id: str) -> None:
        """Inside the CancelRun's transaction: the other api processes tell their runners when it
        commits (`signal_cancel` tells this one's)."""
        self._notifications.notify(conn, CANCELS, run_id)

    def signal_cancel(self, run_id: str) -> None:
        """Tell the runners watching here that a cancellation of `run_id` was requested; its
        holder stops it."""
        signal = Signal(kind=Signal.KIND_CANCEL_REQUESTED, run_id=run_id)
        for queue in self._watchers:
            if not queue.full():  # a runner that far behind renews its leases: it learns there
                queue.put_nowait(signal)
