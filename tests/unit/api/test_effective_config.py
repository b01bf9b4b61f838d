"""effective_config.py: documented defaults, sparse merge with presence, text-mode schema."""

from __future__ import annotations

from typing import Any

from agents.v1 import config_pb2
from google.protobuf import json_format

from services.api import effective_config
from services.common.contract import TEXT_MODE_SCHEMA

DEFAULTS = effective_config.with_defaults(
    json_format.ParseDict(
        {
            "model": "anthropic.claude-opus-4.6",
            "data_plane_id": "dp",
            "max_tokens": 1024,
            "tools": [{"name": "confirm_booking"}],
            "mcp_servers": [{"alias": "docs", "url": "https://docs.test/mcp"}],
            "output_format_schema": {"type": "object"},
        },
        config_pb2.AgentConfig(),
    )
)


def as_dict(cfg: config_pb2.AgentConfig) -> dict[str, Any]:
    return json_format.MessageToDict(cfg, preserving_proto_field_name=True)


def override(**fields: Any) -> config_pb2.ConfigOverride:
    return json_format.ParseDict(fields, config_pb2.ConfigOverride())


def test_documented_defaults_fill_only_unset_fields() -> None:
    filled = effective_config.with_defaults(config_pb2.AgentConfig(model="m", max_iterations=8))
    assert (
        filled.execution_cluster,
        filled.max_iterations,
        filled.max_tokens,
        filled.temperature,
    ) == ("shared", 8, 2048, 0.0)
    assert filled.HasField("temperature")
    assert not filled.HasField("compute_pool_id")


def test_no_override_is_the_defaults() -> None:
    assert effective_config.merge(DEFAULTS, None) == DEFAULTS
    assert effective_config.merge(DEFAULTS, config_pb2.ConfigOverride()) == DEFAULTS


def test_scalars_replace_only_when_set() -> None:
    merged = effective_config.merge(
        DEFAULTS, override(max_iterations=8, temperature=0.0, compute_pool_id="pool-1")
    )
    assert (merged.max_iterations, merged.temperature, merged.compute_pool_id) == (8, 0.0, "pool-1")
    assert merged.max_tokens == 1024 and merged.model == "anthropic.claude-opus-4.6"


def test_zero_values_are_set_values() -> None:
    base = effective_config.with_defaults(config_pb2.AgentConfig(model="m", temperature=0.7))
    assert effective_config.merge(base, override(temperature=0.0)).temperature == 0.0


def test_lists_are_replaced_wholesale_even_when_empty() -> None:
    merged = effective_config.merge(DEFAULTS, override(mcp_servers={"values": []}))
    assert list(merged.mcp_servers) == [] and [t.name for t in merged.tools] == ["confirm_booking"]
    merged = effective_config.merge(
        DEFAULTS, override(tools={"values": [{"name": "a"}, {"name": "b"}]})
    )
    assert [t.name for t in merged.tools] == ["a", "b"]
    assert [s.alias for s in merged.mcp_servers] == ["docs"]


def test_schema_replaces_and_empty_means_text_mode() -> None:
    merged = effective_config.merge(DEFAULTS, override(output_format_schema={"type": "array"}))
    assert as_dict(merged)["output_format_schema"] == {"type": "array"}
    text = effective_config.merge(DEFAULTS, override(output_format_schema={}))
    assert not text.HasField("output_format_schema")
    assert effective_config.is_text_mode(text)


def test_text_mode_echoes_the_implicit_schema() -> None:
    text = effective_config.with_text_mode_schema(
        effective_config.with_defaults(config_pb2.AgentConfig(model="m"))
    )
    assert as_dict(text)["output_format_schema"] == TEXT_MODE_SCHEMA
    assert effective_config.is_text_mode(text)
    structured = effective_config.with_text_mode_schema(DEFAULTS)
    assert as_dict(structured)["output_format_schema"] == {"type": "object"}
    assert not effective_config.is_text_mode(structured)


def test_merge_does_not_touch_its_inputs() -> None:
    before = config_pb2.AgentConfig()
    before.CopyFrom(DEFAULTS)
    effective_config.merge(DEFAULTS, override(model="x", tools={"values": []}))
    assert DEFAULTS == before
