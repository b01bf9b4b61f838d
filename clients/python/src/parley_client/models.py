"""Typed models of what the API sends and takes: conversations, runs, messages, content blocks.

Every model keeps fields it does not know (`model_extra`), and a content block of a type it does
not know parses as `UnknownBlock`, so a newer server never breaks an older client. Statuses and
roles are plain strings (compare with `RunStatus`), for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag


class ParleyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    REQUIRES_ACTION = "requires_action"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.REQUIRES_ACTION, RunStatus.FAILED})
CANCELLED = "AgentLoopCancelled"  # error.type of a deliberately cancelled run


# --- content blocks -----------------------------------------------------------------------------


class TextBlock(ParleyModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(ParleyModel):
    type: Literal["tool_use"] = "tool_use"
    tool_use_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ApprovalRecord(ParleyModel):
    """How a call that waited for approval was decided: kept with its result."""

    decision: str  # approve | deny
    reason: str | None = None
    company_id: int | None = None
    user_id: int | None = None
    decided_at: datetime | None = None


class ToolResultBlock(ParleyModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool = False
    approval: ApprovalRecord | None = None  # calls that waited for approval


class ImageBlock(ParleyModel):
    type: Literal["image"] = "image"
    data: str  # base64
    mime_type: str | None = None  # tool results
    media_type: str | None = None  # user input


class AudioBlock(ParleyModel):
    type: Literal["audio"] = "audio"
    data: str
    mime_type: str | None = None


class DocumentBlock(ParleyModel):
    type: Literal["document"] = "document"
    data: str
    media_type: str | None = None
    name: str | None = None


class ResourceBlock(ParleyModel):
    type: Literal["resource"] = "resource"
    uri: str
    mime_type: str | None = None
    text: str | None = None
    blob: str | None = None


class ResourceLinkBlock(ParleyModel):
    type: Literal["resource_link"] = "resource_link"
    uri: str
    name: str
    description: str | None = None
    mime_type: str | None = None


class JsonBlock(ParleyModel):
    type: Literal["json"] = "json"
    value: Any = None


class ReasoningBlock(ParleyModel):
    type: Literal["reasoning"] = "reasoning"
    text: str = ""
    signature: str | None = None
    redacted_content: str | None = None  # base64, when the provider redacted the reasoning


class UnknownBlock(ParleyModel):
    """A block type this client does not know yet; every field is kept in `model_extra`."""

    type: str


_BLOCKS: dict[str, type[ParleyModel]] = {
    "text": TextBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "image": ImageBlock,
    "audio": AudioBlock,
    "document": DocumentBlock,
    "resource": ResourceBlock,
    "resource_link": ResourceLinkBlock,
    "json": JsonBlock,
    "reasoning": ReasoningBlock,
}


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _BLOCKS else "unknown"


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[AudioBlock, Tag("audio")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ResourceBlock, Tag("resource")]
    | Annotated[ResourceLinkBlock, Tag("resource_link")]
    | Annotated[JsonBlock, Tag("json")]
    | Annotated[ReasoningBlock, Tag("reasoning")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(_block_tag),
]
ToolResultBlock.model_rebuild()


def text_of(blocks: list[ContentBlock]) -> str:
    return "".join(b.text for b in blocks if isinstance(b, TextBlock))


# --- configuration --------------------------------------------------------------------------------


class Tool(ParleyModel):
    """A caller-declared tool (bare, dash-free name), or an entry of an MCP server's allow-list."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    strict: bool | None = None


class McpServer(ParleyModel):
    alias: str
    url: str
    description: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    # "never" | "always" | a list of the server's own tool names (CONTRACT: approvals)
    require_approval: str | list[str] | None = None


class AgentConfig(ParleyModel):
    """A conversation's `defaults`, a run's `effective_config`; build one to create a
    conversation (fields you do not set are not sent, and take the server's defaults)."""

    model: str
    data_plane_id: str
    execution_cluster: str | None = None
    compute_pool_id: str | None = None
    max_iterations: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output_format_schema: dict[str, Any] | None = None
    mcp_servers: list[McpServer] = Field(default_factory=list)
    tools: list[Tool] = Field(default_factory=list)


class ToolChoice(ParleyModel):
    kind: str  # auto | any | specific_tool
    name: str | None = None
    mcp_alias: str | None = None

    @classmethod
    def auto(cls) -> ToolChoice:
        return cls(kind="auto")

    @classmethod
    def any(cls) -> ToolChoice:
        return cls(kind="any")

    @classmethod
    def tool(cls, name: str, mcp_alias: str | None = None) -> ToolChoice:
        """A caller-declared tool, or (with `mcp_alias`) an MCP server's tool."""
        if mcp_alias is None:
            return cls(kind="specific_tool", name=name)
        return cls(kind="specific_tool", name=name, mcp_alias=mcp_alias)


# --- conversations and messages -----------------------------------------------------------------


class Conversation(ParleyModel):
    id: str
    version: int
    defaults: AgentConfig
    name: str | None = None
    system_prompt: str | None = None
    company_id: int | None = None
    user_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ConversationPage(ParleyModel):
    """The spec's pagination envelope."""

    records: list[Conversation]
    current_page: int
    total_records: int
    total_pages: int
    prev_page: int | None = None
    next_page: int | None = None


class Message(ParleyModel):
    sequence_no: int
    role: str  # user | assistant | tool
    content_blocks: list[ContentBlock] = Field(default_factory=list)
    run_id: str | None = None
    created_at: datetime | None = None

    @property
    def text(self) -> str:
        return text_of(self.content_blocks)


