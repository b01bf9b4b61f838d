"""output.py: a run's decoder comes from its output_format_schema, built once per schema."""

from __future__ import annotations

from google.protobuf import struct_pb2

from services.common.contract import TEXT_MODE_SCHEMA
from services.runner.output import decoder_of


def _struct(value: dict[str, object]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def test_runs_with_the_same_schema_share_one_decoder() -> None:
    person = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    reordered = {"required": ["name"], "properties": {"name": {"type": "string"}}, "type": "object"}
    first = decoder_of(_struct(person))
    assert decoder_of(_struct(reordered)) is first and not first.text_mode
    assert first.decode('{"name": "Ada"}', False).structured == {"name": "Ada"}
    assert not first.decode('{"age": 3}', False).ok
    text = decoder_of(_struct(TEXT_MODE_SCHEMA))
    assert (
        text is decoder_of(_struct(TEXT_MODE_SCHEMA)) and decoder_of(struct_pb2.Struct()).text_mode
    )
    assert text.text_mode and text.decode("Hello.", False).text == "Hello."
