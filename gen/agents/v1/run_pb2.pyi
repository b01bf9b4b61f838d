import datetime

from agents.v1 import config_pb2 as _config_pb2
from agents.v1 import http_options_pb2 as _http_options_pb2
from agents.v1 import message_pb2 as _message_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_REQUIRES_ACTION: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_REQUIRES_ACTION: RunStatus
RUN_STATUS_FAILED: RunStatus

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens", "cache_read_input_tokens", "cache_write_input_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ..., cache_write_input_tokens: _Optional[int] = ...) -> None: ...

class PendingToolCall(_message.Message):
    __slots__ = ("tool_use_id", "name", "arguments", "kind", "server_alias")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PendingToolCall.Kind]
        KIND_CALLER: _ClassVar[PendingToolCall.Kind]
        KIND_APPROVAL: _ClassVar[PendingToolCall.Kind]
    KIND_UNSPECIFIED: PendingToolCall.Kind
    KIND_CALLER: PendingToolCall.Kind
    KIND_APPROVAL: PendingToolCall.Kind
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERVER_ALIAS_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    name: str
    arguments: _struct_pb2.Struct
    kind: PendingToolCall.Kind
    server_alias: str
    def __init__(self, tool_use_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kind: _Optional[_Union[PendingToolCall.Kind, str]] = ..., server_alias: _Optional[str] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("type", "message", "title", "docs_url")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DOCS_URL_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    title: str
    docs_url: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., title: _Optional[str] = ..., docs_url: _Optional[str] = ...) -> None: ...

class LiveTurn(_message.Message):
    __slots__ = ("turn_index", "role", "content_blocks", "partial")
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    turn_index: int
    role: _message_pb2.Role
    content_blocks: _containers.RepeatedCompositeFieldContainer[_message_pb2.ContentBlock]
    partial: bool
    def __init__(self, turn_index: _Optional[int] = ..., role: _Optional[_Union[_message_pb2.Role, str]] = ..., content_blocks: _Optional[_Iterable[_Union[_message_pb2.ContentBlock, _Mapping]]] = ..., partial: _Optional[bool] = ...) -> None: ...

