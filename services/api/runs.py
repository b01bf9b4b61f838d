"""Run operations the public API offers: start a run (idempotent, compare-and-swap) and read one.

Starting is one transaction: replay check, config merge and validation, the state checks, then a
conditional UPDATE of the conversation row that claims it (`active_run_id`), whose rowcount
decides between concurrent starters, and the run's INSERT.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.v1 import conversation_service_pb2, run_pb2
from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from services.api import effective_config, events, lifecycle, mapping, validation
from services.api.conversations import owned_conversation
from services.api.db.engine import Database
from services.api.db.models import conversations, messages, runs
from services.common.auth import Principal
from services.common.errors import ParleyError
from services.common.metrics import RUNS_STARTED


@dataclass(frozen=True)
class StartedRun:
    row: RowMapping | dict[str, Any]  # as accepted (pending)
    current_name: str | None
    replayed: bool  # an earlier request with the same client_op_id created it
    claim: lifecycle.Claim | None = None  # leased at once to the waiting runner it was given


async def start_run(
    db: Database,
    hub: events.Hub,
    rules: validation.ConfigRules,
    principal: Principal,
    request: conversation_service_pb2.StartRunRequest,
    claimer: events.Claimer | None = None,
) -> StartedRun:
    client_op_id = validation.validate_start_run(request)
    if request.config_override.HasField("mcp_servers"):  # the defaults' were checked at creation
        await validation.check_mcp_hosts(
            request.config_override.mcp_servers.values,
            "config_override.mcp_servers",
            rules.allow_private_networks,
        )
    try:
        started = await hub.write(
            db, lambda conn: _start(conn, rules, principal, request, client_op_id, claimer)
        )
    except IntegrityError:
        # Another request with this client_op_id inserted first: answer with its run.

        def replay(conn: Connection) -> StartedRun | None:
            conversation = owned_conversation(conn, principal, request.id)
            existing = _run_by_op(conn, conversation["id"], client_op_id)
            return None if existing is None else StartedRun(existing, conversation["name"], True)

        replayed = await db.read(replay)
        if replayed is None:
            raise
        return replayed
    if not started.replayed:
        RUNS_STARTED.labels(request.payload.WhichOneof("input")).inc()
    return started


def _start(
    conn: Connection,
    rules: validation.ConfigRules,
    principal: Principal,
    request: conversation_service_pb2.StartRunRequest,
    client_op_id: str,
    claimer: events.Claimer | None,
) -> StartedRun:
    conversation = owned_conversation(conn, principal, request.id)
    # The body is validated before the replay check: a replay with a bad body is a 400 too.
    has_override = request.HasField("config_override")
    merged = effective_config.merge(
        mapping.config_from_json(conversation["defaults"]),
        request.config_override if has_override else None,
    )
    validation.validate_config(merged, rules, "config_override" if has_override else "defaults")
    if request.HasField("tool_choice"):
        validation.validate_tool_choice(request.tool_choice, merged)
    existing = _run_by_op(conn, conversation["id"], client_op_id)
    if existing is not None:
        return StartedRun(existing, conversation["name"], True)
    _check_can_start(conn, conversation, request)

    run_id = str(uuid.uuid4())
    claimed = conn.execute(
        update(conversations)
        .where(
            and_(
                conversations.c.id == conversation["id"],
                conversations.c.version == request.expected_version,
                conversations.c.active_run_id.is_(None),
            )
        )
        .values(active_run_id=run_id, latest_run_id=run_id)
    )
    if claimed.rowcount != 1:
        # Someone else started a run in between: the same request, or a different one.
        existing = _run_by_op(conn, conversation["id"], client_op_id)
        if existing is not None:
            return StartedRun(existing, conversation["name"], True)
        fresh = owned_conversation(conn, principal, request.id)
        _check_can_start(conn, fresh, request)
        raise ParleyError(
            "VersionConflict",
            "another run started on this conversation at the same time; "
            "refetch the conversation and retry",
            conversation_id=conversation["id"],
        )
    values = {
        "id": run_id,
        "conversation_id": conversation["id"],
        "company_id": principal.company_id,
        "user_id": principal.user_id,
        "client_op_id": client_op_id,
        "status": "pending",
        "payload": mapping.to_json(request.payload),
        "tool_choice": mapping.to_json(request.tool_choice)
        if request.HasField("tool_choice")
        else None,
        "effective_config": mapping.to_json(effective_config.with_text_mode_schema(merged)),
        "iterations_used": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
        "submitted_inference_job_ids": "[]",
        "pending_tool_calls": "[]",
        "final_text": None,
        "final_structured_output": None,
        "error_type": None,
        "error_message": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "started_at": datetime.now(UTC),
        "completed_at": None,
    }
    conn.execute(_INSERT_RUN, values)
    events.append(conn, run_id, events.status_event(run_pb2.RUN_STATUS_PENDING))
    claim = None
    if claimer is not None:
        claim = lifecycle.claim_new_run(
            conn, run_id, claimer.runner_id, claimer.lease_seconds, conversation
        )
    return StartedRun(values, conversation["name"], False, claim)


def _check_can_start(
    conn: Connection,
    conversation: RowMapping,
    request: conversation_service_pb2.StartRunRequest,
) -> None:
    """The compare-and-swap and what the conversation's latest run allows next."""
    expected, current = request.expected_version, conversation["version"]
    if expected != current:
        raise ParleyError(
            "VersionConflict",
            f"expected_version {expected} does not match the conversation's current "
            f"version {current}; refetch the conversation and its messages since "
            f"version {expected}, then retry",
            expected_version=expected,
            current_version=current,
        )
    if conversation["active_run_id"] is not None:
        active = _run_by_id(conn, conversation["active_run_id"])
        status = active["status"] if active is not None else "pending"
        raise ParleyError(
            "VersionConflict",
            f"run {conversation['active_run_id']} is still {status} on this "
            "conversation; wait until it reaches a terminal status",
            run_id=conversation["active_run_id"],
            run_status=status,
            expected_version=expected,
            current_version=current,
        )
    latest = (
        _run_by_id(conn, conversation["latest_run_id"]) if conversation["latest_run_id"] else None
    )
    paused = latest is not None and latest["status"] == "requires_action"
    if request.payload.WhichOneof("input") == "user_message":
        if paused:
            assert latest is not None
            waiting = ", ".join(mapping.pending_tool_call_ids(latest))
            raise ParleyError(
                "VersionConflict",
                f"run {latest['id']} is waiting for tool outputs ({waiting}); answer "
                "it with payload.kind `tool_outputs` before sending a user message",
                run_id=latest["id"],
                run_status="requires_action",
                expected_version=expected,
                current_version=current,
            )
        return
    if not paused:
        raise ParleyError(
            "NoPendingToolCalls",
            "the conversation's latest run is not waiting for tool outputs; send a "
            "user_message instead",
            conversation_id=conversation["id"],
        )
    assert latest is not None
    validation.check_tool_outputs(
        request.payload.tool_outputs.outputs,
        mapping.pending_tool_call_ids(latest),
        _latest_tool_uses(conn, conversation["id"], latest["id"]),
    )


