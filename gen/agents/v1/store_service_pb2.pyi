from agents.v1 import message_pb2 as _message_pb2
from agents.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimRunRequest(_message.Message):
    __slots__ = ("runner_id", "lease_seconds", "wait_ms", "clusters", "max_runs")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    lease_seconds: int
    wait_ms: int
    clusters: _containers.RepeatedScalarFieldContainer[str]
    max_runs: int
    def __init__(self, runner_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., wait_ms: _Optional[int] = ..., clusters: _Optional[_Iterable[str]] = ..., max_runs: _Optional[int] = ...) -> None: ...

class ClaimRunResponse(_message.Message):
    __slots__ = ("run", "system_prompt", "history", "input", "resumed_turns", "resumed_usage", "attempt", "cancel_requested", "retry_after_ms", "approved_calls", "started_tool_use_ids", "partial_turn_lost", "traceparent", "more")
    RUN_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_TURNS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_USAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_CALLS_FIELD_NUMBER: _ClassVar[int]
    STARTED_TOOL_USE_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_TURN_LOST_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    system_prompt: str
    history: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    input: _message_pb2.Message
    resumed_turns: _containers.RepeatedCompositeFieldContainer[_run_pb2.LiveTurn]
    resumed_usage: _run_pb2.Usage
    attempt: int
    cancel_requested: bool
    retry_after_ms: int
    approved_calls: _containers.RepeatedCompositeFieldContainer[ApprovedCall]
    started_tool_use_ids: _containers.RepeatedScalarFieldContainer[str]
    partial_turn_lost: bool
    traceparent: str
    more: _containers.RepeatedCompositeFieldContainer[ClaimRunResponse]
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., system_prompt: _Optional[str] = ..., history: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ..., input: _Optional[_Union[_message_pb2.Message, _Mapping]] = ..., resumed_turns: _Optional[_Iterable[_Union[_run_pb2.LiveTurn, _Mapping]]] = ..., resumed_usage: _Optional[_Union[_run_pb2.Usage, _Mapping]] = ..., attempt: _Optional[int] = ..., cancel_requested: _Optional[bool] = ..., retry_after_ms: _Optional[int] = ..., approved_calls: _Optional[_Iterable[_Union[ApprovedCall, _Mapping]]] = ..., started_tool_use_ids: _Optional[_Iterable[str]] = ..., partial_turn_lost: _Optional[bool] = ..., traceparent: _Optional[str] = ..., more: _Optional[_Iterable[_Union[ClaimRunResponse, _Mapping]]] = ...) -> None: ...

class ApprovedCall(_message.Message):
    __slots__ = ("use", "approval")
    USE_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    use: _message_pb2.ToolUseBlock
    approval: _message_pb2.ApprovalRecord
    def __init__(self, use: _Optional[_Union[_message_pb2.ToolUseBlock, _Mapping]] = ..., approval: _Optional[_Union[_message_pb2.ApprovalRecord, _Mapping]] = ...) -> None: ...

class RenewLeasesRequest(_message.Message):
    __slots__ = ("runner_id", "run_ids", "lease_seconds")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    lease_seconds: int
    def __init__(self, runner_id: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class RenewLeasesResponse(_message.Message):
    __slots__ = ("cancel_requested", "lost")
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    cancel_requested: _containers.RepeatedScalarFieldContainer[str]
    lost: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancel_requested: _Optional[_Iterable[str]] = ..., lost: _Optional[_Iterable[str]] = ...) -> None: ...

class ReleaseLeasesRequest(_message.Message):
    __slots__ = ("runner_name", "runner_id")
    RUNNER_NAME_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    runner_name: str
    runner_id: str
    def __init__(self, runner_name: _Optional[str] = ..., runner_id: _Optional[str] = ...) -> None: ...

class ReleaseLeasesResponse(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CommitRunRequest(_message.Message):
    __slots__ = ("run_id", "runner_id", "run", "turns", "iteration", "publish", "events")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    runner_id: str
    run: _run_pb2.Run
    turns: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    iteration: Iteration
    publish: _containers.RepeatedCompositeFieldContainer[_run_pb2.LiveTurn]
    events: _containers.RepeatedCompositeFieldContainer[_run_pb2.RunEvent]
    def __init__(self, run_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ..., iteration: _Optional[_Union[Iteration, _Mapping]] = ..., publish: _Optional[_Iterable[_Union[_run_pb2.LiveTurn, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[_run_pb2.RunEvent, _Mapping]]] = ...) -> None: ...

class CommitRunResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class WatchWorkRequest(_message.Message):
    __slots__ = ("runner_id",)
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    def __init__(self, runner_id: _Optional[str] = ...) -> None: ...

class WatchWorkResponse(_message.Message):
    __slots__ = ("kind", "run_id")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[WatchWorkResponse.Kind]
        KIND_CANCEL_REQUESTED: _ClassVar[WatchWorkResponse.Kind]
    KIND_UNSPECIFIED: WatchWorkResponse.Kind
    KIND_CANCEL_REQUESTED: WatchWorkResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    kind: WatchWorkResponse.Kind
    run_id: str
    def __init__(self, kind: _Optional[_Union[WatchWorkResponse.Kind, str]] = ..., run_id: _Optional[str] = ...) -> None: ...

class AppendLiveTurnRequest(_message.Message):
    __slots__ = ("run_id", "runner_id", "turn", "iteration")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    runner_id: str
    turn: _run_pb2.LiveTurn
    iteration: Iteration
    def __init__(self, run_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., turn: _Optional[_Union[_run_pb2.LiveTurn, _Mapping]] = ..., iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class AppendLiveTurnResponse(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class AppendRunEventsRequest(_message.Message):
    __slots__ = ("run_id", "runner_id", "events", "iteration")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    runner_id: str
    events: _containers.RepeatedCompositeFieldContainer[_run_pb2.RunEvent]
    iteration: Iteration
    def __init__(self, run_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_run_pb2.RunEvent, _Mapping]]] = ..., iteration: _Optional[_Union[Iteration, _Mapping]] = ...) -> None: ...

class AppendRunEventsResponse(_message.Message):
    __slots__ = ("last_seq",)
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    last_seq: int
    def __init__(self, last_seq: _Optional[int] = ...) -> None: ...

class Iteration(_message.Message):
    __slots__ = ("job", "run_usage")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RUN_USAGE_FIELD_NUMBER: _ClassVar[int]
    job: _run_pb2.InferenceJob
    run_usage: _run_pb2.Usage
    def __init__(self, job: _Optional[_Union[_run_pb2.InferenceJob, _Mapping]] = ..., run_usage: _Optional[_Union[_run_pb2.Usage, _Mapping]] = ...) -> None: ...

class GetInferenceJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SetGeneratedNameRequest(_message.Message):
    __slots__ = ("conversation_id", "name")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    name: str
    def __init__(self, conversation_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SetGeneratedNameResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...
