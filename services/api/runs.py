"""Runs as the public API sees them: start (validate → write → offer to the queue), get, cancel,
and follow a run's events.

Starting is one transaction: the replay check, the merged config's validation and the state
checks, then a conditional UPDATE of the conversation row that claims it (`active_run_id`),
whose rowcount decides between concurrent starters, the run's INSERT, and its offer to the run
queue (leased there and then to a waiting runner, if one waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agents.v1 import conversation_service_pb2, run_pb2
from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.api import effective_config, event_log, mapping, run_queue, validation
from services.api.conversations import owned_conversation
from services.api.db.engine import HotRead
from services.api.db.models import conversations, inference_jobs, messages, runs
from services.api.db.rows import ConversationRow, InferenceJobRow, RunRow, values
from services.api.run_reports import finalize
from services.common.auth import Principal
from services.common.contract import CANCELLED_MESSAGE
from services.common.errors import ParleyError
from services.common.incidents import AGENT_LOOP_CANCELLED
from services.common.metrics import RUNS_STARTED

CANCEL_WAIT_S: Final = 10.0  # how long CancelRun waits for a running run's runner to stop it
DEFAULT_CLUSTERS_KEPT: Final = 4096  # conversations whose default cluster a store process keeps

_INSERT_RUN = insert(runs)
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("id"))
_BY_OP = select(runs).where(
    and_(runs.c.conversation_id == bindparam("cid"), runs.c.client_op_id == bindparam("op"))
)
_STATUS = select(runs.c.status).where(runs.c.id == bindparam("id"))
# The caller's run with its conversation's current name (Run.live.current_name).
_OWNED = (
    select(runs, conversations.c.name)
    .join(conversations, conversations.c.id == runs.c.conversation_id)
    .where(
        and_(
            runs.c.id == bindparam("id"),
            runs.c.company_id == bindparam("company_id"),
            runs.c.user_id == bindparam("user_id"),
        )
    )
)
_OWNED_FOR_UPDATE = _OWNED.with_for_update(of=runs)
_OWNED_READ = HotRead(_OWNED)  # every GET of a run
# Only the status of the caller's run (what an event stream's first look needs).
_OWNED_STATUS = select(runs.c.status).where(
    and_(
        runs.c.id == bindparam("id"),
        runs.c.company_id == bindparam("company_id"),
        runs.c.user_id == bindparam("user_id"),
    )
)
_TAKE_CONVERSATION = (
    update(conversations)
    .where(
        and_(
            conversations.c.id == bindparam("conversation_id"),
            conversations.c.version == bindparam("expected_version"),
            conversations.c.active_run_id.is_(None),
        )
    )
    .values(active_run_id=bindparam("new_run_id"), latest_run_id=bindparam("new_run_id"))
)
_FLAG_CANCEL = update(runs).where(runs.c.id == bindparam("run_id")).values(cancel_requested=True)
_LATEST_ASSISTANT = (
    select(messages.c.content_blocks)
    .where(
        and_(
            messages.c.conversation_id == bindparam("cid"),
            messages.c.run_id == bindparam("run_id"),
            messages.c.role == "assistant",
        )
    )
    .order_by(messages.c.sequence_no.desc())
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class StartedRun:
    row: RunRow  # as accepted (pending)
    current_name: str | None
    replayed: bool  # an earlier request with the same client_op_id created it


@dataclass(frozen=True, slots=True)
class ReadRun:
    row: RunRow
    current_name: str | None
    live: list[run_pb2.LiveTurn]  # while in flight


class Runs:
    """The run operations of one store process, over its event log and run queue."""

    def __init__(
        self,
        log: event_log.EventLog,
        queue: run_queue.RunQueue,
        rules: validation.ConfigRules,
        cancel_wait_s: float = CANCEL_WAIT_S,
    ) -> None:
        self._log = log
        self._db = log.db
        self._queue = queue
        self._rules = rules
        self._configs = validation.KnownConfigs(rules)
        self._cancel_wait_s = cancel_wait_s
        self._default_clusters: OrderedDict[str, str] = OrderedDict()  # conversation -> cluster

    async def start(
        self,
        principal: Principal,
        request: conversation_service_pb2.StartRunRequest,
        traceparent: str,
    ) -> StartedRun:
        """`traceparent`: the trace the new run joins (tracing.run_traceparent: the caller's,
        else a new one), kept with it; Run.trace_id is its trace id."""
        client_op_id = await validation.check_start_run(request, self._rules)
        run_id = validation.check_run_extras(request)
        # Only a client-chosen run_id is checked against the body that created it.
        digest = _request_hash(request) if run_id is not None else ""
        start = _Start(request, client_op_id, run_id, digest, traceparent)
        cluster = await self._cluster_hint(principal, request)
        try:
            async with self._queue.offer(cluster) as offer:
                started = await self._log.write(
                    lambda conn: _start(conn, self._configs, principal, start, offer)
                )
        except IntegrityError:
            # Another request with this client_op_id (or run_id) inserted first: answer with its
            # run, or run-id-conflict when that run is not this request's.
            replayed = await self._db.read(lambda conn: _replay(conn, principal, start))
            if replayed is None:
                raise
            return replayed
        if not started.replayed:
            RUNS_STARTED.labels(request.payload.WhichOneof("input")).inc()
        return started

    async def _cluster_hint(
        self, principal: Principal, request: conversation_service_pb2.StartRunRequest
    ) -> str | None:
        """The new run's execution cluster, learnt before its transaction when the run queue
        needs it to pick the waiting claim it hands the run to: the override's, else the
        conversation's default (defaults never change). A wrong guess costs a wake-up, never a
        run (`Offer.place` checks the run itself)."""
        if request.config_override.HasField("execution_cluster"):
            return request.config_override.execution_cluster
        if not self._queue.names_clusters():
            return None
        known = self._default_clusters.get(request.id)
        if known is not None:
            self._default_clusters.move_to_end(request.id)
            return known
        cluster = await self._db.read(lambda conn: _default_cluster(conn, principal, request.id))
        if cluster is not None:
            self._default_clusters[request.id] = cluster
            if len(self._default_clusters) > DEFAULT_CLUSTERS_KEPT:
                self._default_clusters.popitem(last=False)
        return cluster

    async def get(self, principal: Principal, run_id: str) -> ReadRun:
        """The caller's run and its live turns, or RunNotFound."""
        return await self._db.read(lambda conn: _read(conn, principal, run_id))

    async def inference_jobs(self, principal: Principal, run_id: str) -> list[InferenceJobRow]:
        """The caller's run's model calls by iteration, or RunNotFound as GET run answers."""

        def read(conn: Connection) -> list[InferenceJobRow]:
            run, _ = _owned_run(conn, principal, run_id)
            return [InferenceJobRow(*row) for row in conn.execute(_RUN_JOBS, {"run_id": run.id})]

        return await self._db.read(read)

    async def cancel(self, principal: Principal, run_id: str) -> ReadRun:
        """A pending run fails at once (its input turn is committed, so the conversation stays
        consistent); a running run is flagged and its runner told, then we wait (bounded) for
        its terminal state. Either way the answer is the run as GET shows it afterwards."""
        lock = self._db.is_postgres

        def cancel(conn: Connection) -> RunRow:
            run, _ = _owned_run(conn, principal, run_id, for_update=lock)
            if run.status == "pending":
                outcome = run_pb2.Run(
                    status=run_pb2.RUN_STATUS_FAILED,
                    error=run_pb2.RunError(type=AGENT_LOOP_CANCELLED, message=CANCELLED_MESSAGE),
                    iterations_used=0,
                )
                payload = mapping.from_json(run.payload, run_pb2.RunPayload())
                unexecuted = mapping.unexecuted_approved_turn(
                    payload, run, f"not executed: {CANCELLED_MESSAGE} before it ran"
                )
                turns = [unexecuted] if unexecuted is not None else []
                now = datetime.now(UTC)
                notifications = self._log.notifications
                finalize(conn, notifications, run, outcome, turns, now, self._rules.catalogue)
            elif run.status == "running":
                conn.execute(_FLAG_CANCEL, {"run_id": run.id})
                self._queue.announce_cancel(conn, run.id)
            else:
                raise ParleyError(
                    "RunNotCancellable",
                    f"run {run.id} is already {run.status}; only pending or running runs can "
                    "be cancelled",
                    run_id=run.id,
                    run_status=run.status,
                )
            return run

        run = await self._log.write(cancel)
        if run.status == "pending":
            self._queue.pending_changed()
        if run.status == "running":
            self._queue.signal_cancel(run.id)
            await self._wait_terminal(run.id)
        return await self.get(principal, run.id)

    async def _wait_terminal(self, run_id: str) -> None:
        """Until the run's terminal event commits (in this process or another), or the cancel
        wait passes."""

        async def ended() -> bool:
            return await self._db.read(lambda conn: _status(conn, run_id)) not in mapping.IN_FLIGHT

        with self._log.subscribe(run_id) as subscription:
            if await ended():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._cancel_wait_s):
                    while True:
                        batch = await subscription.next()
                        if any(event_log.is_terminal(e) for e in batch.events):
                            return
                        if batch.read_log and await ended():
                            return

    async def events(
        self, principal: Principal, run_id: str, after_seq: int
    ) -> AsyncIterator[run_pb2.RunEvent]:
        """The run's events after `after_seq`, then each new one as its transaction commits,
        until the terminal event. New events come from the log's subscription; the log is read
        only to catch up: for what other api processes committed, heard of or not yet (a gap)."""
        validation.at_least(after_seq, 0, "after_seq")
        canonical = validation.check_uuid(run_id)
        if canonical is None:
            raise run_queue.run_not_found(run_id)

        # Status first: the terminal event commits with the terminal status, so a terminal
        # status read here guarantees the events read next include it (each statement has its
        # own snapshot under READ COMMITTED). The first look reads it with the owner check.
        def first_look(conn: Connection) -> tuple[str, list[run_pb2.RunEvent]]:
            params = {"id": canonical, **_owner(principal)}
            status: str | None = conn.execute(_OWNED_STATUS, params).scalar()
            if status is None:
                raise run_queue.run_not_found(run_id)
            return status, event_log.read(conn, canonical, after_seq)

        def catch_up(conn: Connection) -> tuple[str, list[run_pb2.RunEvent]]:
            return _status(conn, canonical), event_log.read(conn, canonical, after_seq)

        with self._log.subscribe(canonical) as subscription:
            status, batch = await self._db.read(first_look)
            if not batch and status not in mapping.IN_FLIGHT:
                return  # terminal, and the caller has seen everything
            while True:
                for event in batch:
                    if event.seq <= after_seq:
                        continue  # read from the log already
                    yield event
                    after_seq = event.seq
                    if event_log.is_terminal(event):
                        return
                delivered = (await subscription.next()).after(after_seq)
                if delivered is None:  # committed by another api process, or a gap: catch up
                    delivered = (await self._db.read(catch_up))[1]
                batch = delivered


