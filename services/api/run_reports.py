"""What a runner reports on a run it holds: its events (deltas, live turns, tool calls and
results) with the inference jobs whose replies they carry, and the terminal commit. `finalize`
is the history's one way to end a run (a CancelRun of a pending run ends it too): its turns
become messages and the conversation's version moves on in the transaction that writes its
terminal state and event."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from agents.v1 import message_pb2, run_pb2, store_service_pb2
from sqlalchemy import String, and_, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningUpdate

from services.api import event_log, mapping, run_queue
from services.api.db.engine import Database
from services.api.db.models import conversations, inference_jobs, messages, runs
from services.api.db.rows import InferenceJobRow, RunRow
from services.api.notifications import Notifications
from services.common.catalogue import Catalogue
from services.common.errors import ParleyError
from services.common.incidents import LEASE_LOST

TERMINAL: Final = frozenset(
    {run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_REQUIRES_ACTION, run_pb2.RUN_STATUS_FAILED}
)

_INSERT_MESSAGES = insert(messages)
# The version moves on by the run's :turns (numbered after the version it returns): the UPDATE
# reads and locks the row, no SELECT before it.
_CLOSE_CONVERSATION = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(
        version=conversations.c.version + bindparam("turns"),
        active_run_id=None,
        updated_at=bindparam("now"),
    )
    .returning(conversations.c.version, conversations.c.name)
)


def _end_run(notifying: bool) -> ReturningUpdate[Any]:
    """The terminal UPDATE, which also takes its events' seqs. Its other SET columns come from
    the parameters (mapping.terminal_values): one statement, built once. It returns only the
    seq: the ended row is the held one with what it set."""
    returning = [runs.c.event_seq, event_log.SEQ_NOTICE] if notifying else [runs.c.event_seq]
    return (
        update(runs)
        .where(runs.c.id == bindparam("run_id"))
        .values(event_seq=event_log.SEQ_BUMP)
        .returning(*returning)
    )


_IDS = runs.c.submitted_inference_job_ids
_JOB_ID = bindparam("job_id", type_=String)  # as a JSON string
# submitted_inference_job_ids with :job_id appended, in SQL (portable: the list is orjson's
# compact rendering, so it is "[]" or ends in "]").
_IDS_WITH_JOB = case(
    (_IDS == "[]", "[" + _JOB_ID + "]"),
    else_=func.substr(_IDS, 1, func.length(_IDS) - 1) + "," + _JOB_ID + "]",
)


def _holding(with_job: bool, notifying: bool) -> ReturningUpdate[Any]:
    """An append's lease check and seq bump (and its model call's id) as one UPDATE: it changes
    the run's row only while :runner holds its lease."""
    values: dict[str, Any] = {"event_seq": event_log.SEQ_BUMP}
    if with_job:
        values["submitted_inference_job_ids"] = _IDS_WITH_JOB
    returning = [runs.c.event_seq, event_log.SEQ_NOTICE] if notifying else [runs.c.event_seq]
    return (
        update(runs)
        .where(
            and_(
                runs.c.id == bindparam("run_id"),
                runs.c.status == "running",
                runs.c.lease_owner == bindparam("runner"),
            )
        )
        .values(**values)
        .returning(*returning)
    )


# By (notifying: PostgreSQL), and for `_HOLD` (a model call comes with it, notifying).
_END_RUN = {notifying: _end_run(notifying) for notifying in (False, True)}
_HOLD = {
    (job, notifying): _holding(job, notifying)
    for job in (False, True)
    for notifying in (False, True)
}
_INSERT_JOB = insert(inference_jobs)
_JOB = select(inference_jobs).where(inference_jobs.c.id == bindparam("id"))


def _check_outcome(request: store_service_pb2.CommitRunRequest) -> None:
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
    _check_events(request.events)


