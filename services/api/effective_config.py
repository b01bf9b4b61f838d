"""Pure config arithmetic: documented defaults, the sparse merge of a run's config_override, and
the implicit text-mode schema a run's effective_config echoes."""

from __future__ import annotations

from typing import Final

from agents.v1 import config_pb2
from google.protobuf import struct_pb2

from services.common.contract import TEXT_MODE_SCHEMA

DEFAULT_EXECUTION_CLUSTER: Final = "shared"
DEFAULT_MAX_ITERATIONS: Final = 3
DEFAULT_MAX_TOKENS: Final = 2048
DEFAULT_TEMPERATURE: Final = 0.0
THINKING_TEMPERATURE: Final = 1.0  # the only one the models take with thinking on
DEFAULT_STREAM: Final = True
DEFAULT_PROMPT_CACHING: Final = True

_SCALARS = (
    "model",
    "data_plane_id",
    "execution_cluster",
    "compute_pool_id",
    "max_iterations",
    "max_tokens",
    "temperature",
    "stream",
    "prompt_caching",
)


_TEXT_MODE_STRUCT = struct_pb2.Struct()  # read-only: copied from and compared with, never changed
_TEXT_MODE_STRUCT.update(TEXT_MODE_SCHEMA)


def with_defaults(cfg: config_pb2.AgentConfig) -> config_pb2.AgentConfig:
    """A copy with the documented defaults filled in where the caller left a field unset.
    An empty output_format_schema ({}) means text mode, like an absent one."""
    filled = config_pb2.AgentConfig()
    filled.CopyFrom(cfg)
    if not filled.HasField("execution_cluster"):
        filled.execution_cluster = DEFAULT_EXECUTION_CLUSTER
    if not filled.HasField("max_iterations"):
        filled.max_iterations = DEFAULT_MAX_ITERATIONS
    if not filled.HasField("max_tokens"):
        filled.max_tokens = DEFAULT_MAX_TOKENS
    if not filled.HasField("temperature"):
        thinking = filled.HasField("thinking") and filled.thinking.enabled
        filled.temperature = THINKING_TEMPERATURE if thinking else DEFAULT_TEMPERATURE
    if not filled.HasField("stream"):
        filled.stream = DEFAULT_STREAM
    if not filled.HasField("prompt_caching"):
        filled.prompt_caching = DEFAULT_PROMPT_CACHING
    if filled.HasField("output_format_schema") and not filled.output_format_schema.fields:
        filled.ClearField("output_format_schema")
    return filled


def merge(
    defaults: config_pb2.AgentConfig, override: config_pb2.ConfigOverride | None
) -> config_pb2.AgentConfig:
    """Defaults with the override applied sparsely: a set scalar replaces; a set list wrapper
    replaces the whole list, even with []; a set schema replaces ({} meaning text mode)."""
    merged = config_pb2.AgentConfig()
    merged.CopyFrom(defaults)
    if override is None:
        return with_defaults(merged)
    for name in _SCALARS:
        if override.HasField(name):
            setattr(merged, name, getattr(override, name))
    if override.HasField("output_format_schema"):
        merged.output_format_schema.CopyFrom(override.output_format_schema)
    if override.HasField("thinking"):
        merged.thinking.CopyFrom(override.thinking)
    if override.HasField("mcp_servers"):
        del merged.mcp_servers[:]
        merged.mcp_servers.extend(override.mcp_servers.values)
    if override.HasField("tools"):
        del merged.tools[:]
        merged.tools.extend(override.tools.values)
    return with_defaults(merged)


def with_text_mode_schema(cfg: config_pb2.AgentConfig) -> config_pb2.AgentConfig:
    """What a run echoes as effective_config: text mode shows the implicit {text: string} schema."""
    echoed = config_pb2.AgentConfig()
    echoed.CopyFrom(cfg)
    if not echoed.HasField("output_format_schema") or not echoed.output_format_schema.fields:
        echoed.output_format_schema.CopyFrom(_TEXT_MODE_STRUCT)
    return echoed


def is_text_mode(cfg: config_pb2.AgentConfig) -> bool:
    """True when the run answers with final_text (no schema, or the implicit one)."""
    if not cfg.HasField("output_format_schema") or not cfg.output_format_schema.fields:
        return True
    return cfg.output_format_schema == _TEXT_MODE_STRUCT