@dataclass(frozen=True, slots=True)
class _Start:
    """A StartRun request with what was derived from it before its transaction."""

    request: conversation_service_pb2.StartRunRequest
    client_op_id: str  # canonical
    run_id: str | None  # the client's, canonical; None: Parley chooses
    request_hash: str
    traceparent: str  # W3C, the run's trace


def _request_hash(request: conversation_service_pb2.StartRunRequest) -> str:
    """The body's fingerprint: a replayed run_id must carry the same one. (Deterministic
    serialisation: the same body always hashes the same; path id included.)"""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def _same_start(conn: Connection, principal: Principal, start: _Start) -> RunRow | None:
    """The run the client-chosen run_id names, when it is this request's (a replay); None when
    no run has the id; run-id-conflict when another conversation or body has it."""
    if start.run_id is None:
        return None
    existing = _run_by_id(conn, start.run_id)
    if existing is None:
        return None
    if (
        existing.company_id == principal.company_id
        and existing.user_id == principal.user_id
        and existing.request_hash == start.request_hash
    ):
        return existing
    raise _run_id_conflict(start.run_id)


def _run_id_conflict(run_id: str) -> ParleyError:
    return ParleyError(
        "RunIdConflict",
        f"run_id {run_id} names a run started by another request (another conversation or "
        "body); resend the original request unchanged, or choose a new run_id",
        run_id=run_id,
    )


