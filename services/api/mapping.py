"""Rows <-> protos: the only place the two meet. JSON columns hold protos rendered with
MessageToDict(preserving_proto_field_name=True) and orjson; timestamps are UTC. Presentation
(error titles and docs links) is not mapped here: presentation.py renders it for readers."""

from __future__ import annotations

import dataclasses
import functools
import operator
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import orjson
from agents.v1 import (
    config_pb2,
    conversation_pb2,
    conversation_service_pb2,
    message_pb2,
    model_pb2,
    run_pb2,
    store_service_pb2,
)
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message as ProtoMessage

from services.api import stored_json
from services.api.db.rows import (
    ConversationPage,
    ConversationRow,
    InferenceJobRow,
    MessagePage,
    MessageRow,
    RunRow,
)
from services.common import tracing
from services.common.catalogue import UsableModel

M = TypeVar("M", bound=ProtoMessage)

STATUS_TO_DB: Final[dict[run_pb2.RunStatus, str]] = {
    run_pb2.RUN_STATUS_PENDING: "pending",
    run_pb2.RUN_STATUS_RUNNING: "running",
    run_pb2.RUN_STATUS_COMPLETED: "completed",
    run_pb2.RUN_STATUS_REQUIRES_ACTION: "requires_action",
    run_pb2.RUN_STATUS_FAILED: "failed",
}
STATUS_FROM_DB = {v: k for k, v in STATUS_TO_DB.items()}
ROLE_TO_DB: Final[dict[message_pb2.Role, str]] = {
    message_pb2.ROLE_USER: "user",
    message_pb2.ROLE_ASSISTANT: "assistant",
    message_pb2.ROLE_TOOL: "tool",
}
ROLE_FROM_DB = {v: k for k, v in ROLE_TO_DB.items()}
IN_FLIGHT = frozenset({"pending", "running"})  # the statuses before a run's terminal one
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- JSON columns -------------------------------------------------------------------------------


def _dict(message: ProtoMessage) -> dict[str, Any]:
    return stored_json.to_dict(message)  # MessageToDict(preserving_proto_field_name=True)


def to_json(message: ProtoMessage) -> str:
    return orjson.dumps(_dict(message)).decode()


def from_json(text: str, message: M) -> M:
    return stored_json.from_dict(orjson.loads(text), message)  # ParseDict's result


def list_to_json(messages: Iterable[ProtoMessage]) -> str:
    return orjson.dumps([_dict(m) for m in messages]).decode()


def _list_from_json(text: str, factory: type[M]) -> list[M]:
    parsed = []
    for item in orjson.loads(text):
        parsed.append(stored_json.from_dict(item, factory()))
    return parsed


def field_or(message: ProtoMessage, name: str, default: Any = None) -> Any:
    """An optional (presence-tracking) field's value, or `default` when it is unset."""
    return getattr(message, name) if message.HasField(name) else default


def config_from_json(text: str) -> config_pb2.AgentConfig:
    return config_pb2.AgentConfig.FromString(_config_wire(text))


@functools.lru_cache(maxsize=1024)
def _config_wire(text: str) -> bytes:
    """A stored config, parsed once: ParseDict of a config (Struct schemas) is ~0.2 ms, and
    every GET of a run and every claim re-reads one of the same few; binary decoding is ~free."""
    return from_json(text, config_pb2.AgentConfig()).SerializeToString()


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """Timestamp.FromDatetime's value, by arithmetic (FromDatetime goes through a time tuple)."""
    if value.tzinfo is None:  # SQLite hands back naive datetimes; everything stored is UTC
        value = value.replace(tzinfo=UTC)
    since = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
    )


# --- conversations and messages -----------------------------------------------------------------


