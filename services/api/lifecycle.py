"""What the runner asks of the store: lease a runnable run, keep the lease, commit the outcome.

A lease is (lease_owner, lease_expires_at) on a running run. A run whose lease expired is
runnable again; the runner that lost it can neither renew nor commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from agents.v1 import message_pb2, run_pb2, store_service_pb2
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import events, mapping, validation
from services.api.db.engine import Database
from services.api.db.models import conversations, inference_jobs, messages, runs
from services.common.errors import ParleyError

DEFAULT_LEASE_SECONDS = 60
TERMINAL = frozenset(
    {run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_REQUIRES_ACTION, run_pb2.RUN_STATUS_FAILED}
)


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
    retry_after_ms: int  # when nothing was runnable: until the earliest running lease expires


async def claim_run(db: Database, runner_id: str, lease_seconds: int) -> Claim:
    """Lease the oldest pending run, or a running one whose lease expired."""
    if not runner_id:
        raise ParleyError("InvalidRequest", "runner_id is required", field="runner_id")
    lease = _lease(lease_seconds)
    now = datetime.now(UTC)
    runnable = or_(
        runs.c.status == "pending", and_(runs.c.status == "running", runs.c.lease_expires_at < now)
    )
    query = (
        select(runs.c.id, runs.c.status)
        .where(runnable)
        .order_by(runs.c.started_at, runs.c.id)
        .limit(1)
    )
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    async with db.engine.begin() as conn:
        found = (await conn.execute(query)).first()
        if found is None:
            return Claim(None, await _retry_after_ms(conn, now))
        run_id, status = found
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status="running",
                lease_owner=runner_id,
                lease_expires_at=now + lease,
                attempts=runs.c.attempts + 1,
            )
        )
        if status == "pending":
            await events.append(conn, run_id, events.status_event(run_pb2.RUN_STATUS_RUNNING), now)
        run = (await conn.execute(select(runs).where(runs.c.id == run_id))).mappings().one()
        conversation = (
            (
                await conn.execute(
                    select(conversations).where(conversations.c.id == run["conversation_id"])
                )
            )
            .mappings()
            .one()
        )
        history = list(
            (
                await conn.execute(
                    select(messages)
                    .where(messages.c.conversation_id == run["conversation_id"])
                    .order_by(messages.c.sequence_no)
                )
            )
            .mappings()
            .all()
        )
        live: list[run_pb2.LiveTurn] = []
        usage = run_pb2.Usage()
        if status == "running":  # a lost runner's run: hand over what it already did
            live = await events.live_turns(conn, run_id)
            prompt, completion = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(inference_jobs.c.prompt_tokens), 0),
                        func.coalesce(func.sum(inference_jobs.c.completion_tokens), 0),
                    ).where(inference_jobs.c.run_id == run_id)
                )
            ).one()
            usage = run_pb2.Usage(
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
                total_tokens=int(prompt) + int(completion),
            )
    return Claim(ClaimedRun(run, conversation, history, live, usage), 0)


async def _retry_after_ms(conn: AsyncConnection, now: datetime) -> int:
    earliest = (
        await conn.execute(
            select(func.min(runs.c.lease_expires_at)).where(runs.c.status == "running")
        )
    ).scalar()
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


async def renew_lease(db: Database, run_id: str, runner_id: str, lease_seconds: int) -> bool:
    """Extend the lease; returns whether a cancellation was requested meanwhile."""
    lease = _lease(lease_seconds)
    async with db.engine.begin() as conn:
        renewed = await conn.execute(
            update(runs)
            .where(
                and_(
                    runs.c.id == run_id, runs.c.status == "running", runs.c.lease_owner == runner_id
                )
            )
            .values(lease_expires_at=datetime.now(UTC) + lease)
            .returning(runs.c.cancel_requested)
        )
        cancel = renewed.scalar()
    if cancel is None:
        raise _lease_lost(run_id, f"runner {runner_id} does not hold it")
    return bool(cancel)


async def commit_run(
    db: Database, request: store_service_pb2.CommitRunRequest, docs_url: str = ""
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
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        run = await _held(conn, db, request.run_id, request.runner_id)
        new_version = await finalize(conn, db, run, outcome, list(request.turns), docs_url, now)
    return new_version


async def finalize(
    conn: AsyncConnection,
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
    conversation_query = select(conversations.c.version).where(
        conversations.c.id == run["conversation_id"]
    )
    if db.is_postgres:
        conversation_query = conversation_query.with_for_update()
    version = (await conn.execute(conversation_query)).scalar_one()
    payload = mapping.from_json(run["payload"], run_pb2.RunPayload())
    turns: list[message_pb2.Message] = [
        mapping.input_turn(payload, run["id"], version + 1),
        *new_turns,
    ]
    await conn.execute(
        insert(messages),
        [
            mapping.message_values(turn, run["conversation_id"], version + i, run["id"], now)
            for i, turn in enumerate(turns, start=1)
        ],
    )
    new_version = version + len(turns)
    await conn.execute(
        update(conversations)
        .where(conversations.c.id == run["conversation_id"])
        .values(version=new_version, active_run_id=None, updated_at=now)
    )
    await conn.execute(
        update(runs).where(runs.c.id == run["id"]).values(mapping.terminal_values(outcome, now))
    )
    await _terminal_event(conn, run["id"], docs_url, now)
    return new_version


async def _terminal_event(conn: AsyncConnection, run_id: str, docs_url: str, now: datetime) -> None:
    row = (await conn.execute(RUN_WITH_NAME.where(runs.c.id == run_id))).mappings().one()
    run = mapping.run_to_proto(row, row["current_name"], docs_url)
    event = run_pb2.RunEvent(type=events.TERMINAL_TYPES[run.status], status=run.status, run=run)
    await events.append(conn, run_id, event, now)


async def _held(conn: AsyncConnection, db: Database, run_id: str, runner_id: str) -> RowMapping:
    """The run, locked on PostgreSQL: RunNotFound, or LeaseLost unless `runner_id` holds it."""
    query = select(runs).where(runs.c.id == run_id)
    if db.is_postgres:
        query = query.with_for_update()
    run = (await conn.execute(query)).mappings().first()
    if run is None:
        raise run_not_found(run_id)
    if run["status"] != "running" or run["lease_owner"] != runner_id:
        raise _lease_lost(
            run_id,
            f"it is {run['status']}, held by {run['lease_owner'] or 'nobody'}, not by {runner_id}",
        )
    return run


async def append_live_turn(db: Database, request: store_service_pb2.AppendLiveTurnRequest) -> int:
    async with db.engine.begin() as conn:
        await _held(conn, db, request.run_id, request.runner_id)
        return await events.append(
            conn, request.run_id, run_pb2.RunEvent(type=events.TURN, turn=request.turn)
        )


async def record_inference_job(
    db: Database, request: store_service_pb2.RecordInferenceJobRequest
) -> None:
    job = request.job
    async with db.engine.begin() as conn:
        run = await _held(conn, db, job.run_id, request.runner_id)
        await conn.execute(insert(inference_jobs).values(mapping.job_values(job)))
        ids = [*orjson.loads(run["submitted_inference_job_ids"]), job.id]
        await conn.execute(
            update(runs)
            .where(runs.c.id == job.run_id)
            .values(submitted_inference_job_ids=orjson.dumps(ids).decode())
        )
        await events.append(
            conn, job.run_id, run_pb2.RunEvent(type=events.USAGE, usage=request.run_usage)
        )


async def get_inference_job(db: Database, job_id: str) -> store_service_pb2.InferenceJob:
    async with db.engine.connect() as conn:
        row = (
            (await conn.execute(select(inference_jobs).where(inference_jobs.c.id == job_id)))
            .mappings()
            .first()
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
    async with db.engine.begin() as conn:
        updated = await conn.execute(
            update(conversations)
            .where(and_(conversations.c.id == conversation_id, conversations.c.name.is_(None)))
            .values(name=name, updated_at=datetime.now(UTC))
        )
    return updated.rowcount == 1
