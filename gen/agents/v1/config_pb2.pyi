from agents.v1 import http_options_pb2 as _http_options_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class McpServer(_message.Message):
    __slots__ = ("alias", "url", "description", "tools", "require_approval")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    alias: str
    url: str
    description: str
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    require_approval: _struct_pb2.Value
    def __init__(self, alias: _Optional[str] = ..., url: _Optional[str] = ..., description: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., require_approval: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class ThinkingConfig(_message.Message):
    __slots__ = ("enabled", "budget_tokens")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    budget_tokens: int
    def __init__(self, enabled: _Optional[bool] = ..., budget_tokens: _Optional[int] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "input_schema", "strict")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema: _struct_pb2.Struct
    strict: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., strict: _Optional[bool] = ...) -> None: ...

class McpServerList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[McpServer]
    def __init__(self, values: _Optional[_Iterable[_Union[McpServer, _Mapping]]] = ...) -> None: ...

class ToolList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Tool]
    def __init__(self, values: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ...) -> None: ...

class AgentConfig(_message.Message):
    __slots__ = ("model", "data_plane_id", "execution_cluster", "compute_pool_id", "max_iterations", "max_tokens", "temperature", "output_format_schema", "mcp_servers", "tools", "stream", "thinking", "prompt_caching")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_POOL_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHING_FIELD_NUMBER: _ClassVar[int]
    model: str
    data_plane_id: str
    execution_cluster: str
    compute_pool_id: str
    max_iterations: int
    max_tokens: int
    temperature: float
    output_format_schema: _struct_pb2.Struct
    mcp_servers: _containers.RepeatedCompositeFieldContainer[McpServer]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    stream: bool
    thinking: ThinkingConfig
    prompt_caching: bool
    def __init__(self, model: _Optional[str] = ..., data_plane_id: _Optional[str] = ..., execution_cluster: _Optional[str] = ..., compute_pool_id: _Optional[str] = ..., max_iterations: _Optional[int] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., output_format_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., mcp_servers: _Optional[_Iterable[_Union[McpServer, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., stream: _Optional[bool] = ..., thinking: _Optional[_Union[ThinkingConfig, _Mapping]] = ..., prompt_caching: _Optional[bool] = ...) -> None: ...

class ConfigOverride(_message.Message):
    __slots__ = ("model", "data_plane_id", "execution_cluster", "compute_pool_id", "max_iterations", "max_tokens", "temperature", "output_format_schema", "mcp_servers", "tools", "stream", "thinking", "prompt_caching")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_POOL_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHING_FIELD_NUMBER: _ClassVar[int]
    model: str
    data_plane_id: str
    execution_cluster: str
    compute_pool_id: str
    max_iterations: int
    max_tokens: int
    temperature: float
    output_format_schema: _struct_pb2.Struct
    mcp_servers: McpServerList
    tools: ToolList
    stream: bool
    thinking: ThinkingConfig
    prompt_caching: bool
    def __init__(self, model: _Optional[str] = ..., data_plane_id: _Optional[str] = ..., execution_cluster: _Optional[str] = ..., compute_pool_id: _Optional[str] = ..., max_iterations: _Optional[int] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., output_format_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., mcp_servers: _Optional[_Union[McpServerList, _Mapping]] = ..., tools: _Optional[_Union[ToolList, _Mapping]] = ..., stream: _Optional[bool] = ..., thinking: _Optional[_Union[ThinkingConfig, _Mapping]] = ..., prompt_caching: _Optional[bool] = ...) -> None: ...

class ToolChoice(_message.Message):
    __slots__ = ("auto", "any", "specific_tool")
    class Auto(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class AnyTool(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class SpecificTool(_message.Message):
        __slots__ = ("name", "mcp_alias")
        NAME_FIELD_NUMBER: _ClassVar[int]
        MCP_ALIAS_FIELD_NUMBER: _ClassVar[int]
        name: str
        mcp_alias: str
        def __init__(self, name: _Optional[str] = ..., mcp_alias: _Optional[str] = ...) -> None: ...
    AUTO_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    SPECIFIC_TOOL_FIELD_NUMBER: _ClassVar[int]
    auto: ToolChoice.Auto
    any: ToolChoice.AnyTool
    specific_tool: ToolChoice.SpecificTool
    def __init__(self, auto: _Optional[_Union[ToolChoice.Auto, _Mapping]] = ..., any: _Optional[_Union[ToolChoice.AnyTool, _Mapping]] = ..., specific_tool: _Optional[_Union[ToolChoice.SpecificTool, _Mapping]] = ...) -> None: ...