def conversation_to_proto(row: ConversationRow) -> conversation_pb2.Conversation:
    conversation = conversation_pb2.Conversation(
        id=row.id,
        defaults=config_from_json(row.defaults),
        version=row.version,
        company_id=row.company_id,
        user_id=row.user_id,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )
    if row.name is not None:
        conversation.name = row.name
    if row.system_prompt is not None:
        conversation.system_prompt = row.system_prompt
    return conversation


def conversation_page_to_proto(
    page: ConversationPage,
) -> conversation_service_pb2.ListConversationsResponse:
    response = conversation_service_pb2.ListConversationsResponse(
        current_page=page.page,
        total_records=page.total_records,
        total_pages=page.total_pages,
        records=[conversation_to_proto(row) for row in page.rows],
    )
    if page.page > 1 and page.total_pages >= 1:
        response.prev_page = min(page.page - 1, page.total_pages)
    if page.page < page.total_pages:
        response.next_page = page.page + 1
    return response


def message_page_to_proto(page: MessagePage) -> conversation_service_pb2.ListMessagesResponse:
    response = conversation_service_pb2.ListMessagesResponse(
        current_version=page.current_version,
        messages=[message_to_proto(row) for row in page.rows],
    )
    if page.next_since is not None:
        response.next_since = page.next_since
    return response


def message_to_proto(row: MessageRow) -> message_pb2.Message:
    return message_pb2.Message(
        sequence_no=row.sequence_no,
        role=ROLE_FROM_DB[row.role],
        content_blocks=_list_from_json(row.content_blocks, message_pb2.ContentBlock),
        run_id=row.run_id,
        created_at=timestamp(row.created_at),
    )


def message_values(
    message: message_pb2.Message, conversation_id: str, sequence_no: int, run_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "sequence_no": sequence_no,
        "role": ROLE_TO_DB[message.role],
        "content_blocks": list_to_json(message.content_blocks),
        "run_id": run_id,
        "created_at": now,
    }


def input_turn(payload: run_pb2.RunPayload, run: RunRow, sequence_no: int) -> message_pb2.Message:
    """The turn that opens a run: the user's message, or tool results for the caller's outputs
    and for the calls a person denied (an error carrying the reason, with the approval record).
    Approved calls are answered by the run itself, once it has executed them."""
    if payload.WhichOneof("input") == "user_message":
        message = payload.user_message
        return message_pb2.Message(
            sequence_no=sequence_no,
            role=message_pb2.ROLE_USER,
            run_id=run.id,
            content_blocks=list(message.content)
            or [message_pb2.ContentBlock(text=message_pb2.TextBlock(text=message.text))],
        )
    results = [
        message_pb2.ToolResultBlock(
            tool_use_id=out.tool_use_id, is_error=out.is_error, content=[_text(out.content)]
        )
        for out in payload.tool_outputs.outputs
    ]
    results += [
        message_pb2.ToolResultBlock(
            tool_use_id=approval.tool_use_id,
            is_error=True,
            content=[_text(denial_text(approval))],
            approval=approval_record(approval, run),
        )
        for approval in payload.tool_outputs.approvals
        if approval.decision == message_pb2.APPROVAL_DECISION_DENY
    ]
    return message_pb2.Message(
        sequence_no=sequence_no,
        role=message_pb2.ROLE_TOOL,
        run_id=run.id,
        content_blocks=[message_pb2.ContentBlock(tool_result=r) for r in results],
    )


def _text(text: str) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(text=message_pb2.TextBlock(text=text))


def denial_text(approval: run_pb2.ToolApproval) -> str:
    """What the model reads for a denied call."""
    if approval.HasField("reason") and approval.reason.strip():
        return f"the user denied this tool call: {approval.reason}"
    return "the user denied this tool call"


def approval_record(approval: run_pb2.ToolApproval, run: RunRow) -> message_pb2.ApprovalRecord:
    """The decision, who made it (the resuming run's token) and when (its acceptance)."""
    record = message_pb2.ApprovalRecord(
        decision=approval.decision,
        company_id=run.company_id,
        user_id=run.user_id,
        decided_at=timestamp(run.started_at),
    )
    if approval.HasField("reason"):
        record.reason = approval.reason
    return record