class Live(_message.Message):
    __slots__ = ("current_name", "messages")
    CURRENT_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    current_name: str
    messages: _containers.RepeatedCompositeFieldContainer[LiveTurn]
    def __init__(self, current_name: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[LiveTurn, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "conversation_id", "company_id", "user_id", "client_op_id", "status", "tool_choice", "effective_config", "iterations_used", "usage", "submitted_inference_job_ids", "pending_tool_calls", "final_text", "final_structured_output", "error", "started_at", "completed_at", "live", "execution_started_at", "duration_ms", "latest_event_seq", "cache_hit_rate", "total_cost_usd", "trace_id", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_OP_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_USED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_INFERENCE_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    LATEST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_USD_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    conversation_id: str
    company_id: int
    user_id: int
    client_op_id: str
    status: RunStatus
    tool_choice: _config_pb2.ToolChoice
    effective_config: _config_pb2.AgentConfig
    iterations_used: int
    usage: Usage
    submitted_inference_job_ids: _containers.RepeatedScalarFieldContainer[str]
    pending_tool_calls: _containers.RepeatedCompositeFieldContainer[PendingToolCall]
    final_text: str
    final_structured_output: _struct_pb2.Value
    error: RunError
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    live: Live
    execution_started_at: _timestamp_pb2.Timestamp
    duration_ms: int
    latest_event_seq: int
    cache_hit_rate: float
    total_cost_usd: float
    trace_id: str
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., company_id: _Optional[int] = ..., user_id: _Optional[int] = ..., client_op_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., tool_choice: _Optional[_Union[_config_pb2.ToolChoice, _Mapping]] = ..., effective_config: _Optional[_Union[_config_pb2.AgentConfig, _Mapping]] = ..., iterations_used: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., submitted_inference_job_ids: _Optional[_Iterable[str]] = ..., pending_tool_calls: _Optional[_Iterable[_Union[PendingToolCall, _Mapping]]] = ..., final_text: _Optional[str] = ..., final_structured_output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., live: _Optional[_Union[Live, _Mapping]] = ..., execution_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_ms: _Optional[int] = ..., latest_event_seq: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ..., total_cost_usd: _Optional[float] = ..., trace_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ToolOutput(_message.Message):
    __slots__ = ("tool_use_id", "content", "is_error")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    content: str
    is_error: bool
    def __init__(self, tool_use_id: _Optional[str] = ..., content: _Optional[str] = ..., is_error: _Optional[bool] = ...) -> None: ...

class ToolApproval(_message.Message):
    __slots__ = ("tool_use_id", "decision", "reason")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    decision: _message_pb2.ApprovalDecision
    reason: str
    def __init__(self, tool_use_id: _Optional[str] = ..., decision: _Optional[_Union[_message_pb2.ApprovalDecision, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ContentBlockList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[_message_pb2.ContentBlock]
    def __init__(self, values: _Optional[_Iterable[_Union[_message_pb2.ContentBlock, _Mapping]]] = ...) -> None: ...

class RunPayload(_message.Message):
    __slots__ = ("user_message", "tool_outputs")
    class UserMessage(_message.Message):
        __slots__ = ("text", "content")
        TEXT_FIELD_NUMBER: _ClassVar[int]
        CONTENT_FIELD_NUMBER: _ClassVar[int]
        text: str
        content: _containers.RepeatedCompositeFieldContainer[_message_pb2.ContentBlock]
        def __init__(self, text: _Optional[str] = ..., content: _Optional[_Iterable[_Union[_message_pb2.ContentBlock, _Mapping]]] = ...) -> None: ...
    class ToolOutputs(_message.Message):
        __slots__ = ("outputs", "approvals")
        OUTPUTS_FIELD_NUMBER: _ClassVar[int]
        APPROVALS_FIELD_NUMBER: _ClassVar[int]
        outputs: _containers.RepeatedCompositeFieldContainer[ToolOutput]
        approvals: _containers.RepeatedCompositeFieldContainer[ToolApproval]
        def __init__(self, outputs: _Optional[_Iterable[_Union[ToolOutput, _Mapping]]] = ..., approvals: _Optional[_Iterable[_Union[ToolApproval, _Mapping]]] = ...) -> None: ...
    USER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOOL_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    user_message: RunPayload.UserMessage
    tool_outputs: RunPayload.ToolOutputs
    def __init__(self, user_message: _Optional[_Union[RunPayload.UserMessage, _Mapping]] = ..., tool_outputs: _Optional[_Union[RunPayload.ToolOutputs, _Mapping]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("seq", "type", "created_at", "status", "turn", "usage", "run", "turn_index", "block_index", "text", "attempt", "tool_use_id", "name", "kind", "arguments", "is_error", "content")
    class ToolKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TOOL_KIND_UNSPECIFIED: _ClassVar[RunEvent.ToolKind]
        TOOL_KIND_MCP: _ClassVar[RunEvent.ToolKind]
        TOOL_KIND_CALLER: _ClassVar[RunEvent.ToolKind]
    TOOL_KIND_UNSPECIFIED: RunEvent.ToolKind
    TOOL_KIND_MCP: RunEvent.ToolKind
    TOOL_KIND_CALLER: RunEvent.ToolKind
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    type: str
    created_at: _timestamp_pb2.Timestamp
    status: RunStatus
    turn: LiveTurn
    usage: Usage
    run: Run
    turn_index: int
    block_index: int
    text: str
    attempt: int
    tool_use_id: str
    name: str
    kind: RunEvent.ToolKind
    arguments: _struct_pb2.Struct
    is_error: bool
    content: ContentBlockList
    def __init__(self, seq: _Optional[int] = ..., type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., turn: _Optional[_Union[LiveTurn, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., run: _Optional[_Union[Run, _Mapping]] = ..., turn_index: _Optional[int] = ..., block_index: _Optional[int] = ..., text: _Optional[str] = ..., attempt: _Optional[int] = ..., tool_use_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[RunEvent.ToolKind, str]] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., is_error: _Optional[bool] = ..., content: _Optional[_Union[ContentBlockList, _Mapping]] = ...) -> None: ...

class InferenceJob(_message.Message):
    __slots__ = ("id", "run_id", "iteration", "provider", "provider_model_id", "request_json", "response_json", "error_type", "error_message", "usage", "started_at", "completed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_JSON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    iteration: int
    provider: str
    provider_model_id: str
    request_json: str
    response_json: str
    error_type: str
    error_message: str
    usage: Usage
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., iteration: _Optional[int] = ..., provider: _Optional[str] = ..., provider_model_id: _Optional[str] = ..., request_json: _Optional[str] = ..., response_json: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