def _op_replay(start: _Start, existing: RunRow) -> RunRow:
    """A client_op_id replay is one only when it does not name another run_id."""
    if start.run_id is not None and existing.id != start.run_id:
        raise _run_id_conflict(start.run_id)
    return existing


def _start(
    conn: Connection,
    configs: validation.KnownConfigs,
    principal: Principal,
    start: _Start,
    offer: run_queue.Offer,
) -> StartedRun:
    request, client_op_id = start.request, start.client_op_id
    conversation = owned_conversation(conn, principal, request.id)
    # The body is validated before the replay check: a replay with a bad body is a 400 too.
    has_override = request.HasField("config_override")
    merged = effective_config.merge(
        mapping.config_from_json(conversation.defaults),
        request.config_override if has_override else None,
    )
    where = "config_override" if has_override else "defaults"
    cluster = configs.validate(merged, where, principal.company_id)
    validation.check_content_on_cluster(request.payload.user_message.content, cluster)
    if request.HasField("tool_choice"):
        validation.validate_tool_choice(request.tool_choice, merged)
    replayed = _same_start(conn, principal, start)
    if replayed is not None:
        return StartedRun(replayed, conversation.name, True)
    try:
        _check_can_start(conn, conversation, request)
    except ParleyError:
        # A replay finds the conversation moved on by its own run: that run is the answer. (A
        # replay that passes the checks fails on the run's unique client_op_id instead: `start`
        # answers with its run then, so the happy path reads no run by its op.)
        existing = _run_by_op(conn, conversation.id, client_op_id)
        if existing is not None:
            return StartedRun(_op_replay(start, existing), conversation.name, True)
        raise

    run_id = start.run_id or str(uuid.uuid4())
    taken = conn.execute(
        _TAKE_CONVERSATION,
        {
            "conversation_id": conversation.id,
            "expected_version": request.expected_version,
            "new_run_id": run_id,
        },
    )
    if taken.rowcount != 1:
        # Someone else started a run in between: the same request, or a different one.
        replayed = _same_start(conn, principal, start)
        if replayed is not None:
            return StartedRun(replayed, conversation.name, True)
        existing = _run_by_op(conn, conversation.id, client_op_id)
        if existing is not None:
            return StartedRun(_op_replay(start, existing), conversation.name, True)
        _check_can_start(conn, owned_conversation(conn, principal, request.id), request)
        raise ParleyError(
            "VersionConflict",
            "another run started on this conversation at the same time; "
            "refetch the conversation and retry",
            conversation_id=conversation.id,
        )
    run = RunRow(
        id=run_id,
        conversation_id=conversation.id,
        company_id=principal.company_id,
        user_id=principal.user_id,
        client_op_id=client_op_id,
        status="pending",
        payload=mapping.to_json(request.payload),
        tool_choice=mapping.to_json(request.tool_choice)
        if request.HasField("tool_choice")
        else None,
        effective_config=mapping.to_json(effective_config.with_text_mode_schema(merged)),
        iterations_used=None,
        prompt_tokens=None,
        completion_tokens=None,
        total_tokens=None,
        submitted_inference_job_ids="[]",
        pending_tool_calls="[]",
        final_text=None,
        final_structured_output=None,
        error_type=None,
        error_message=None,
        lease_owner=None,
        lease_expires_at=None,
        started_at=datetime.now(UTC),
        completed_at=None,
        event_seq=0,
        attempts=0,
        cancel_requested=False,
        execution_cluster=cluster.name,
        model=merged.model,
        execution_started_at=None,
        cache_read_tokens=None,
        cache_write_tokens=None,
        cost_nano_usd=None,
        run_metadata=mapping.to_json(request.metadata),
        request_hash=start.request_hash,
        traceparent=start.traceparent,
    )
    # Inserted with its events' seqs (pending, and running when a waiting claim takes it): the
    # row is new, so nobody else can number its events, and nobody elsewhere follows it yet.
    inserted = offer.lease(run)
    count = 1 if inserted.lease_owner is None else 2
    inserted = dataclasses.replace(inserted, event_seq=count)
    conn.execute(_INSERT_RUN, values(inserted))
    event_log.seqs_taken(conn, run_id, count, count)
    event_log.append(conn, run_id, event_log.status_event(run_pb2.RUN_STATUS_PENDING))
    offer.place(conn, inserted, conversation)
    # As accepted: pending, at its first event's seq.
    return StartedRun(dataclasses.replace(run, event_seq=1), conversation.name, False)