def approved_calls(
    payload: run_pb2.RunPayload, run: RunRow, history: Iterable[MessageRow]
) -> list[store_service_pb2.ApprovedCall]:
    """The calls the run's input approved, as the paused run's assistant turn (the latest in
    `history`) made them, each with its approval record."""
    approvals = [
        a
        for a in payload.tool_outputs.approvals
        if a.decision == message_pb2.APPROVAL_DECISION_APPROVE
    ]
    if not approvals:
        return []
    assistant = next((row for row in reversed(list(history)) if row.role == "assistant"), None)
    uses = {
        block.tool_use.tool_use_id: block.tool_use
        for block in _list_from_json(
            assistant.content_blocks if assistant else "[]", message_pb2.ContentBlock
        )
        if block.WhichOneof("block") == "tool_use"
    }
    return [
        store_service_pb2.ApprovedCall(use=uses[a.tool_use_id], approval=approval_record(a, run))
        for a in approvals
        if a.tool_use_id in uses  # StartRun checked that each one is pending
    ]


def unexecuted_approved_turn(
    payload: run_pb2.RunPayload, run: RunRow, why: str
) -> message_pb2.Message | None:
    """Error results for the calls a run's input approved, when the run ends without executing
    them (cancelled while pending): every tool_use of the history keeps its result."""
    results = [
        message_pb2.ToolResultBlock(
            tool_use_id=a.tool_use_id,
            is_error=True,
            content=[_text(why)],
            approval=approval_record(a, run),
        )
        for a in payload.tool_outputs.approvals
        if a.decision == message_pb2.APPROVAL_DECISION_APPROVE
    ]
    if not results:
        return None
    return message_pb2.Message(
        role=message_pb2.ROLE_TOOL,
        content_blocks=[message_pb2.ContentBlock(tool_result=r) for r in results],
    )


def tool_uses(content_blocks_json: str) -> dict[str, str]:
    """tool_use_id -> wire name of every tool_use block in a stored message."""
    return {
        block.tool_use.tool_use_id: block.tool_use.name
        for block in _list_from_json(content_blocks_json, message_pb2.ContentBlock)
        if block.WhichOneof("block") == "tool_use"
    }


# --- runs ---------------------------------------------------------------------------------------


def pending_tool_calls(row: RunRow) -> list[run_pb2.PendingToolCall]:
    """A paused run's pending calls; one stored before kinds existed is a caller call."""
    calls = _list_from_json(row.pending_tool_calls, run_pb2.PendingToolCall)
    for call in calls:
        if call.kind == run_pb2.PendingToolCall.KIND_UNSPECIFIED:
            call.kind = run_pb2.PendingToolCall.KIND_CALLER
    return calls


def pending_tool_call_ids(row: RunRow) -> list[str]:
    return [call.tool_use_id for call in pending_tool_calls(row)]


def run_to_proto(
    row: RunRow, current_name: str | None, live_turns: Iterable[run_pb2.LiveTurn] = ()
) -> run_pb2.Run:
    """A run as the status table says: terminal fields only once they were committed; the live
    turns only while it is in flight."""
    if row.status in IN_FLIGHT:
        return _run_to_proto(row, current_name, live_turns)
    key = (*_SHOWN(row), current_name)
    with _SETTLED_LOCK:
        wire = _SETTLED.get(key)
    if wire is None:
        wire = _run_to_proto(row, current_name, ()).SerializeToString()
        with _SETTLED_LOCK:
            if len(_SETTLED) >= _SETTLED_KEPT:
                del _SETTLED[next(iter(_SETTLED))]  # the oldest
            _SETTLED[key] = wire
    return run_pb2.Run.FromString(wire)


