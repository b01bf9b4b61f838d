from agents.v1 import message_pb2 as _message_pb2
from agents.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimRunRequest(_message.Message):
    __slots__ = ("runner_id", "lease_seconds")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    lease_seconds: int
    def __init__(self, runner_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class ClaimRunResponse(_message.Message):
    __slots__ = ("run", "system_prompt", "history", "input")
    RUN_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    system_prompt: str
    history: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    input: _message_pb2.Message
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., system_prompt: _Optional[str] = ..., history: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ..., input: _Optional[_Union[_message_pb2.Message, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("run_id", "runner_id", "lease_seconds")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    runner_id: str
    lease_seconds: int
    def __init__(self, run_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CommitRunRequest(_message.Message):
    __slots__ = ("run_id", "runner_id", "run", "turns")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    runner_id: str
    run: _run_pb2.Run
    turns: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    def __init__(self, run_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ...) -> None: ...

class CommitRunResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...
