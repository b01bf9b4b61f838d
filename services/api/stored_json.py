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
from typing import Any, TypeVar

from google.protobuf import descriptor, json_format, timestamp_pb2
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

FD = descriptor.FieldDescriptor
M = TypeVar("M", bound=Message)
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
    plan: dict[Any, tuple[str, Convert]] = {}  # by field descriptor (never an extension's)
    for field in desc.fields:
        convert = _field(field)
        if convert is None:
            return _slow
        plan[field] = (field.name, convert)

    def encode(message: Message) -> Any:
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            entry = plan.get(field)
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


# --- reading -----------------------------------------------------------------------------------


class _Unusual(Exception):
    """Input the plan does not take as it comes: ParseDict reads it (or refuses it) instead."""


def from_dict(value: Any, message: M) -> M:
    """json_format.ParseDict(value, message): the same message, or the same error. JSON as
    `to_dict` renders it is read by the plan; anything else (camelCase names, numbers written
    differently, unknown fields…) by ParseDict itself."""
    if message.ListFields():  # a merge into a message with content: ParseDict's own semantics
        return json_format.ParseDict(value, message)
    try:
        _decoder(message.DESCRIPTOR)(value, message)
    except (_Unusual, TypeError, ValueError, KeyError, AttributeError, OverflowError):
        message.Clear()
        json_format.ParseDict(value, message)
    return message


Decode = Callable[[Any, Any], None]  # (JSON value, message) -> fills the message
_DECODERS: dict[Any, Decode] = {}  # by message descriptor


def _decoder(desc: Any) -> Decode:
    decoder = _DECODERS.get(desc)
    if decoder is None:
        decoder = _DECODERS[desc] = _READERS.get(desc.full_name) or _reading_plan(desc)
    return decoder


def _read_into(desc: Any, value: Any, message: Any) -> None:
    _decoder(desc)(value, message)


def _unusual(value: Any, message: Any) -> None:
    raise _Unusual


def _reading_plan(desc: Any) -> Decode:
    if desc.full_name.startswith("google.protobuf."):
        return _unusual
    plan: dict[str, tuple[str, Callable[[Any, str, Any], None], str | None]] = {}
    for field in desc.fields:
        setter = _field_setter(field)
        if setter is None:
            return _unusual
        oneof = field.containing_oneof
        plan[field.name] = (field.name, setter, oneof.name if oneof is not None else None)

    def decode(value: Any, message: Any) -> None:
        if type(value) is not dict:
            raise _Unusual
        oneofs: set[str] = set()
        for key, item in value.items():
            entry = plan.get(key)
            if entry is None or item is None:
                raise _Unusual
            name, setter, oneof = entry
            if oneof is not None:
                if oneof in oneofs:
                    raise _Unusual
                oneofs.add(oneof)
            setter(message, name, item)

    return decode


def _field_setter(field: Any) -> Callable[[Any, str, Any], None] | None:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        key_reader = _scalar_reader(message_type.fields_by_name["key"], key=True)
        value_field = message_type.fields_by_name["value"]
        if key_reader is None:
            return None
        key: Convert = key_reader
        if value_field.cpp_type == FD.CPPTYPE_MESSAGE:
            sub = value_field.message_type

            def set_message_map(message: Any, name: str, items: Any) -> None:
                target = getattr(message, name)
                for k, item in _items(items):
                    _read_into(sub, item, target[key(k)])

            return set_message_map
        value_reader = _scalar_reader(value_field)
        if value_reader is None:
            return None
        read_value: Convert = value_reader

        def set_map(message: Any, name: str, items: Any) -> None:
            target = getattr(message, name)
            for k, item in _items(items):
                target[key(k)] = read_value(item)

        return set_map
    if field.cpp_type == FD.CPPTYPE_MESSAGE:
        sub = message_type
        if field.is_repeated:

            def add_messages(message: Any, name: str, items: Any) -> None:
                target = getattr(message, name)
                for item in _list(items):
                    if item is None:
                        raise _Unusual
                    _read_into(sub, item, target.add())

            return add_messages

        def set_message(message: Any, name: str, item: Any) -> None:
            target = getattr(message, name)
            target.SetInParent()
            _read_into(sub, item, target)

        return set_message
    scalar = _scalar_reader(field)
    if scalar is None:
        return None
    if field.is_repeated:

        def extend(message: Any, name: str, items: Any) -> None:
            getattr(message, name).extend([scalar(item) for item in _list(items)])

        return extend

    def set_scalar(message: Any, name: str, item: Any) -> None:
        setattr(message, name, scalar(item))

    return set_scalar


