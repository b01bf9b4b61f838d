"""stored_json renders exactly what MessageToDict(preserving_proto_field_name=True) renders: for
every message of the API with every field set (each oneof member in turn), and for the values
whose rendering has a special case (floats, int64, bytes, maps, unknown enum numbers, Struct,
Value, timestamps)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from agents.v1 import (
    config_pb2,
    conversation_pb2,
    conversation_service_pb2,
    http_options_pb2,
    message_pb2,
    model_pb2,
    run_pb2,
    runner_service_pb2,
    store_service_pb2,
    tool_router_service_pb2,
)
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    struct_pb2,
    type_pb2,
)
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.api import stored_json

FD = FieldDescriptor


def _kinds() -> Any:
    """A proto3 file with the field kinds the API does not use (yet): float, bytes, the integer
    kinds, maps keyed by bool and int, a closed (proto2) enum is not possible in proto3."""
    T = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="stored_json_kinds.proto", package="kinds")
    file.syntax = "proto3"
    file.dependency.append("google/protobuf/struct.proto")
    kinds = file.message_type.add(name="Kinds")
    scalars = [
        ("f", T.TYPE_FLOAT), ("d", T.TYPE_DOUBLE), ("b", T.TYPE_BYTES), ("u64", T.TYPE_UINT64),
        ("s64", T.TYPE_SINT64), ("x64", T.TYPE_FIXED64), ("u32", T.TYPE_UINT32),
        ("s32", T.TYPE_SINT32), ("ok", T.TYPE_BOOL), ("s", T.TYPE_STRING),
    ]  # fmt: skip
    for number, (name, kind) in enumerate(scalars, start=1):
        kinds.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
        kinds.field.add(name=f"many_{name}", number=100 + number, type=kind, label=T.LABEL_REPEATED)
    for number, (key, kind) in enumerate([("bool", T.TYPE_BOOL), ("int", T.TYPE_INT32)], 50):
        entry = kinds.nested_type.add(name=f"By{key.title()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=kind, label=T.LABEL_OPTIONAL)
        entry.field.add(
            name="value", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
            type_name=".google.protobuf.Value",
        )  # fmt: skip
        kinds.field.add(
            name=f"by_{key}", number=number, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
            type_name=f".kinds.Kinds.By{key.title()}Entry",
        )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(struct_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kinds.Kinds"))


MODULES = (
    config_pb2,
    conversation_pb2,
    conversation_service_pb2,
    http_options_pb2,
    message_pb2,
    model_pb2,
    run_pb2,
    runner_service_pb2,
    store_service_pb2,
    tool_router_service_pb2,
)


def _messages() -> Iterator[Any]:
    def walk(desc: Any) -> Iterator[Any]:
        if not desc.GetOptions().map_entry:
            yield desc
        for nested in desc.nested_types:
            yield from walk(nested)

    for module in MODULES:
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            yield from walk(desc)


def _scalar(field: Any, n: int) -> Any:
    kind = field.cpp_type
    if kind == FD.CPPTYPE_ENUM:
        values = field.enum_type.values
        return values[n % len(values)].number or values[-1].number
    if kind == FD.CPPTYPE_STRING:
        return b"\x00\xffbytes" if field.type == FD.TYPE_BYTES else f"text {n} é"
    if kind == FD.CPPTYPE_BOOL:
        return True
    if kind in (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE):
        return 0.1 + n
    if kind in (FD.CPPTYPE_UINT32, FD.CPPTYPE_UINT64):
        return 2**31 + n
    return -(2**31) + n


def _fill(message: Message, depth: int, skip_oneof: dict[str, str]) -> None:
    """Every field set (repeated ones twice), to `depth` levels of messages; of each oneof, the
    member `skip_oneof` names for it (else the first)."""
    desc: Any = message.DESCRIPTOR
    if desc.full_name == "google.protobuf.Struct":
        message.update({"a": 1.5, "b": [True, None, "x", {"c": -2.0}]})  # type: ignore[attr-defined]
        return
    if desc.full_name == "google.protobuf.Value":
        message.struct_value.update({"k": [1.0, "v"]})  # type: ignore[attr-defined]
        return
    if desc.full_name == "google.protobuf.Timestamp":
        message.FromNanoseconds(1_796_145_781_032_342_000)  # type: ignore[attr-defined]
        return
    for n, field in enumerate(desc.fields):
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            if field.name != skip_oneof.get(oneof.name, oneof.fields[0].name):
                continue
        target = getattr(message, field.name)
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key, value = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
            for i in range(2):
                k = _scalar(key, i) if key.cpp_type != FD.CPPTYPE_STRING else f"key{i}"
                if value.cpp_type == FD.CPPTYPE_MESSAGE:
                    if depth > 0:
                        _fill(target[k], depth - 1, {})
                else:
                    target[k] = _scalar(value, i)
            continue
        if field.cpp_type == FD.CPPTYPE_MESSAGE:
            if depth == 0:
                continue
            if field.is_repeated:
                for _ in range(2):
                    _fill(target.add(), depth - 1, {})
            else:
                target.SetInParent()
                _fill(target, depth - 1, {})
        elif field.is_repeated:
            target.extend([_scalar(field, n), _scalar(field, n + 1)])
        else:
            setattr(message, field.name, _scalar(field, n))


def _variants(desc: Any) -> Iterator[Message]:
    cls = _class(desc)
    yield cls()
    members = [
        (oneof.name, field.name)
        for oneof in desc.oneofs
        if not oneof.name.startswith("_")
        for field in oneof.fields
    ]
    for choice in [None, *members]:
        message = cls()
        _fill(message, 3, dict([choice]) if choice else {})
        yield message


def _class(desc: Any) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


def _same(message: Message) -> None:
    expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
    got = stored_json.to_dict(message)
    assert got == expected
    assert orjson.dumps(got) == orjson.dumps(expected)  # in the same order: the same text


@pytest.mark.parametrize("desc", list(_messages()), ids=lambda d: d.full_name)
def test_every_message_renders_as_message_to_dict(desc: Any) -> None:
    for message in _variants(desc):
        _same(message)


def test_other_kinds_render_as_message_to_dict() -> None:
    kinds = _kinds()
    for message in _variants(kinds.DESCRIPTOR):
        _same(message)
    for value in (math.nan, math.inf, -math.inf, 1 / 3, 3.4e38, 1e-45):
        _same(kinds(f=value, d=value, many_f=[value], many_d=[value]))
    _same(kinds(u64=2**64 - 1, s64=-(2**63), b=b"", ok=False, s=""))  # defaults: not set


def test_other_well_known_types_are_left_to_message_to_dict() -> None:
    field = type_pb2.Field(name="f", kind=type_pb2.Field.TYPE_FLOAT)
    message = type_pb2.Type(name="t", fields=[field])
    message.options.add(name="o").value.Pack(struct_pb2.Value(string_value="x"))
    _same(message)
    _same(
        descriptor_pb2.FieldDescriptorProto(
            name="x",
            type=descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    )  # proto2, closed enums


def test_special_values_render_as_message_to_dict() -> None:
    config = config_pb2.AgentConfig(temperature=math.nan)
    _same(config)
    config.temperature = -math.inf
    _same(config)
    event = run_pb2.RunEvent(type="turn", seq=2**62)
    event.status = 99  # type: ignore[assignment]  # an enum number unknown here
    event.created_at.FromNanoseconds(1_000_000_000)
    _same(event)
    for seconds in (-62135596800, -1, 0, 951782400, 253402300799):  # 0001, 1969, 2000-02-29…
        for nanos in (0, 1_000_000, 120_000_000, 1_000, 1, 999_999_999):
            event.created_at.seconds, event.created_at.nanos = seconds, nanos
            _same(event)
    rng = random.Random(19)
    for _ in range(500):
        seconds = rng.randrange(-62135596800, 253402300800)
        nanos = rng.choice([0, 1_000_000, 1_000, 1]) * rng.randrange(1000)
        event.created_at.seconds, event.created_at.nanos = seconds, nanos % 1_000_000_000
        _same(event)
    event.created_at.seconds = 253402300800  # past 9999: refused as MessageToDict refuses it
    with pytest.raises(ValueError):
        stored_json.to_dict(event)
    value = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    _same(value)
    _same(struct_pb2.ListValue(values=[value, struct_pb2.Value(bool_value=False)]))
    with pytest.raises(ValueError):  # as MessageToDict refuses it
        stored_json.to_dict(struct_pb2.Value(number_value=math.nan))


def _read_same(value: Any, cls: Any) -> Message:
    """from_dict gives what ParseDict gives (message or error class)."""
    try:
        expected: Any = json_format.ParseDict(value, cls())
    except json_format.ParseError as exc:
        with pytest.raises(type(exc)):
            stored_json.from_dict(value, cls())
        return cls()
    got = stored_json.from_dict(value, cls())
    assert got == expected
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
    return got


@pytest.mark.parametrize("desc", list(_messages()), ids=lambda d: d.full_name)
def test_every_message_reads_back_as_parse_dict_reads_it(desc: Any) -> None:
    for message in _variants(desc):
        value = orjson.loads(orjson.dumps(stored_json.to_dict(message)))
        assert _read_same(value, type(message)) == message


def test_other_kinds_read_back_as_parse_dict_reads_them() -> None:
    kinds = _kinds()
    for message in _variants(kinds.DESCRIPTOR):
        _read_same(orjson.loads(orjson.dumps(stored_json.to_dict(message))), kinds)
    for value in (math.nan, math.inf, -math.inf, 1 / 3):
        written = stored_json.to_dict(kinds(d=value, many_d=[value, 2.0]))
        _read_same(orjson.loads(orjson.dumps(written)), kinds)


def test_what_to_dict_does_not_write_is_read_as_parse_dict_reads_it() -> None:
    """camelCase names, numbers written otherwise, nulls, unknown names and values, two members
    of one oneof: ParseDict's answer (or its error), whatever the plan would have done."""
    event = run_pb2.RunEvent
    for value in (
        {"toolUseId": "t", "type": "tool.call"},
        {"seq": 5, "turn_index": "3", "status": 2},
        {"seq": 5.0, "turn_index": 3.0},
        {"seq": " 5"},
        {"seq": True},
        {"status": "RUN_STATUS_NOPE"},
        {"nope": 1},
        {"type": None, "created_at": "2026-01-01T00:00:00+01:00"},
        {"created_at": "not a time"},
        {"arguments": {"a": None, "b": [None, {"c": 1}], "d": 1e300}},
        {"arguments": None},
        {"usage": {}, "turn": {"content_blocks": [{"text": {}}]}},
        {"turn": {"content_blocks": [None]}},
        {"turn": {"content_blocks": [{"text": {"text": "a"}, "tool_use": {}}]}},
        {"content": [{"text": {"text": "x"}}]},
        [],
        "text",
    ):
        _read_same(value, event)
    config = config_pb2.AgentConfig
    for value in (
        {"temperature": "0.5"},
        {"temperature": "NaN", "max_tokens": 3},
        {"temperature": 1},
        {"temperature": "nan"},
        {"max_tokens": 2**40},
        {"output_format_schema": {"type": "object", "x": [1, True, None, "s"]}},
    ):
        _read_same(value, config)
    filled = run_pb2.RunEvent(type="kept")
    assert stored_json.from_dict({"seq": "3"}, filled) == run_pb2.RunEvent(type="kept", seq=3)


def test_what_to_dict_writes_is_read_without_parse_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("ParseDict was called")

    messages = [m for d in _messages() for m in _variants(d)]
    written = [(type(m), orjson.loads(orjson.dumps(stored_json.to_dict(m)))) for m in messages]
    monkeypatch.setattr(json_format, "ParseDict", refuse)
    for cls, value in written:
        stored_json.from_dict(value, cls())
