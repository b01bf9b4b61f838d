from agents.v1 import config_pb2 as _config_pb2
from agents.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallerIdentity(_message.Message):
    __slots__ = ("company_id", "user_id")
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    company_id: int
    user_id: int
    def __init__(self, company_id: _Optional[int] = ..., user_id: _Optional[int] = ...) -> None: ...

class DiscoverToolsRequest(_message.Message):
    __slots__ = ("mcp_servers", "caller")
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    mcp_servers: _containers.RepeatedCompositeFieldContainer[_config_pb2.McpServer]
    caller: CallerIdentity
    def __init__(self, mcp_servers: _Optional[_Iterable[_Union[_config_pb2.McpServer, _Mapping]]] = ..., caller: _Optional[_Union[CallerIdentity, _Mapping]] = ...) -> None: ...

class DiscoveredTool(_message.Message):
    __slots__ = ("wire_name", "description", "input_schema_json", "strict")
    WIRE_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    wire_name: str
    description: str
    input_schema_json: str
    strict: bool
    def __init__(self, wire_name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[str] = ..., strict: _Optional[bool] = ...) -> None: ...

class DiscoverToolsResponse(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[DiscoveredTool]
    def __init__(self, tools: _Optional[_Iterable[_Union[DiscoveredTool, _Mapping]]] = ...) -> None: ...

class CallToolRequest(_message.Message):
    __slots__ = ("mcp_servers", "caller", "tool_use_id", "wire_name", "arguments_json")
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    WIRE_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    mcp_servers: _containers.RepeatedCompositeFieldContainer[_config_pb2.McpServer]
    caller: CallerIdentity
    tool_use_id: str
    wire_name: str
    arguments_json: str
    def __init__(self, mcp_servers: _Optional[_Iterable[_Union[_config_pb2.McpServer, _Mapping]]] = ..., caller: _Optional[_Union[CallerIdentity, _Mapping]] = ..., tool_use_id: _Optional[str] = ..., wire_name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class CallToolResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _message_pb2.ToolResultBlock
    def __init__(self, result: _Optional[_Union[_message_pb2.ToolResultBlock, _Mapping]] = ...) -> None: ...