class MessagePage(ParleyModel):
    current_version: int
    messages: list[Message]
    next_since: int | None = None  # the `since` that reads the next page; None on the last


# --- runs ---------------------------------------------------------------------------------------


class StartOutcome(StrEnum):
    """What a StartRun did (its `Parley-Start-Outcome` header)."""

    ACCEPTED = "accepted"  # a new run (202)
    DUPLICATE = "duplicate"  # a replayed client_op_id or run_id: the original run (200)


class Usage(ParleyModel):
    """A run's token totals. As on Bedrock, `prompt_tokens` leaves out the prompt-cache reads
    and writes; `total_tokens` counts all four."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class PendingToolCall(ParleyModel):
    tool_use_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    kind: str | None = None  # "caller" | "approval" (absent: caller)
    server_alias: str | None = None  # approval requests: the MCP server's alias

    @property
    def needs_approval(self) -> bool:
        return self.kind == "approval"


class RunError(ParleyModel):
    type: str
    message: str = ""
    title: str | None = None
    docs_url: str | None = None


class LiveTurn(ParleyModel):
    turn_index: int
    role: str
    content_blocks: list[ContentBlock] = Field(default_factory=list)
    partial: bool = False  # the turn the model is still writing (live.messages)

    @property
    def text(self) -> str:
        return text_of(self.content_blocks)


class Live(ParleyModel):
    current_name: str | None = None
    messages: list[LiveTurn] = Field(default_factory=list)


class Run(ParleyModel):
    id: str
    conversation_id: str
    status: str  # compare with RunStatus; an unknown status is kept as is
    client_op_id: str | None = None
    company_id: int | None = None
    user_id: int | None = None
    tool_choice: ToolChoice | None = None
    effective_config: AgentConfig | None = None
    iterations_used: int | None = None
    usage: Usage | None = None
    submitted_inference_job_ids: list[str] = Field(default_factory=list)
    pending_tool_calls: list[PendingToolCall] = Field(default_factory=list)
    final_text: str | None = None
    final_structured_output: Any = None
    error: RunError | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    live: Live | None = None
    execution_started_at: datetime | None = None  # a runner's first pick-up; None before
    duration_ms: int | None = None  # completed_at - started_at; None until terminal
    latest_event_seq: int | None = None  # resume its events with after_seq
    cache_hit_rate: float | None = None  # cache reads / all input tokens; None with no input
    total_cost_usd: float | None = None  # None until terminal, or when the model has no price
    trace_id: str | None = None  # W3C trace id (32 hex characters)
    metadata: dict[str, Any] | None = None  # StartRun's `metadata` ({} by default)

    _start_outcome: StartOutcome | None = PrivateAttr(default=None)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def cancelled(self) -> bool:
        return (
            self.status == RunStatus.FAILED
            and self.error is not None
            and (self.error.type == CANCELLED)
        )

    @property
    def start_outcome(self) -> StartOutcome | None:
        """From `runs.start`: ACCEPTED (a new run) or DUPLICATE (an idempotent replay of the
        same client_op_id or run_id, answered with the original run); None on runs read
        otherwise."""
        return self._start_outcome

    @property
    def duplicate(self) -> bool:
        """`runs.start` answered an existing run rather than starting one."""
        return self._start_outcome == StartOutcome.DUPLICATE

    @property
    def caller_tool_calls(self) -> list[PendingToolCall]:
        """Pending calls answered with tool outputs."""
        return [c for c in self.pending_tool_calls if not c.needs_approval]

    @property
    def approval_requests(self) -> list[PendingToolCall]:
        """Pending server-side calls waiting for an approve/deny decision."""
        return [c for c in self.pending_tool_calls if c.needs_approval]


class RunPage(ParleyModel):
    """A page of runs, newest first (listed runs have no `live`)."""

    runs: list[Run]
    next_before: str | None = None  # the `before` that reads the next page; None on the last


class InferenceJob(ParleyModel):
    """One model call of a run (`runs.inference_jobs`), as sent and as received."""

    id: str
    run_id: str
    iteration: int = 0  # 1-based
    provider: str = ""  # bedrock, cortex, openai, or echo (the built-in fake model)
    provider_model_id: str = ""
    request_json: str = ""  # the request body as sent (JSON text)
    response_json: str = ""  # the response body as received; empty when the call failed
    error_type: str = ""  # the incident code when the call failed
    error_message: str = ""
    usage: Usage | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class ModelUsage(ParleyModel):
    """One model's totals over the caller's runs (`usage.get`)."""

    model: str
    runs: int = 0
    input_tokens: int = 0  # prompt tokens, cache reads and writes excluded
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    total_cost_usd: float | None = None  # None when none of its runs had a price


class UsageReport(ParleyModel):
    """The caller's usage per model, in model order, over the runs started in a time range."""

    models: list[ModelUsage] = Field(default_factory=list)
    total_cost_usd: float = 0.0  # the models' costs summed (0 when none had a price)

    def for_model(self, model: str) -> ModelUsage | None:
        return next((m for m in self.models if m.model == model), None)


class ToolOutput(ParleyModel):
    """The caller's answer to one pending tool call (as a value of the {tool_use_id: answer}
    mapping the helpers take, its `tool_use_id` comes from the key)."""

    content: str
    is_error: bool = False
    tool_use_id: str = ""


class Approval(ParleyModel):
    """A decision on one pending server-side tool call (CONTRACT: approval of tool calls)."""

    tool_use_id: str
    decision: Literal["approve", "deny"]
    reason: str | None = None