def _latest_tool_uses(conn: Connection, conversation_id: str, run_id: str) -> dict[str, str]:
    content = conn.execute(
        select(messages.c.content_blocks)
        .where(
            and_(
                messages.c.conversation_id == conversation_id,
                messages.c.run_id == run_id,
                messages.c.role == "assistant",
            )
        )
        .order_by(messages.c.sequence_no.desc())
        .limit(1)
    ).scalar()
    return mapping.tool_uses(content) if content is not None else {}


_INSERT_RUN = insert(runs)
_BY_OP = select(runs).where(
    and_(runs.c.conversation_id == bindparam("cid"), runs.c.client_op_id == bindparam("op"))
)
_STATUS = select(runs.c.status).where(runs.c.id == bindparam("id"))
_OWNED = lifecycle.RUN_WITH_NAME.where(
    and_(
        runs.c.id == bindparam("id"),
        runs.c.company_id == bindparam("company_id"),
        runs.c.user_id == bindparam("user_id"),
    )
)


def _run_by_op(conn: Connection, conversation_id: str, client_op_id: str) -> RowMapping | None:
    return conn.execute(_BY_OP, {"cid": conversation_id, "op": client_op_id}).mappings().first()


def _run_by_id(conn: Connection, run_id: str) -> RowMapping | None:
    return conn.execute(lifecycle.RUN_BY_ID, {"id": run_id}).mappings().first()


async def get_run(
    db: Database, principal: Principal, run_id: str
) -> tuple[RowMapping, list[run_pb2.LiveTurn]]:
    """The caller's run (with its conversation's `current_name`) and its live turns, or
    RunNotFound."""
    return await db.read(lambda conn: _run_and_live_turns(conn, principal, run_id))


def _run_and_live_turns(
    conn: Connection, principal: Principal, run_id: str
) -> tuple[RowMapping, list[run_pb2.LiveTurn]]:
    row = _owned_run(conn, principal, run_id)
    live = events.live_turns(conn, row["id"]) if row["status"] in mapping.IN_FLIGHT else []
    return row, live