def _default_cluster(conn: Connection, principal: Principal, conversation_id: str) -> str | None:
    try:
        conversation = owned_conversation(conn, principal, conversation_id)
    except ParleyError:
        return None  # the StartRun's own transaction says so
    return mapping.config_from_json(conversation.defaults).execution_cluster


def _replay(conn: Connection, principal: Principal, start: _Start) -> StartedRun | None:
    conversation = owned_conversation(conn, principal, start.request.id)
    replayed = _same_start(conn, principal, start)
    if replayed is not None:
        return StartedRun(replayed, conversation.name, True)
    existing = _run_by_op(conn, conversation.id, start.client_op_id)
    if existing is None:
        return None
    return StartedRun(_op_replay(start, existing), conversation.name, True)


def _check_can_start(
    conn: Connection,
    conversation: ConversationRow,
    request: conversation_service_pb2.StartRunRequest,
) -> None:
    """The compare-and-swap and what the conversation's latest run allows next."""
    expected, current = request.expected_version, conversation.version
    if expected != current:
        raise ParleyError(
            "VersionConflict",
            f"expected_version {expected} does not match the conversation's current "
            f"version {current}; refetch the conversation and its messages since "
            f"version {expected}, then retry",
            expected_version=expected,
            current_version=current,
        )
    if conversation.active_run_id is not None:
        active = _run_by_id(conn, conversation.active_run_id)
        status = active.status if active is not None else "pending"
        raise ParleyError(
            "VersionConflict",
            f"run {conversation.active_run_id} is still {status} on this "
            "conversation; wait until it reaches a terminal status",
            run_id=conversation.active_run_id,
            run_status=status,
            expected_version=expected,
            current_version=current,
        )
    latest = _run_by_id(conn, conversation.latest_run_id) if conversation.latest_run_id else None
    paused = latest if latest is not None and latest.status == "requires_action" else None
    if request.payload.WhichOneof("input") == "user_message":
        if paused is not None:
            waiting = ", ".join(mapping.pending_tool_call_ids(paused))
            raise ParleyError(
                "VersionConflict",
                f"run {paused.id} is waiting for tool outputs ({waiting}); answer "
                "it with payload.kind `tool_outputs` before sending a user message",
                run_id=paused.id,
                run_status="requires_action",
                expected_version=expected,
                current_version=current,
            )
        return
    if paused is None:
        raise ParleyError(
            "NoPendingToolCalls",
            "the conversation's latest run is not waiting for tool outputs; send a "
            "user_message instead",
            conversation_id=conversation.id,
        )
    validation.check_tool_outputs(
        request.payload.tool_outputs,
        mapping.pending_tool_calls(paused),
        _latest_tool_uses(conn, conversation.id, paused.id),
    )