def _check_events(events: Iterable[run_pb2.RunEvent]) -> None:
    """A runner writes only the kinds of event that are its own (never a status, usage or
    terminal event: the store writes those with the state they announce)."""
    for i, event in enumerate(events):
        if event.type not in event_log.RUNNER_TYPES:
            raise ParleyError(
                "InvalidRequest",
                f"events[{i}].type `{event.type}` is not one a runner appends: "
                + ", ".join(sorted(event_log.RUNNER_TYPES)),
                field=f"events[{i}].type",
            )


async def commit_run(
    log: event_log.EventLog, catalogue: Catalogue, request: store_service_pb2.CommitRunRequest
) -> int:
    """In one transaction: the last inference job and unpublished turns, then `finalize`.
    Returns the conversation's new version."""
    _check_outcome(request)
    lock = log.db.is_postgres

    def work(conn: Connection) -> int:
        now = datetime.now(UTC)  # in the transaction: its events' times follow their order
        run = run_queue.held(conn, lock, request.run_id, request.runner_id)
        if request.HasField("iteration"):
            _record_iteration(conn, run.id, request.iteration, now)
        for turn in request.publish:
            event_log.append(conn, run.id, run_pb2.RunEvent(type=event_log.TURN, turn=turn), now)
        _append_all(conn, run.id, request.events, now)
        turns = list(request.turns)
        return finalize(conn, log.notifications, run, request.run, turns, now, catalogue)

    return await log.write(work)


def finalize(
    conn: Connection,
    notifications: Notifications,
    run: RunRow,
    outcome: run_pb2.Run,
    new_turns: list[message_pb2.Message],
    now: datetime,
    catalogue: Catalogue,
) -> int:
    """Inside the caller's transaction (an `EventLog.write`): the input turn (unless it is
    empty) and `new_turns` become messages after the conversation's version, the version moves
    to the last one, the run gets its terminal state, its cost (at the catalogue's price in force
    when it started: a later price never rewrites it) and its terminal event, which is the last
    the transaction appends to the run. Returns the new version."""
    conversation_id = run.conversation_id
    payload = mapping.from_json(run.payload, run_pb2.RunPayload())
    opening = mapping.input_turn(payload, run, 0)  # its sequence_no is the message row's
    # A resume that only approved calls has no turn of its own: their results, which carry the
    # decisions, are the run's.
    turns = [opening, *new_turns] if opening.content_blocks else list(new_turns)
    closing = {"conversation_id": conversation_id, "turns": len(turns), "now": now}
    new_version, name = conn.execute(_CLOSE_CONVERSATION, closing).one()
    version = new_version - len(turns)
    if turns:
        conn.execute(
            _INSERT_MESSAGES,
            [
                mapping.message_values(turn, conversation_id, version + i, run.id, now)
                for i, turn in enumerate(turns, start=1)
            ],
        )
    count = event_log.appended(conn, run.id) + 1  # with the terminal event
    ending = mapping.terminal_values(outcome, now)
    ending["cost_nano_usd"] = run_cost(catalogue, run, outcome.usage)
    params = {"run_id": run.id, "event_count": count, **ending}
    if notifications.enabled:
        params.update(notifications.params())
    last: int = conn.execute(_END_RUN[notifications.enabled], params).scalar_one()
    ended = dataclasses.replace(run, event_seq=last, **ending)  # the row as it now is
    event_log.seqs_taken(conn, run.id, last, count)
    event_log.append(conn, run.id, event_log.terminal_event(mapping.run_to_proto(ended, name)), now)
    return int(new_version)


def run_cost(catalogue: Catalogue, run: RunRow, usage: run_pb2.Usage) -> int | None:
    """The run's cost in nano-USD at the price in force at its start; None without a price."""
    model = catalogue.models.get(run.model)
    price = model.price_in_force(run.started_at) if model is not None else None
    if price is None:
        return None
    return price.cost_nano_usd(
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cache_read_input_tokens,
        usage.cache_write_input_tokens,
    )