# A settled run's proto, kept serialised per version of the columns it is built from: pollers
# re-read finished runs, building one (config, timestamps, usage, metadata Struct) cost ~15 % of
# a GET's CPU, and parsing the kept bytes costs microseconds. The key is every column but these
# (a column added later is in it unless listed here); the payload may hold megabytes of images,
# never hashed or kept. A lock: lists are mapped on the store thread, single runs on the loop.
_NOT_SHOWN = frozenset(
    {"payload", "request_hash", "lease_owner", "lease_expires_at", "attempts",
     "cancel_requested", "execution_cluster", "model"}
)  # fmt: skip
_SHOWN = operator.attrgetter(
    *(f.name for f in dataclasses.fields(RunRow) if f.name not in _NOT_SHOWN)
)
_SETTLED: dict[tuple[Any, ...], bytes] = {}
_SETTLED_KEPT = 256
_SETTLED_LOCK = threading.Lock()


def _run_to_proto(
    row: RunRow, current_name: str | None, live_turns: Iterable[run_pb2.LiveTurn]
) -> run_pb2.Run:
    run = run_pb2.Run(
        id=row.id,
        conversation_id=row.conversation_id,
        company_id=row.company_id,
        user_id=row.user_id,
        client_op_id=row.client_op_id,
        status=STATUS_FROM_DB[row.status],
        effective_config=config_from_json(row.effective_config),
        submitted_inference_job_ids=orjson.loads(row.submitted_inference_job_ids),
        pending_tool_calls=pending_tool_calls(row),
        started_at=timestamp(row.started_at),
        live=run_pb2.Live(),
    )
    if row.status in IN_FLIGHT:
        run.live.messages.extend(live_turns)
    if current_name is not None:
        run.live.current_name = current_name
    if row.tool_choice is not None:
        from_json(row.tool_choice, run.tool_choice)
    if row.iterations_used is not None:
        run.iterations_used = row.iterations_used
    if row.total_tokens is not None:
        run.usage.CopyFrom(run_usage(row))
        rate = cache_hit_rate(run.usage)
        if rate is not None:
            run.cache_hit_rate = rate
    if row.final_text is not None:
        run.final_text = row.final_text
    if row.final_structured_output is not None:
        json_format.ParseDict(
            orjson.loads(row.final_structured_output), run.final_structured_output
        )
    if row.status == "failed" and row.error_type is not None:
        run.error.type = row.error_type
        run.error.message = row.error_message or ""
    if row.completed_at is not None:
        run.completed_at.CopyFrom(timestamp(row.completed_at))
        run.duration_ms = duration_ms(row.started_at, row.completed_at)
    if row.execution_started_at is not None:
        run.execution_started_at.CopyFrom(timestamp(row.execution_started_at))
    if row.cost_nano_usd is not None:
        run.total_cost_usd = usd(row.cost_nano_usd)
    run.latest_event_seq = row.event_seq
    run.trace_id = tracing.trace_id_of(row.traceparent) or ""  # "": a run from before traces
    run.metadata.SetInParent()  # {} by default, never null
    run.metadata.update(orjson.loads(row.run_metadata))
    return run


def listed_run_to_proto(row: RunRow) -> run_pb2.Run:
    """A run as a list shows it: without `live` (read the run for that)."""
    run = run_to_proto(row, None)
    run.ClearField("live")
    return run


def run_usage(row: RunRow) -> run_pb2.Usage:
    return run_pb2.Usage(
        prompt_tokens=row.prompt_tokens or 0,
        completion_tokens=row.completion_tokens or 0,
        total_tokens=row.total_tokens or 0,
        cache_read_input_tokens=row.cache_read_tokens or 0,
        cache_write_input_tokens=row.cache_write_tokens or 0,
    )


def cache_hit_rate(usage: run_pb2.Usage) -> float | None:
    """Cache reads / all input tokens (prompt, cache reads and writes); None with no input."""
    reads = usage.cache_read_input_tokens
    every = usage.prompt_tokens + reads + usage.cache_write_input_tokens
    return reads / every if every else None


