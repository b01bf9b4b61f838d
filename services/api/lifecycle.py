"""What the runner asks of the store: lease a runnable run, keep the lease, commit the outcome.

A lease is (lease_owner, lease_expires_at) on a running run. A run whose lease expired is
runnable again; the runner that lost it can neither renew nor commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from agents.v1 import message_pb2, run_pb2, store_service_pb2
from sqlalchemy import ColumnElement, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from services.api import events, mapping, validation
from services.api.db.engine import Database
from services.api.db.models import conversations, inference_jobs, messages, runs
from services.common.errors import ParleyError

DEFAULT_LEASE_SECONDS = 60
TERMINAL = frozenset(
    {run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_REQUIRES_ACTION, run_pb2.RUN_STATUS_FAILED}
)


RUN_BY_ID = select(runs).where(runs.c.id == bindparam("id"))

# A run with its conversation's current name (Run.live.current_name).
RUN_WITH_NAME = select(runs, conversations.c.name.label("current_name")).join(
    conversations, conversations.c.id == runs.c.conversation_id
)


def _lease(seconds: int) -> timedelta:
    validation.at_least(seconds, 0, "lease_seconds")
    return timedelta(seconds=seconds or DEFAULT_LEASE_SECONDS)


def run_not_found(run_id: str) -> ParleyError:
    return ParleyError("RunNotFound", f"run {run_id} was not found", run_id=run_id)


def _lease_lost(run_id: str, detail: str) -> ParleyError:
    return ParleyError("LeaseLost", f"lease lost on run {run_id}: {detail}", run_id=run_id)


@dataclass(frozen=True)
class ClaimedRun:
    run: RowMapping
    conversation: RowMapping
    history: list[RowMapping]
    live_turns: list[run_pb2.LiveTurn]
    usage: run_pb2.Usage


@dataclass(frozen=True)
class Claim:
    claimed: ClaimedRun | None
    retry_after_ms: int  # none claimed: until the earliest running lease expires (0: none)


def _runnable(table: Any) -> ColumnElement[bool]:
    """Pending, or running on a lease that has expired at :now (its runner is gone)."""
    return or_(
        table.c.status == "pending",
        and_(table.c.status == "running", table.c.lease_expires_at < bindparam("now")),
    )


def _leasing(run_id: Any) -> Any:
    """UPDATE … RETURNING that leases the run `run_id` (a value or a subquery) to :runner."""
    return (
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status="running",
            lease_owner=bindparam("runner"),
            lease_expires_at=bindparam("expires"),
            attempts=runs.c.attempts + 1,
        )
        .returning(*runs.c)
    )


def _claim_statement(skip_locked: bool) -> Any:
    candidate = runs.alias("candidate")
    oldest = (
        select(candidate.c.id)
        .where(_runnable(candidate))
        .order_by(candidate.c.started_at, candidate.c.id)
        .limit(1)
    )
    if skip_locked:
        oldest = oldest.with_for_update(skip_locked=True)
    return _leasing(oldest.scalar_subquery())


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}  # by is_postgres
_CLAIM_NEW = _leasing(bindparam("run_id"))  # a new run, handed over by its own StartRun
_EARLIEST_LEASE = select(func.min(runs.c.lease_expires_at)).where(runs.c.status == "running")
_CONVERSATION = select(conversations).where(conversations.c.id == bindparam("id"))
_HISTORY = (
    select(messages)
    .where(messages.c.conversation_id == bindparam("id"))
    .order_by(messages.c.sequence_no)
)
_USAGE = select(
    func.coalesce(func.sum(inference_jobs.c.prompt_tokens), 0),
    func.coalesce(func.sum(inference_jobs.c.completion_tokens), 0),
).where(inference_jobs.c.run_id == bindparam("run_id"))


async def claim_run(db: Database, hub: events.Hub, runner_id: str, lease_seconds: int) -> Claim:
    """Lease the oldest runnable run (one UPDATE … RETURNING); when there is none, say when the
    earliest running lease expires."""
    if not runner_id:
        raise ParleyError("InvalidRequest", "runner_id is required", field="runner_id")
    lease = _lease(lease_seconds)
    claim = _CLAIM[db.is_postgres]

    def work(conn: Connection) -> Claim:
        now = datetime.now(UTC)
        params = {"now": now, "runner": runner_id, "expires": now + lease}
        run = conn.execute(claim, params).mappings().first()
        if run is None:
            return Claim(None, _retry_after_ms(conn, now))
        return _claimed(conn, run, now)

    return await hub.write(db, work)


def claim_new_run(
    conn: Connection, run_id: str, runner_id: str, lease_seconds: int, conversation: RowMapping
) -> Claim:
    """Inside the StartRun transaction that inserted `run_id` (and read its `conversation`):
    lease it to a runner waiting in ClaimRun (the run never waits in the queue)."""
    now = datetime.now(UTC)
    params = {"run_id": run_id, "runner": runner_id, "expires": now + _lease(lease_seconds)}
    return _claimed(conn, conn.execute(_CLAIM_NEW, params).mappings().one(), now, conversation)


def _claimed(
    conn: Connection, run: RowMapping, now: datetime, conversation: RowMapping | None = None
) -> Claim:
    """What the runner needs of a run just leased to it (and of its conversation, read here
    unless the caller's transaction has it)."""
    run_id = run["id"]
    resumed = run["attempts"] > 1  # a lost runner's run: hand over what it already did
    if not resumed:
        events.append(conn, run_id, events.status_event(run_pb2.RUN_STATUS_RUNNING), now)
    if conversation is None:
        conversation = conn.execute(_CONVERSATION, {"id": run["conversation_id"]}).mappings().one()
    history = list(conn.execute(_HISTORY, {"id": run["conversation_id"]}).mappings().all())
    live: list[run_pb2.LiveTurn] = []
    usage = run_pb2.Usage()
    if resumed:
        live = events.live_turns(conn, run_id)
        prompt, completion = conn.execute(_USAGE, {"run_id": run_id}).one()
        usage = run_pb2.Usage(
            prompt_tokens=int(prompt),
            completion_tokens=int(completion),
            total_tokens=int(prompt) + int(completion),
        )
    return Claim(ClaimedRun(run, conversation, history, live, usage), 0)


def _retry_after_ms(conn: Connection, now: datetime) -> int:
    earliest = conn.execute(_EARLIEST_LEASE).scalar()
    if earliest is None:
        return 0
    if earliest.tzinfo is None:
        earliest = earliest.replace(tzinfo=UTC)
    return max(1, int((earliest - now).total_seconds() * 1000) + 1)


def claim_response(claim: Claim, docs_url: str) -> store_service_pb2.ClaimRunResponse:
    claimed = claim.claimed
    if claimed is None:
        return store_service_pb2.ClaimRunResponse(retry_after_ms=claim.retry_after_ms)
    run = mapping.run_to_proto(claimed.run, claimed.conversation["name"], docs_url)
    payload = mapping.from_json(claimed.run["payload"], run_pb2.RunPayload())
    return store_service_pb2.ClaimRunResponse(
        run=run,
        system_prompt=claimed.conversation["system_prompt"] or "",
        history=[mapping.message_to_proto(row) for row in claimed.history],
        input=mapping.input_turn(payload, run.id, claimed.conversation["version"] + 1),
        resumed_turns=claimed.live_turns,
        resumed_usage=claimed.usage,
        attempt=claimed.run["attempts"],
        cancel_requested=claimed.run["cancel_requested"],
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


async def renew_leases(
    db: Database, request: store_service_pb2.RenewLeasesRequest
) -> store_service_pb2.RenewLeasesResponse:
    """Extend the leases the runner still holds; the others are `lost`."""
    if not request.run_ids:
        return store_service_pb2.RenewLeasesResponse()
    params = {
        "run_ids": list(request.run_ids),
        "runner": request.runner_id,
        "expires": datetime.now(UTC) + _lease(request.lease_seconds),
    }
    held = dict(await db.write(lambda conn: conn.execute(_RENEW, params).all()))
    return store_service_pb2.RenewLeasesResponse(
        cancel_requested=[run_id for run_id, cancel in held.items() if cancel],
        lost=[run_id for run_id in request.run_ids if run_id not in held],
    )


async def commit_run(
    db: Database, hub: events.Hub, request: store_service_pb2.CommitRunRequest, docs_url: str = ""
) -> int:
    """In one transaction: the input turn and `turns` become messages after the conversation's
    version, the version moves to the last one, the run gets its terminal state."""
    outcome = request.run
    if outcome.status not in TERMINAL:
        raise ParleyError(
            "InvalidRequest",
            "run.status must be completed, requires_action or failed",
            field="run.status",
        )
    if outcome.status == run_pb2.RUN_STATUS_REQUIRES_ACTION and not outcome.pending_tool_calls:
        raise ParleyError(
            "InvalidRequest",
            "a requires_action run needs pending_tool_calls",
            field="run.pending_tool_calls",
        )
    if outcome.status == run_pb2.RUN_STATUS_FAILED and not outcome.error.type:
        raise ParleyError("InvalidRequest", "a failed run needs error.type", field="run.error")
    for i, turn in enumerate(request.turns):
        if turn.role not in mapping.ROLE_TO_DB:
            raise ParleyError(
                "InvalidRequest", f"turns[{i}].role is required", field=f"turns[{i}].role"
            )

    def work(conn: Connection) -> int:
        now = datetime.now(UTC)  # in the transaction: its events' times follow their order
        run = _held(conn, db, request.run_id, request.runner_id)
        if request.HasField("iteration"):
            _record_iteration(conn, run, request.iteration, now)
        for turn in request.publish:
            events.append(conn, run["id"], run_pb2.RunEvent(type=events.TURN, turn=turn), now)
        return finalize(conn, db, run, outcome, list(request.turns), docs_url, now)

    return await hub.write(db, work)


_VERSION = select(conversations.c.version).where(conversations.c.id == bindparam("id"))
_VERSION_FOR_UPDATE = _VERSION.with_for_update()
_INSERT_MESSAGES = insert(messages)
_CLOSE_CONVERSATION = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(version=bindparam("new_version"), active_run_id=None, updated_at=bindparam("now"))
    .returning(conversations.c.name)
)
_HELD_FOR_UPDATE = RUN_BY_ID.with_for_update()
# Its SET clause comes from the parameters (mapping.terminal_values): one statement, built once.
_END_RUN = update(runs).where(runs.c.id == bindparam("run_id")).returning(*runs.c)
_INSERT_JOB = insert(inference_jobs)
_SET_JOB_IDS = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"))
    .values(submitted_inference_job_ids=bindparam("ids"))
)