async def append_live_turn(
    log: event_log.EventLog, request: store_service_pb2.AppendLiveTurnRequest
) -> int:
    """A live turn's "turn" event (with the model call whose reply it is); returns its seq."""

    def work(conn: Connection) -> run_pb2.RunEvent:
        now = datetime.now(UTC)
        iteration = request.iteration if request.HasField("iteration") else None
        _hold(conn, log, request.run_id, request.runner_id, 2 if iteration else 1, iteration)
        if iteration is not None:
            _record_iteration(conn, request.run_id, iteration, now)
        event = run_pb2.RunEvent(type=event_log.TURN, turn=request.turn)
        return event_log.append(conn, request.run_id, event, now)

    return (await log.write(work)).seq


async def append_run_events(
    log: event_log.EventLog, request: store_service_pb2.AppendRunEventsRequest
) -> int:
    """A batch of the run's events (with the model call a turn of them carries), in one
    transaction; returns the last one's seq."""
    _check_events(request.events)

    def work(conn: Connection) -> run_pb2.RunEvent | None:
        now = datetime.now(UTC)
        iteration = request.iteration if request.HasField("iteration") else None
        count = len(request.events) + (1 if iteration else 0)
        _hold(conn, log, request.run_id, request.runner_id, count, iteration)
        last = None
        if iteration is not None:
            last = _record_iteration(conn, request.run_id, iteration, now)
        return _append_all(conn, request.run_id, request.events, now) or last

    last = await log.write(work)
    return last.seq if last is not None else 0


def _hold(
    conn: Connection,
    log: event_log.EventLog,
    run_id: str,
    runner_id: str,
    count: int,
    iteration: store_service_pb2.Iteration | None,
) -> None:
    """The run's next `count` seqs (and its model call's id in submitted_inference_job_ids),
    taken in one UPDATE while `runner_id` holds the run: RunNotFound or LeaseLost otherwise, as
    `run_queue.held` tells them."""
    notifying = log.notifications.enabled
    params: dict[str, Any] = {"run_id": run_id, "runner": runner_id, "event_count": count}
    if iteration is not None:
        params["job_id"] = orjson.dumps(iteration.job.id).decode()
    if notifying:
        params.update(log.notifications.params())
    last = conn.execute(_HOLD[iteration is not None, notifying], params).scalar()
    if last is None:
        run_queue.held(conn, log.db.is_postgres, run_id, runner_id)  # raises
        raise ParleyError(LEASE_LOST, f"lease lost on run {run_id}", run_id=run_id)
    event_log.seqs_taken(conn, run_id, last, count)


def _append_all(
    conn: Connection, run_id: str, events: Iterable[run_pb2.RunEvent], now: datetime
) -> run_pb2.RunEvent | None:
    last = None
    for event in events:
        appended = run_pb2.RunEvent()
        appended.CopyFrom(event)
        last = event_log.append(conn, run_id, appended, now)
    return last


def _record_iteration(
    conn: Connection, run_id: str, iteration: store_service_pb2.Iteration, now: datetime
) -> run_pb2.RunEvent:
    """The job row and a "usage" event. (Its id joins submitted_inference_job_ids separately:
    a commit writes the runner's whole list with the terminal state anyway.)"""
    job = iteration.job
    if job.run_id != run_id:
        raise ParleyError(
            "InvalidRequest",
            f"iteration.job.run_id {job.run_id!r} is not the run {run_id}",
            field="iteration.job.run_id",
        )
    conn.execute(_INSERT_JOB, mapping.job_values(job))
    usage = run_pb2.RunEvent(type=event_log.USAGE, usage=iteration.run_usage)
    return event_log.append(conn, job.run_id, usage, now)


async def get_inference_job(db: Database, job_id: str) -> run_pb2.InferenceJob:
    row = await db.read(lambda conn: conn.execute(_JOB, {"id": job_id}).first())
    if row is None:
        raise ParleyError(
            "InferenceJobNotFound", f"inference job {job_id} was not found", job_id=job_id
        )
    return mapping.job_to_proto(InferenceJobRow(*row))