def duration_ms(started: datetime, completed: datetime) -> int:
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    if completed.tzinfo is None:
        completed = completed.replace(tzinfo=UTC)
    return (completed - started) // timedelta(milliseconds=1)


def usd(nano_usd: int) -> float:
    """Stored nano-USD as USD (a JSON number; sums are taken in nano-USD)."""
    return nano_usd / 1e9


def terminal_values(run: run_pb2.Run, now: datetime) -> dict[str, Any]:
    """The columns CommitRun writes from the runner's terminal Run."""
    usage = field_or(run, "usage")
    structured = None
    if run.HasField("final_structured_output"):
        structured = orjson.dumps(json_format.MessageToDict(run.final_structured_output)).decode()
    return {
        "status": STATUS_TO_DB[run.status],
        "iterations_used": field_or(run, "iterations_used"),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "cache_read_tokens": usage.cache_read_input_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_input_tokens if usage else None,
        "submitted_inference_job_ids": orjson.dumps(list(run.submitted_inference_job_ids)).decode(),
        "pending_tool_calls": list_to_json(run.pending_tool_calls),
        "final_text": field_or(run, "final_text"),
        "final_structured_output": structured,
        "error_type": run.error.type if run.HasField("error") else None,
        "error_message": run.error.message if run.HasField("error") else None,
        "completed_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }


# --- inference jobs -----------------------------------------------------------------------------


def job_values(job: run_pb2.InferenceJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "run_id": job.run_id,
        "iteration": job.iteration,
        "provider": job.provider,
        "provider_model_id": job.provider_model_id,
        "request_json": job.request_json,
        "response_json": job.response_json,
        "error_type": job.error_type or None,
        "error_message": job.error_message or None,
        "prompt_tokens": job.usage.prompt_tokens,
        "completion_tokens": job.usage.completion_tokens,
        "started_at": job.started_at.ToDatetime(tzinfo=UTC),
        "completed_at": job.completed_at.ToDatetime(tzinfo=UTC),
        "cache_read_tokens": job.usage.cache_read_input_tokens,
        "cache_write_tokens": job.usage.cache_write_input_tokens,
    }


def job_to_proto(row: InferenceJobRow) -> run_pb2.InferenceJob:
    prompt, completion = row.prompt_tokens, row.completion_tokens
    return run_pb2.InferenceJob(
        id=row.id,
        run_id=row.run_id,
        iteration=row.iteration,
        provider=row.provider,
        provider_model_id=row.provider_model_id,
        request_json=row.request_json,
        response_json=row.response_json,
        error_type=row.error_type or "",
        error_message=row.error_message or "",
        usage=run_pb2.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion + row.cache_read_tokens + row.cache_write_tokens,
            cache_read_input_tokens=row.cache_read_tokens,
            cache_write_input_tokens=row.cache_write_tokens,
        ),
        started_at=timestamp(row.started_at),
        completed_at=timestamp(row.completed_at),
    )


# --- the catalogue ------------------------------------------------------------------------------


def models_to_proto(models: Iterable[UsableModel]) -> conversation_service_pb2.ListModelsResponse:
    response = conversation_service_pb2.ListModelsResponse()
    for usable in models:
        model = response.models.add(
            id=usable.model.id,
            providers=[
                p for p in usable.model.providers if any(c.provider == p for c in usable.clusters)
            ],
            execution_clusters=[c.name for c in usable.clusters],
        )
        price = usable.model.price
        if price is not None:
            model.price.CopyFrom(
                model_pb2.ModelPrice(
                    input_per_mtok=price.input_per_mtok,
                    output_per_mtok=price.output_per_mtok,
                    cache_read_per_mtok=price.cache_read_per_mtok,
                    cache_write_per_mtok=price.cache_write_per_mtok,
                    as_of=price.as_of.isoformat(),
                )
            )
    return response