def finalize(
    conn: Connection,
    db: Database,
    run: RowMapping,
    outcome: run_pb2.Run,
    new_turns: list[message_pb2.Message],
    docs_url: str,
    now: datetime,
) -> int:
    """Inside the caller's transaction: the input turn and `new_turns` become messages after the
    conversation's version, the version moves to the last one, the run gets its terminal state
    and its terminal event. Returns the new version."""
    conversation_id = run["conversation_id"]
    version_query = _VERSION_FOR_UPDATE if db.is_postgres else _VERSION
    version = conn.execute(version_query, {"id": conversation_id}).scalar_one()
    payload = mapping.from_json(run["payload"], run_pb2.RunPayload())
    turns: list[message_pb2.Message] = [
        mapping.input_turn(payload, run["id"], version + 1),
        *new_turns,
    ]
    conn.execute(
        _INSERT_MESSAGES,
        [
            mapping.message_values(turn, conversation_id, version + i, run["id"], now)
            for i, turn in enumerate(turns, start=1)
        ],
    )
    new_version = version + len(turns)
    name = conn.execute(
        _CLOSE_CONVERSATION,
        {"conversation_id": conversation_id, "new_version": new_version, "now": now},
    ).scalar_one()
    params = {"run_id": run["id"], **mapping.terminal_values(outcome, now)}
    ended = conn.execute(_END_RUN, params).mappings().one()
    # The terminal event carries the run as it ends.
    ended_run = mapping.run_to_proto(ended, name, docs_url)
    event = run_pb2.RunEvent(
        type=events.TERMINAL_TYPES[ended_run.status], status=ended_run.status, run=ended_run
    )
    events.append(conn, run["id"], event, now)
    return new_version


