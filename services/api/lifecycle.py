"""What the runner asks of the store: lease a runnable run, keep the lease, commit the outcome.

A lease is (lease_owner, lease_expires_at) on a running run. A run whose lease expired is
runnable again; the runner that lost it can neither renew nor commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents.v1 import message_pb2, run_pb2, store_service_pb2
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from services.api import mapping
from services.api.db.engine import Database
from services.api.db.models import conversations, messages, runs
from services.common.errors import ParleyError

DEFAULT_LEASE_SECONDS = 60
TERMINAL = frozenset(
    {run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_REQUIRES_ACTION, run_pb2.RUN_STATUS_FAILED}
)


def _lease(seconds: int) -> timedelta:
    if seconds < 0:
        raise ParleyError(
            "InvalidRequest", f"lease_seconds must be >= 0, got {seconds}", field="lease_seconds"
        )
    return timedelta(seconds=seconds or DEFAULT_LEASE_SECONDS)


def _lease_lost(run_id: str, detail: str) -> ParleyError:
    return ParleyError("LeaseLost", f"lease lost on run {run_id}: {detail}", run_id=run_id)


@dataclass(frozen=True)
class ClaimedRun:
    run: RowMapping
    conversation: RowMapping
    history: list[RowMapping]


async def claim_run(db: Database, runner_id: str, lease_seconds: int) -> ClaimedRun | None:
    """Lease the oldest pending run, or a running one whose lease expired."""
    if not runner_id:
        raise ParleyError("InvalidRequest", "runner_id is required", field="runner_id")
    lease = _lease(lease_seconds)
    now = datetime.now(UTC)
    runnable = or_(
        runs.c.status == "pending", and_(runs.c.status == "running", runs.c.lease_expires_at < now)
    )
    query = select(runs.c.id).where(runnable).order_by(runs.c.started_at, runs.c.id).limit(1)
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    async with db.engine.begin() as conn:
        run_id = (await conn.execute(query)).scalar()
        if run_id is None:
            return None
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(status="running", lease_owner=runner_id, lease_expires_at=now + lease)
        )
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
    return ClaimedRun(run, conversation, history)


def claim_response(claimed: ClaimedRun | None, docs_url: str) -> store_service_pb2.ClaimRunResponse:
    if claimed is None:
        return store_service_pb2.ClaimRunResponse()
    run = mapping.run_to_proto(claimed.run, claimed.conversation["name"], docs_url)
    payload = mapping.from_json(claimed.run["payload"], run_pb2.RunPayload())
    return store_service_pb2.ClaimRunResponse(
        run=run,
        system_prompt=claimed.conversation["system_prompt"] or "",
        history=[mapping.message_to_proto(row) for row in claimed.history],
        input=mapping.input_turn(payload, run.id, claimed.conversation["version"] + 1),
    )


async def renew_lease(db: Database, run_id: str, runner_id: str, lease_seconds: int) -> None:
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
        )
    if renewed.rowcount != 1:
        raise _lease_lost(run_id, f"runner {runner_id} does not hold it")


async def commit_run(db: Database, request: store_service_pb2.CommitRunRequest) -> int:
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
    run_query = select(runs).where(runs.c.id == request.run_id)
    if db.is_postgres:
        run_query = run_query.with_for_update()
    async with db.engine.begin() as conn:
        run = (await conn.execute(run_query)).mappings().first()
        if run is None:
            raise ParleyError(
                "RunNotFound", f"run {request.run_id} was not found", run_id=request.run_id
            )
        if run["status"] != "running" or run["lease_owner"] != request.runner_id:
            raise _lease_lost(
                request.run_id,
                f"it is {run['status']}, held by "
                f"{run['lease_owner'] or 'nobody'}, not by {request.runner_id}",
            )
        conversation_query = select(conversations.c.version).where(
            conversations.c.id == run["conversation_id"]
        )
        if db.is_postgres:
            conversation_query = conversation_query.with_for_update()
        version = (await conn.execute(conversation_query)).scalar_one()
        payload = mapping.from_json(run["payload"], run_pb2.RunPayload())
        turns: list[message_pb2.Message] = [
            mapping.input_turn(payload, run["id"], version + 1),
            *request.turns,
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
    return new_version