def _items(value: Any) -> Any:
    if type(value) is not dict:
        raise _Unusual
    return value.items()


def _list(value: Any) -> Any:
    if type(value) is not list:
        raise _Unusual
    return value


def _scalar_reader(field: Any, key: bool = False) -> Convert | None:
    """JSON scalar -> field value, as `to_dict` writes it; None: not a kind the plan reads."""
    kind = field.cpp_type
    if kind == FD.CPPTYPE_STRING:
        return None if field.type == FD.TYPE_BYTES else _text
    if kind == FD.CPPTYPE_BOOL:
        return _bool_key if key else _bool
    if kind in _INT64 or kind in (FD.CPPTYPE_INT32, FD.CPPTYPE_UINT32):
        return _integer_text if key else _integer
    if kind == FD.CPPTYPE_DOUBLE:
        return _number
    if kind == FD.CPPTYPE_ENUM:
        enum = field.enum_type
        if enum.is_closed or enum.full_name == "google.protobuf.NullValue":
            return None
        if any(v.has_options for v in enum.values):
            return None
        numbers = {v.name: v.number for v in enum.values}

        def enum_value(value: Any) -> int:
            if type(value) is not str:
                raise _Unusual
            number: int = numbers[value]  # KeyError: unknown, for ParseDict to tell
            return number

        return enum_value
    return None  # float (32-bit), bytes


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Unusual
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Unusual
    return value


def _bool_key(value: Any) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise _Unusual


def _integer(value: Any) -> int:
    if type(value) is int:
        return value
    return _integer_text(value)


def _integer_text(value: Any) -> int:
    if type(value) is not str or not value.lstrip("-").isdigit():
        raise _Unusual
    return int(value)


def _number(value: Any) -> float:
    kind = type(value)
    if kind is int:
        value = float(value)
    elif kind is not float:
        if value not in _SPECIAL_NUMBERS:
            raise _Unusual
        return _SPECIAL_NUMBERS[value]
    number: float = value
    if math.isnan(number) or math.isinf(number):
        raise _Unusual
    return number


_SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _read_timestamp(value: Any, message: Any) -> None:
    if type(value) is not str:
        raise _Unusual
    message.seconds, message.nanos = _parse_rfc3339(value)


@functools.lru_cache(maxsize=256)
def _parse_rfc3339(text: str) -> tuple[int, int]:
    """Timestamp.FromJsonString's value, once per text (a transaction's events share theirs)."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return stamp.seconds, stamp.nanos


def _read_value(value: Any, message: Any) -> None:
    if value is None:
        message.null_value = 0
    elif type(value) is bool:
        message.bool_value = value
    elif type(value) is str:
        message.string_value = value
    elif type(value) is int or type(value) is float:
        message.number_value = value
    elif type(value) is dict:
        message.struct_value.SetInParent()
        _read_struct(value, message.struct_value)
    elif type(value) is list:
        message.list_value.SetInParent()
        _read_list_value(value, message.list_value)
    else:
        raise _Unusual


def _read_struct(value: Any, message: Any) -> None:
    fields = message.fields
    for key, item in _items(value):
        _read_value(item, fields[key])


def _read_list_value(value: Any, message: Any) -> None:
    values = message.values
    for item in _list(value):
        _read_value(item, values.add())


_READERS: dict[str, Decode] = {
    "google.protobuf.Timestamp": _read_timestamp,
    "google.protobuf.Struct": _read_struct,
    "google.protobuf.Value": _read_value,
    "google.protobuf.ListValue": _read_list_value,
}