def _held(conn: Connection, db: Database, run_id: str, runner_id: str) -> RowMapping:
    """The run, locked on PostgreSQL: RunNotFound, or LeaseLost unless `runner_id` holds it."""
    query = _HELD_FOR_UPDATE if db.is_postgres else RUN_BY_ID
    run = conn.execute(query, {"id": run_id}).mappings().first()
    if run is None:
        raise run_not_found(run_id)
    if run["status"] != "running" or run["lease_owner"] != runner_id:
        raise _lease_lost(
            run_id,
            f"it is {run['status']}, held by {run['lease_owner'] or 'nobody'}, not by {runner_id}",
        )
    return run


async def append_live_turn(
    db: Database, hub: events.Hub, request: store_service_pb2.AppendLiveTurnRequest
) -> int:
    def work(conn: Connection) -> run_pb2.RunEvent:
        now = datetime.now(UTC)
        run = _held(conn, db, request.run_id, request.runner_id)
        if request.HasField("iteration"):
            _record_iteration(conn, run, request.iteration, now)
            ids = [*orjson.loads(run["submitted_inference_job_ids"]), request.iteration.job.id]
            conn.execute(_SET_JOB_IDS, {"run_id": run["id"], "ids": orjson.dumps(ids).decode()})
        return events.append(
            conn, request.run_id, run_pb2.RunEvent(type=events.TURN, turn=request.turn), now
        )

    return (await hub.write(db, work)).seq