def _latest_tool_uses(conn: Connection, conversation_id: str, run_id: str) -> dict[str, str]:
    content: str | None = conn.execute(
        _LATEST_ASSISTANT, {"cid": conversation_id, "run_id": run_id}
    ).scalar()
    return mapping.tool_uses(content) if content is not None else {}


def _run_by_op(conn: Connection, conversation_id: str, client_op_id: str) -> RunRow | None:
    row = conn.execute(_BY_OP, {"cid": conversation_id, "op": client_op_id}).first()
    return None if row is None else RunRow(*row)


def _run_by_id(conn: Connection, run_id: str) -> RunRow | None:
    row = conn.execute(_RUN_BY_ID, {"id": run_id}).first()
    return None if row is None else RunRow(*row)


def _status(conn: Connection, run_id: str) -> str:
    status: str = conn.execute(_STATUS, {"id": run_id}).scalar_one()
    return status


_RUN_JOBS = (
    select(inference_jobs)
    .where(inference_jobs.c.run_id == bindparam("run_id"))
    .order_by(inference_jobs.c.iteration, inference_jobs.c.started_at)
)


def _read(conn: Connection, principal: Principal, run_id: str) -> ReadRun:
    run, name = _owned_run(conn, principal, run_id)
    live = event_log.live_view(conn, run.id) if run.status in mapping.IN_FLIGHT else []
    return ReadRun(run, name, live)


def _owned_run(
    conn: Connection, principal: Principal, run_id: str, *, for_update: bool = False
) -> tuple[RunRow, str | None]:
    """The caller's run with its conversation's current name, or RunNotFound (also for
    malformed ids). `for_update` locks the run's row (not the conversation's)."""
    canonical = validation.check_uuid(run_id)
    if canonical is not None:
        params = {"id": canonical, **_owner(principal)}
        row: Sequence[Any] | None
        if for_update:
            row = conn.execute(_OWNED_FOR_UPDATE, params).first()
        else:
            row = _OWNED_READ.first(conn, params)
        if row is not None:
            return RunRow(*row[:-1]), row[-1]
    raise run_queue.run_not_found(run_id)


def _owner(principal: Principal) -> dict[str, int]:
    return {"company_id": principal.company_id, "user_id": principal.user_id}
