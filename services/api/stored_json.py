"""The store's JSON columns, rendered: exactly `json_format.MessageToDict(message,
preserving_proto_field_name=True)`, without its per-field dispatch in Python.

MessageToDict decides for every field of every message what kind it is, which costs more than the
rest of an event's write. Here each message type gets one plan, built on first use from its
descriptor: the fields that are set (`ListFields`, in C) each go through the converter their kind
needs. Timestamp, Struct, Value and ListValue are rendered as MessageToDict renders them; any
other well-known type, extensions, closed enums or enum values with options are left to
MessageToDict itself, so the output never differs (tests/unit/api/test_stored_json.py compares
the two over every message of the API).
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import descriptor, json_format, timestamp_pb2
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

FD = descriptor.FieldDescriptor
Convert = Callable[[Any], Any]

_INT64 = frozenset({FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64})
_FLOATS = frozenset({FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE})


def to_dict(message: Message) -> dict[str, Any]:
    """MessageToDict(message, preserving_proto_field_name=True)."""
    result: dict[str, Any] = _encoder(message.DESCRIPTOR)(message)
    return result


def _encode(desc: Any, message: Message) -> Any:
    return _encoder(desc)(message)


def _slow(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


_ENCODERS: dict[Any, Convert] = {}  # by message descriptor


def _encoder(desc: Any) -> Convert:
    encoder = _ENCODERS.get(desc)
    if encoder is None:
        encoder = _ENCODERS[desc] = _SPECIAL.get(desc.full_name) or _plan(desc)
    return encoder


def _plan(desc: Any) -> Convert:
    if desc.full_name.startswith("google.protobuf."):  # Any, Duration, wrappers…: as they are
        return _slow
    plan: dict[int, tuple[str, Convert]] = {}
    for field in desc.fields:
        convert = _field(field)
        if convert is None:
            return _slow
        plan[field.number] = (field.name, convert)

    def encode(message: Message) -> Any:
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            entry = None if field.is_extension else plan.get(field.number)
            if entry is None:
                return _slow(message)
            name, convert = entry
            out[name] = convert(value)
        return out

    return encode


def _field(field: Any) -> Convert | None:
    """How a set field's value renders, or None: leave the message to MessageToDict."""
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value = _single(message_type.fields_by_name["value"])
        key = message_type.fields_by_name["key"]
        if value is None:
            return None
        if key.cpp_type == FD.CPPTYPE_BOOL:
            return lambda m: {("true" if k else "false"): value(m[k]) for k in m}
        return lambda m: {str(k): value(m[k]) for k in m}
    single = _single(field)
    if single is None or not field.is_repeated:
        return single
    return lambda values: [single(v) for v in values]


def _single(field: Any) -> Convert | None:
    kind = field.cpp_type
    if kind == FD.CPPTYPE_MESSAGE:  # looked up when used: a message type may contain itself
        return functools.partial(_encode, field.message_type)
    if kind == FD.CPPTYPE_ENUM:
        enum = field.enum_type
        if enum.full_name == "google.protobuf.NullValue":
            return lambda _: None
        if enum.is_closed or any(v.has_options for v in enum.values):
            return None
        names = {v.number: v.name for v in enum.values}
        return lambda n: names.get(n, n)
    if kind == FD.CPPTYPE_STRING:
        if field.type == FD.TYPE_BYTES:
            return lambda b: base64.b64encode(b).decode("utf-8")
        return _same
    if kind in _INT64:
        return str
    if kind in _FLOATS:
        return _float32 if kind == FD.CPPTYPE_FLOAT else _double
    return _same  # bool and 32-bit integers


def _same(value: Any) -> Any:
    return value


def _double(value: float) -> Any:
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if math.isnan(value):
        return "NaN"
    return value


def _float32(value: float) -> Any:
    special = _double(value)
    return special if isinstance(special, str) else type_checkers.ToShortestFloat(value)


def _timestamp(message: Any) -> Any:
    return _rfc3339(message.seconds, message.nanos)


@functools.lru_cache(maxsize=256)
def _rfc3339(seconds: int, nanos: int) -> str:
    """Timestamp.ToJsonString (Z, and 0, 3, 6 or 9 fractional digits), once per instant: a
    transaction's events share theirs."""
    if not (_SECONDS_MIN <= seconds <= _SECONDS_MAX and 0 <= nanos < 1_000_000_000):
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).ToJsonString()  # raises
    text = (_EPOCH + timedelta(seconds=seconds)).isoformat()
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


_EPOCH = datetime(1970, 1, 1)
_SECONDS_MIN, _SECONDS_MAX = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31T23:59:59


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = message.number_value
        if math.isinf(number) or math.isnan(number):
            return _slow(message)  # MessageToDict's own error
        return number
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return [_value(v) for v in message.list_value.values]
    return getattr(message, kind)  # string_value, bool_value


def _struct(message: Any) -> Any:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


def _list_value(message: Any) -> Any:
    return [_value(v) for v in message.values]


_SPECIAL: dict[str, Convert] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Struct": _struct,
    "google.protobuf.Value": _value,
    "google.protobuf.ListValue": _list_value,
}