def _record_iteration(
    conn: Connection, run: RowMapping, iteration: store_service_pb2.Iteration, now: datetime
) -> None:
    """The job row and a "usage" event. (Its id joins submitted_inference_job_ids separately:
    a commit writes the runner's whole list with the terminal state anyway.)"""
    job = iteration.job
    if job.run_id != run["id"]:
        raise ParleyError(
            "InvalidRequest",
            f"iteration.job.run_id {job.run_id!r} is not the run {run['id']}",
            field="iteration.job.run_id",
        )
    conn.execute(_INSERT_JOB, mapping.job_values(job))
    usage = run_pb2.RunEvent(type=events.USAGE, usage=iteration.run_usage)
    events.append(conn, job.run_id, usage, now)


async def get_inference_job(db: Database, job_id: str) -> store_service_pb2.InferenceJob:
    row = await db.read(
        lambda conn: (
            conn.execute(select(inference_jobs).where(inference_jobs.c.id == job_id))
            .mappings()
            .first()
        )
    )
    if row is None:
        raise ParleyError(
            "InferenceJobNotFound", f"inference job {job_id} was not found", job_id=job_id
        )
    return mapping.job_to_proto(row)


async def set_generated_name(db: Database, conversation_id: str, name: str) -> bool:
    """Write a generated name only while the conversation has none: a user-set name wins."""
    name = name.strip()
    if not name:
        return False
    updated = await db.write(
        lambda conn: (
            conn.execute(
                update(conversations)
                .where(and_(conversations.c.id == conversation_id, conversations.c.name.is_(None)))
                .values(name=name, updated_at=datetime.now(UTC))
            ).rowcount
        )
    )
    return updated == 1
