"""The store's rows (and pages of them) as typed, immutable values: what a query hands back,
read by attribute.

Each class lists its table's columns in the table's order, so a Core row becomes one with
`RunRow(*row)` (no per-column lookups); `_check_order` holds that at import.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from services.api.db.models import conversations, inference_jobs, messages, runs


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str
    company_id: int
    user_id: int
    name: str | None
    system_prompt: str | None
    defaults: str  # AgentConfig JSON, documented defaults filled in
    version: int  # last committed sequence_no
    active_run_id: str | None  # a pending or running run
    latest_run_id: str | None  # the newest run started
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    conversation_id: str
    company_id: int
    user_id: int
    client_op_id: str
    status: str  # pending | running | completed | requires_action | failed
    payload: str  # RunPayload JSON
    tool_choice: str | None  # ToolChoice JSON
    effective_config: str  # AgentConfig JSON, fully merged
    iterations_used: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    submitted_inference_job_ids: str  # JSON list
    pending_tool_calls: str  # JSON list of PendingToolCall
    final_text: str | None
    final_structured_output: str | None  # JSON value
    error_type: str | None  # an incident code; its title and docs link are rendered on reading
    error_message: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    started_at: datetime
    completed_at: datetime | None
    event_seq: int  # the last run_events.seq
    attempts: int  # claims so far
    cancel_requested: bool
    execution_cluster: str  # effective_config's: which runner pool claims the run
    model: str  # effective_config's
    execution_started_at: datetime | None  # the first claim
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_nano_usd: int | None  # USD x 1e9, at the price in force at started_at
    run_metadata: str  # Struct JSON
    request_hash: str  # StartRun's body, hashed: a run_id replay must match it
    traceparent: str | None  # the StartRun's: the run's trace (Run.trace_id: tracing.trace_id_of)


@dataclass(frozen=True, slots=True)
class MessageRow:
    conversation_id: str
    sequence_no: int
    role: str  # user | assistant | tool
    content_blocks: str  # JSON list of ContentBlock
    run_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InferenceJobRow:
    id: str
    run_id: str
    iteration: int
    provider: str
    provider_model_id: str
    request_json: str
    response_json: str
    error_type: str | None
    error_message: str | None
    prompt_tokens: int
    completion_tokens: int
    started_at: datetime
    completed_at: datetime
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True, slots=True)
class ConversationPage:
    rows: list[ConversationRow]
    page: int
    per_page: int
    total_records: int

    @property
    def total_pages(self) -> int:
        return -(-self.total_records // self.per_page)


@dataclass(frozen=True, slots=True)
class MessagePage:
    current_version: int
    rows: list[MessageRow]
    next_since: int | None


def values(row: ConversationRow | RunRow) -> dict[str, Any]:
    """The row as an INSERT's parameters."""
    return {f.name: getattr(row, f.name) for f in fields(row)}


def _check_order(row_type: type, table: Table) -> None:
    names = [f.name for f in fields(row_type)]
    if names != list(table.c.keys()):
        raise RuntimeError(f"{row_type.__name__} does not list {table.name}'s columns in order")


for _type, _table in (
    (ConversationRow, conversations),
    (RunRow, runs),
    (MessageRow, messages),
    (InferenceJobRow, inference_jobs),
):
    _check_order(_type, _table)