def _owned_run(
    conn: Connection, principal: Principal, run_id: str, *, for_update: bool = False
) -> RowMapping:
    """The caller's run with its conversation's `current_name`, or RunNotFound (also for
    malformed ids). `for_update` locks the run's row (not the conversation's)."""
    canonical = validation.check_uuid(run_id)
    if canonical is not None:
        query = _OWNED.with_for_update(of=runs) if for_update else _OWNED
        params = {"id": canonical, "company_id": principal.company_id, "user_id": principal.user_id}
        row = conn.execute(query, params).mappings().first()
        if row is not None:
            return row
    raise lifecycle.run_not_found(run_id)


def _not_cancellable(run_id: str, status: str) -> ParleyError:
    return ParleyError(
        "RunNotCancellable",
        f"run {run_id} is already {status}; only pending or running runs can be cancelled",
        run_id=run_id,
        run_status=status,
    )


CANCELLED_MESSAGE = "the run was cancelled"


async def cancel_run(
    db: Database,
    hub: events.Hub,
    principal: Principal,
    run_id: str,
    docs_url: str,
    wait_s: float = 10.0,
) -> tuple[RowMapping, list[run_pb2.LiveTurn]]:
    """A pending run fails at once (its input turn is committed, so the conversation stays
    consistent); a running run is flagged and its runner told, then we wait (bounded) for its
    terminal state. Either way the answer is the run as GET shows it afterwards."""

    def cancel(conn: Connection) -> tuple[str, str]:
        run = _owned_run(conn, principal, run_id, for_update=db.is_postgres)
        status = run["status"]
        if status == "pending":
            outcome = run_pb2.Run(
                status=run_pb2.RUN_STATUS_FAILED,
                error=run_pb2.RunError(type="AgentLoopCancelled", message=CANCELLED_MESSAGE),
                iterations_used=0,
            )
            lifecycle.finalize(conn, db, run, outcome, [], docs_url, datetime.now(UTC))
        elif status == "running":
            conn.execute(update(runs).where(runs.c.id == run["id"]).values(cancel_requested=True))
        else:
            raise _not_cancellable(run["id"], status)
        return run["id"], status

    run_id, status = await hub.write(db, cancel)
    if status == "running":
        hub.cancel_requested(run_id)
        await _wait_terminal(db, hub, run_id, wait_s)
    return await get_run(db, principal, run_id)


def _status(conn: Connection, run_id: str) -> str:
    return conn.execute(_STATUS, {"id": run_id}).scalar_one()


async def _wait_terminal(db: Database, hub: events.Hub, run_id: str, wait_s: float) -> None:
    """Until the run's terminal event commits, or `wait_s` passes."""
    with hub.subscribe(run_id) as subscription:
        if await db.read(lambda conn: _status(conn, run_id)) not in mapping.IN_FLIGHT:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while not any(events.is_terminal(e) for e in await subscription.next()):
                    pass


async def stream_run_events(
    db: Database, hub: events.Hub, principal: Principal, run_id: str, after_seq: int
) -> AsyncIterator[run_pb2.RunEvent]:
    """The run's events after `after_seq`, then each new one as its transaction commits, until
    the terminal event. New events come from the hub; the log is read only to catch up."""
    validation.at_least(after_seq, 0, "after_seq")
    requested, run_id = run_id, validation.check_uuid(run_id)
    if run_id is None:
        raise lifecycle.run_not_found(requested)

    # Status first: the terminal event commits with the terminal status, so a terminal status
    # read here guarantees the events read next include it (each statement has its own snapshot
    # under READ COMMITTED). The first look reads the status with the owner check.
    def first_look(conn: Connection) -> tuple[str, list[run_pb2.RunEvent]]:
        status = _owned_run(conn, principal, requested)["status"]
        return status, events.read(conn, run_id, after_seq)

    def catch_up(conn: Connection) -> tuple[str, list[run_pb2.RunEvent]]:
        return _status(conn, run_id), events.read(conn, run_id, after_seq)

    with hub.subscribe(run_id) as subscription:
        status, batch = await db.read(first_look)
        if not batch and status not in mapping.IN_FLIGHT:
            return  # terminal, and the caller has seen everything
        while True:
            for event in batch:
                if event.seq <= after_seq:
                    continue  # read from the log already
                yield event
                after_seq = event.seq
                if events.is_terminal(event):
                    return
            batch = [e for e in await subscription.next() if e.seq > after_seq]
            if batch and batch[0].seq != after_seq + 1:  # out of order commits: catch up
                status, batch = await db.read(catch_up)
