"""JSON <-> protobuf, driven by descriptors: the only JSON<->proto code in the repo.

Field names are the proto names. Every field is emitted (but an `(agents.v1.omit_empty)` one while
it is empty); an unset field with presence is `null`.
Enums are lowercase without their type prefix; integers are JSON numbers; Timestamps are RFC 3339
UTC with microseconds; Struct/Value/ListValue are plain JSON. A message with
`(agents.v1.union_discriminator)` is a flat object tagged by that key; one with
`(agents.v1.json_array)` is a bare array. Input is strict: every problem raises DecodeError,
whose detail names the field path. One plan per message descriptor is built lazily and cached;
its encoder is one Python function generated from the descriptor.
"""

from __future__ import annotations

import base64
import binascii
import functools
import keyword
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from google.protobuf import descriptor

from gateway import descriptors as _opts

MAX_DEPTH = 64

FD = descriptor.FieldDescriptor
_INT_RANGES = {
    FD.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FD.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    FD.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    FD.TYPE_UINT32: (0, (1 << 32) - 1),
    FD.TYPE_FIXED32: (0, (1 << 32) - 1),
    FD.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FD.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    FD.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    FD.TYPE_UINT64: (0, (1 << 64) - 1),
    FD.TYPE_FIXED64: (0, (1 << 64) - 1),
}
_FLOAT_MAX = 3.4028234663852886e38
_EPOCH = datetime(1970, 1, 1)
_TS_MIN, _TS_MAX = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31T23:59:59
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z"
)
_INT_TEXT = re.compile(r"[-+]?\d+\Z")

TIMESTAMP = "google.protobuf.Timestamp"
STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"


class DecodeError(ValueError):
    """The request is not what the endpoint accepts; `detail` says where and why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- public entry points ----------------------------------------------------------------------


def to_json(message: Any) -> bytes:
    return orjson.dumps(to_value(message))


def to_json_value(value: Any) -> bytes:
    return orjson.dumps(value)


def to_value(message: Any) -> Any:
    """The JSON value (dicts, lists, scalars) of a message."""
    return plan(message.DESCRIPTOR).encode(message)


def parse_json(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"the body is not valid JSON: {exc}") from None


def from_json(data: bytes | str, message: Any) -> Any:
    """Fill `message` from a JSON document; returns it."""
    return from_value(parse_json(data), message)


def from_value(value: Any, message: Any, path: str = "") -> Any:
    plan(message.DESCRIPTOR).decode(message, value, path, 0)
    return message


def decode_field(message: Any, field_name: str, value: Any) -> None:
    """Set one top-level field from JSON (a `body: "field"` rule)."""
    p = plan(message.DESCRIPTOR)
    p.fields[field_name].decode(message, value, field_name, 0)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    return path or "the request body"


def _wrong(path: str, expected: str, value: Any) -> DecodeError:
    return DecodeError(f"{_where(path)}: expected {expected}, got {json_type(value)}")


def _check_depth(path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(f"{_where(path)}: nested deeper than {MAX_DEPTH} levels")


# --- enums ------------------------------------------------------------------------------------


def _camel_to_upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


_enum_cache: dict[Any, tuple[dict[int, str], dict[str, int]]] = {}


def enum_names(enum: descriptor.EnumDescriptor) -> tuple[dict[int, str], dict[str, int]]:
    """(number -> json name, json name -> number), `_UNSPECIFIED` left out of the second."""
    cached = _enum_cache.get(enum)
    if cached is None:
        prefix = _camel_to_upper_snake(enum.name) + "_"
        for v in enum.values:
            if v.name.endswith("_UNSPECIFIED"):
                prefix = v.name[: -len("UNSPECIFIED")]
                break
        out: dict[int, str] = {}
        back: dict[str, int] = {}
        for v in enum.values:
            short = v.name.removeprefix(prefix)
            short = short.lower()
            out.setdefault(v.number, short)
            if not v.name.endswith("_UNSPECIFIED") or v.number != 0:
                back[short] = v.number
        cached = _enum_cache[enum] = (out, back)
    return cached


# --- scalars ----------------------------------------------------------------------------------

Converter = Callable[[Any, str], Any]


def _int_converter(field_type: int) -> Converter:
    lo, hi = _INT_RANGES[field_type]

    def convert(value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(path, "integer", value)
        if isinstance(value, float):
            if not value.is_integer():
                raise DecodeError(f"{_where(path)}: expected integer, got {value!r}")
            value = int(value)
        if not lo <= value <= hi:
            raise DecodeError(f"{_where(path)}: {value} is out of range [{lo}, {hi}]")
        return value

    return convert


def _float_converter(field_type: int) -> Converter:
    def convert(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(path, "number", value)
        number = float(value)
        if field_type == FD.TYPE_FLOAT and math.isfinite(number) and abs(number) > _FLOAT_MAX:
            raise DecodeError(f"{_where(path)}: {number} is out of range for a float")
        return number

    return convert


def _bool_convert(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, "boolean", value)
    return value


def _str_convert(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, "string", value)
    return value


def _bytes_convert(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise _wrong(path, "base64 string", value)
    try:
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{_where(path)}: expected base64 string") from None


def _enum_converter(enum: descriptor.EnumDescriptor) -> Converter:
    _, back = enum_names(enum)
    accepted = ", ".join(repr(k) for k in back)

    def convert(value: Any, path: str) -> int:
        if not isinstance(value, str):
            raise _wrong(path, f"one of {accepted}", value)
        number = back.get(value)
        if number is None:
            raise DecodeError(f"{_where(path)}: {value!r} is not one of {accepted}")
        return number

    return convert


def _scalar_converter(field: descriptor.FieldDescriptor) -> Converter:
    t = field.type
    if t in _INT_RANGES:
        return _int_converter(t)
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return _float_converter(t)
    if t == FD.TYPE_BOOL:
        return _bool_convert
    if t == FD.TYPE_STRING:
        return _str_convert
    if t == FD.TYPE_BYTES:
        return _bytes_convert
    if t == FD.TYPE_ENUM:
        return _enum_converter(_opts.enum_type(field))
    raise TypeError(f"{field.full_name}: unsupported field type {t}")


@functools.cache
def text_converter(field: descriptor.FieldDescriptor) -> Converter:
    """Parses a query or path parameter's text per the field's type (built once per field)."""
    t = field.type
    if t in _INT_RANGES:
        to_int: Callable[[int, str], int] = _int_converter(t)

        def convert_int(text: str, where: str) -> int:
            if not _INT_TEXT.match(text):
                raise DecodeError(f"{where}: expected integer, got {text!r}")
            return to_int(int(text), where)

        return convert_int
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        to_float: Callable[[float, str], float] = _float_converter(t)

        def convert_float(text: str, where: str) -> float:
            try:
                number = float(text)
            except ValueError:
                raise DecodeError(f"{where}: expected number, got {text!r}") from None
            if not math.isfinite(number):
                raise DecodeError(f"{where}: expected a finite number, got {text!r}")
            return to_float(number, where)

        return convert_float
    if t == FD.TYPE_BOOL:

        def convert_bool(text: str, where: str) -> bool:
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
            raise DecodeError(f"{where}: expected true or false, got {text!r}")

        return convert_bool
    if t == FD.TYPE_MESSAGE and _opts.message_type(field).full_name == TIMESTAMP:
        return _parse_timestamp
    if t == FD.TYPE_MESSAGE:
        raise TypeError(f"{field.full_name} is not a scalar")
    return _scalar_converter(field)


# --- timestamps -------------------------------------------------------------------------------


def format_timestamp(seconds: int, nanos: int) -> str:
    return f"{_second(seconds)}.{nanos // 1000:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a second: the timestamps of one reply mostly share a few."""
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


def _encode_timestamp(m: Any) -> str:
    return format_timestamp(m.seconds, m.nanos)


def _parse_timestamp(value: Any, path: str) -> tuple[int, int]:
    if not isinstance(value, str):
        raise _wrong(path, "RFC 3339 timestamp string", value)
    m = _RFC3339.match(value)
    if m is None:
        raise DecodeError(f"{_where(path)}: expected an RFC 3339 timestamp, got {value!r}")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        base = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        raise DecodeError(f"{_where(path)}: {value!r} is not a valid date and time") from None
    seconds = int((base - _EPOCH).total_seconds())
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    if not _TS_MIN <= seconds <= _TS_MAX:
        raise DecodeError(f"{_where(path)}: {value!r} is out of range")
    nanos = int((frac or "").ljust(9, "0")) if frac else 0
    return seconds, nanos


# --- plans ------------------------------------------------------------------------------------

_plans: dict[Any, _Plan] = {}


def plan(desc: descriptor.Descriptor) -> _Plan:
    p = _plans.get(desc)
    if p is None:
        p = _new_plan(desc)
        _plans[desc] = p  # registered before fields are built: messages may be recursive
        p.build()
    return p


def _new_plan(desc: descriptor.Descriptor) -> _Plan:
    name = desc.full_name
    if name == TIMESTAMP:
        return _TimestampPlan(desc)
    if name == STRUCT:
        return _StructPlan(desc)
    if name == VALUE:
        return _ValuePlan(desc)
    if name == LIST_VALUE:
        return _ListValuePlan(desc)
    if _opts.union_discriminator(desc):
        return _UnionPlan(desc)
    if _opts.json_array(desc):
        return _ArrayPlan(desc)
    return _Plan(desc)


def union_oneof(desc: descriptor.Descriptor) -> descriptor.OneofDescriptor:
    """The union's oneof (the one that is not a proto3 `optional`'s synthetic oneof)."""
    for oneof in desc.oneofs:
        if not (len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name):
            return oneof
    raise TypeError(f"{desc.full_name} has union_discriminator but no oneof")


def array_field(desc: descriptor.Descriptor) -> descriptor.FieldDescriptor:
    repeated = [f for f in desc.fields if f.is_repeated]
    if len(desc.fields) != 1 or len(repeated) != 1:
        raise TypeError(f"{desc.full_name} has json_array but not exactly one repeated field")
    return repeated[0]


def is_map(field: descriptor.FieldDescriptor) -> bool:
    return (
        field.type == FD.TYPE_MESSAGE
        and field.is_repeated
        and _opts.message_type(field).GetOptions().map_entry
    )


class _Field:
    """How one field is encoded and decoded."""

    __slots__ = ("_encode", "decode", "field", "name")

    def __init__(self, field: descriptor.FieldDescriptor) -> None:
        self.name = field.name
        self.field = field
        self._encode: Callable[[Any], Any] | None = None
        self.decode: Callable[[Any, Any, str, int], None] = _field_decoder(field)

    @property
    def encode(self) -> Callable[[Any], Any]:
        """Built when first asked for: messages are encoded whole (`_compile_encoder`)."""
        if self._encode is None:
            self._encode = _field_encoder(self.field)
        return self._encode


def _field_encoder(field: descriptor.FieldDescriptor) -> Callable[[Any], Any]:
    """One field's encoder on its own (a `response_body` rule renders just that field)."""
    name = field.name
    expression, env = _field_expression(field, "m")
    code = f"def encode_{name}(m):\n    return {expression}\n"
    return cast(Callable[[Any], Any], _compile(code, env, f"encode_{name}", field.full_name))


def _field_expression(field: descriptor.FieldDescriptor, m: str) -> tuple[str, dict[str, Any]]:
    """A Python expression for the field's JSON value in message `m`, and the names it uses."""
    name = field.name
    tag = f"_field_{_slug(name)}"  # the field's plan or enum names
    plain = name.isidentifier() and not keyword.iskeyword(name)
    value = f"{m}.{name}" if plain else f"getattr({m}, {name!r})"
    env: dict[str, Any] = {}
    if is_map(field):
        value_field = _opts.message_type(field).fields_by_name["value"]
        item, item_env = _item_expression(value_field, "v", tag)
        env.update(item_env)
        return f"{{str(k): {item} for k, v in {value}.items()}}", env
    item, env = _item_expression(field, "x" if field.is_repeated else value, tag)
    if field.is_repeated:
        return (f"list({value})" if item == "x" else f"[{item} for x in {value}]"), env
    if field.has_presence:
        return f"({item} if {m}.HasField({name!r}) else None)", env
    return item, env


def _item_expression(
    field: descriptor.FieldDescriptor, value: str, tag: str
) -> tuple[str, dict[str, Any]]:
    """The JSON value of one (non-repeated) value of `field`'s type held in `value`."""
    if field.type == FD.TYPE_MESSAGE:
        sub = plan(_opts.message_type(field))
        special = _SPECIAL_ENCODERS.get(type(sub))
        if special is not None:
            return f"_{special.__name__}({value})", {f"_{special.__name__}": special}
        if type(sub) is _Plan:  # its compiled function, looked up when called (recursion)
            return f"{tag}._encode({value})", {tag: sub}
        return f"{tag}.encode({value})", {tag: sub}
    if field.type == FD.TYPE_ENUM:
        names = enum_names(_opts.enum_type(field))[0]
        return f"{tag}.get({value}, {value})", {tag: names}
    if field.type == FD.TYPE_BYTES:
        return f"__b64({value}).decode()", {"__b64": base64.b64encode}
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return f"__finite({value})", {"__finite": _finite}
    return value, {}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _slug(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _compile(code: str, env: dict[str, Any], function: str, origin: str) -> Any:
    namespace = dict(env)
    exec(compile(code, f"<codec: {origin}>", "exec"), namespace)  # noqa: S102 - from descriptors
    return namespace[function]


def _field_decoder(field: descriptor.FieldDescriptor) -> Callable[[Any, Any, str, int], None]:
    name = field.name
    if is_map(field):
        return _map_decoder(field)
    if field.type == FD.TYPE_MESSAGE:
        sub = plan(_opts.message_type(field))
        if field.is_repeated:

            def decode_messages(m: Any, value: Any, path: str, depth: int) -> None:
                if value is None:
                    return
                if not isinstance(value, list):
                    raise _wrong(path, "array", value)
                target = getattr(m, name)
                for i, item in enumerate(value):
                    where = f"{path}[{i}]"
                    if item is None:
                        raise DecodeError(f"{where}: must not be null")
                    sub.decode(target.add(), item, where, depth + 1)

            return decode_messages

        def decode_message(m: Any, value: Any, path: str, depth: int) -> None:
            if value is None:
                return  # null = unset
            child = getattr(m, name)
            child.SetInParent()
            sub.decode(child, value, path, depth + 1)

        return decode_message
    convert = _scalar_converter(field)
    if field.is_repeated:

        def decode_scalars(m: Any, value: Any, path: str, depth: int) -> None:
            if value is None:
                return
            if not isinstance(value, list):
                raise _wrong(path, "array", value)
            getattr(m, name).extend([convert(x, f"{path}[{i}]") for i, x in enumerate(value)])

        return decode_scalars

    def decode_scalar(m: Any, value: Any, path: str, depth: int) -> None:
        if value is None:
            return
        setattr(m, name, convert(value, path))

    return decode_scalar


def _map_decoder(field: descriptor.FieldDescriptor) -> Callable[[Any, Any, str, int], None]:
    name = field.name
    key_field = _opts.message_type(field).fields_by_name["key"]
    value_field = _opts.message_type(field).fields_by_name["value"]
    key_convert = text_converter(key_field)
    sub = plan(_opts.message_type(value_field)) if value_field.type == FD.TYPE_MESSAGE else None
    value_convert = None if sub else _scalar_converter(value_field)

    def decode_map(m: Any, value: Any, path: str, depth: int) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise _wrong(path, "object", value)
        target = getattr(m, name)
        for k, v in value.items():
            where = f"{path}[{k!r}]"
            key = key_convert(k, where)
            if sub is not None:
                if v is None:
                    raise DecodeError(f"{where}: must not be null")
                sub.decode(target[key], v, where, depth + 1)
            else:
                assert value_convert is not None
                target[key] = value_convert(v, where)

    return decode_map


def _compile_encoder(desc: descriptor.Descriptor) -> Callable[[Any], Any]:
    """A message's encoder as one generated function: a dict display reading each field
    directly. A call per field (and a dict comprehension over them) cost more than the fields."""
    env: dict[str, Any] = {}
    lines = []
    for field in desc.fields:
        expression, used = _field_expression(field, "m")
        env.update(used)
        lines.append(f"        {field.name!r}: {expression},")
    omitted = [
        f"    if not out[{f.name!r}]:\n        del out[{f.name!r}]\n"
        for f in desc.fields
        if _opts.omit_empty(f)
    ]
    body = "\n".join(lines)
    code = f"def encode(m):\n    out = {{\n{body}\n    }}\n{''.join(omitted)}    return out\n"
    return cast(Callable[[Any], Any], _compile(code, env, "encode", desc.full_name))


class _Plan:
    """An ordinary message: a JSON object with one key per field."""

    def __init__(self, desc: descriptor.Descriptor) -> None:
        self.desc = desc
        self.fields: dict[str, _Field] = {}
        self.retired: dict[str, Any] = {}

    def build(self) -> None:
        self.fields = {f.name: _Field(f) for f in self.desc.fields}
        self.retired = {r.name: r for r in _opts.retired_fields(self.desc)}
        self._encode: Callable[[Any], Any] = _compile_encoder(self.desc)

    def encode(self, m: Any) -> Any:
        return self._encode(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _check_depth(path, depth)
        if not isinstance(value, dict):
            raise _wrong(path, "object", value)
        fields = self.fields
        for key, item in value.items():
            f = fields.get(key)
            if f is None:
                if key == skip:
                    continue
                raise self._unknown(key, path)
            f.decode(m, item, _join(path, key), depth)

    def _unknown(self, key: str, path: str) -> DecodeError:
        where = _join(path, key)
        retired = self.retired.get(key)
        if retired is not None:
            return DecodeError(
                f"{where} is not accepted: use {retired.replacement} ({retired.reason})"
            )
        return DecodeError(f"unknown field {where!r}")


class _UnionPlan(_Plan):
    """`{"<discriminator>": "<member field>", ...member's fields}`; unset renders null."""

    def build(self) -> None:
        super().build()
        self.key = _opts.union_discriminator(self.desc)
        oneof = union_oneof(self.desc)
        self.oneof = oneof.name
        self.members = {
            f.name: plan(_opts.message_type(f)) for f in oneof.fields if f.type == FD.TYPE_MESSAGE
        }
        self.accepted = ", ".join(repr(n) for n in self.members)
        for name, member in self.members.items():
            if self.key in member.desc.fields_by_name:
                raise TypeError(
                    f"{self.desc.full_name}.{name} has a field named {self.key!r}, "
                    "the union's discriminator"
                )

    def encode(self, m: Any) -> Any:
        which = m.WhichOneof(self.oneof)
        if which is None:
            return None
        body = self.members[which].encode(getattr(m, which))
        if isinstance(body, dict):
            return {self.key: which, **body}
        return {self.key: which, which: body}

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _check_depth(path, depth)
        if not isinstance(value, dict):
            raise _wrong(path, "object", value)
        tag_path = _join(path, self.key)
        if self.key not in value:
            raise DecodeError(f"{tag_path} is required: one of {self.accepted}")
        tag = value[self.key]
        member = self.members.get(tag) if isinstance(tag, str) else None
        if member is None:
            shown = repr(tag) if isinstance(tag, str) else json_type(tag)
            raise DecodeError(f"{tag_path}: {shown} is not one of {self.accepted}")
        child = getattr(m, tag)
        child.SetInParent()
        member.decode(child, value, path, depth, skip=self.key)


class _ArrayPlan(_Plan):
    """A bare JSON array of the message's single repeated field."""

    def build(self) -> None:
        super().build()
        self.only = self.fields[array_field(self.desc).name]

    def encode(self, m: Any) -> Any:
        return self.only.encode(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _check_depth(path, depth)
        if not isinstance(value, list):
            raise _wrong(path, "array", value)
        self.only.decode(m, value, path, depth)


class _TimestampPlan(_Plan):
    def encode(self, m: Any) -> Any:
        return _encode_timestamp(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        m.seconds, m.nanos = _parse_timestamp(value, path)


def _number(x: float) -> Any:
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _encode_value(m: Any) -> Any:
    kind = m.WhichOneof("kind")
    if kind == "string_value":
        return m.string_value
    if kind == "struct_value":
        return _encode_struct(m.struct_value)
    if kind == "bool_value":
        return m.bool_value
    if kind == "number_value":
        return _number(m.number_value)
    if kind == "list_value":
        return _encode_list(m.list_value)
    return None  # null_value, or unset


def _encode_struct(m: Any) -> dict[str, Any]:
    fields = m.fields  # keys and lookups: the map's items() is a Python-level generator
    return {k: _encode_value(fields[k]) for k in fields}


def _encode_list(m: Any) -> list[Any]:
    return [_encode_value(v) for v in m.values]


class _ValuePlan(_Plan):
    def encode(self, m: Any) -> Any:
        return _encode_value(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _decode_value(m, value, path, depth)


def _decode_value(m: Any, value: Any, path: str, depth: int) -> None:
    _check_depth(path, depth)
    if value is None:
        m.null_value = 0
    elif isinstance(value, bool):
        m.bool_value = value
    elif isinstance(value, int | float):
        m.number_value = float(value)
    elif isinstance(value, str):
        m.string_value = value
    elif isinstance(value, list):
        _decode_list(m.list_value, value, path, depth + 1)
    else:
        _decode_struct(m.struct_value, value, path, depth + 1)


def _decode_struct(m: Any, value: Any, path: str, depth: int) -> None:
    if not isinstance(value, dict):
        raise _wrong(path, "object", value)
    m.SetInParent()
    fields = m.fields
    for k, v in value.items():
        _decode_value(fields[k], v, _join(path, k), depth)


def _decode_list(m: Any, value: Any, path: str, depth: int) -> None:
    if not isinstance(value, list):
        raise _wrong(path, "array", value)
    m.SetInParent()
    values = m.values
    for i, v in enumerate(value):
        _decode_value(values.add(), v, f"{path}[{i}]", depth)


class _StructPlan(_Plan):
    def encode(self, m: Any) -> Any:
        return _encode_struct(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _check_depth(path, depth)
        _decode_struct(m, value, path, depth)


class _ListValuePlan(_Plan):
    def encode(self, m: Any) -> Any:
        return _encode_list(m)

    def decode(self, m: Any, value: Any, path: str, depth: int, skip: str | None = None) -> None:
        _check_depth(path, depth)
        _decode_list(m, value, path, depth)


# The well-known types' encoders, called directly from a compiled encoder.
_SPECIAL_ENCODERS: dict[type[_Plan], Callable[[Any], Any]] = {
    _TimestampPlan: _encode_timestamp,
    _StructPlan: _encode_struct,
    _ValuePlan: _encode_value,
    _ListValuePlan: _encode_list,
}


# --- path and query parameters ----------------------------------------------------------------

_param_cache: dict[tuple[Any, str], tuple[descriptor.FieldDescriptor, ...] | None] = {}


def resolve_param(
    desc: descriptor.Descriptor, field_path: str
) -> tuple[descriptor.FieldDescriptor, ...] | None:
    """The fields along `a.b.c` when it ends at a scalar, enum or Timestamp; else None."""
    key = (desc, field_path)
    if key in _param_cache:
        return _param_cache[key]
    chain: list[descriptor.FieldDescriptor] = []
    current: descriptor.Descriptor | None = desc
    result: tuple[descriptor.FieldDescriptor, ...] | None = None
    parts = field_path.split(".")
    for i, part in enumerate(parts):
        field = current.fields_by_name.get(part) if current is not None else None
        if field is None or is_map(field):
            break
        chain.append(field)
        last = i == len(parts) - 1
        is_msg = field.type == FD.TYPE_MESSAGE
        if last:
            if not is_msg or _opts.message_type(field).full_name == TIMESTAMP:
                result = tuple(chain)
            break
        if not is_msg or field.is_repeated or _is_special(_opts.message_type(field)):
            break
        current = field.message_type
    _param_cache[key] = result
    return result


def _is_special(desc: descriptor.Descriptor) -> bool:
    return (
        desc.full_name in (TIMESTAMP, STRUCT, VALUE, LIST_VALUE)
        or bool(_opts.union_discriminator(desc))
        or _opts.json_array(desc)
    )


def set_param(
    message: Any, chain: tuple[descriptor.FieldDescriptor, ...], texts: list[str], where: str
) -> None:
    """Set the field at the end of `chain` from one or more text values."""
    target = message
    for field in chain[:-1]:
        target = getattr(target, field.name)
    field = chain[-1]
    convert = text_converter(field)
    if field.is_repeated:
        getattr(target, field.name).extend([convert(t, where) for t in texts])
        return
    if len(texts) > 1:
        raise DecodeError(f"{where}: given {len(texts)} times, takes one value")
    value = convert(texts[0], where)
    if field.type == FD.TYPE_MESSAGE:  # Timestamp
        ts = getattr(target, field.name)
        ts.seconds, ts.nanos = value
    else:
        setattr(target, field.name, value)


def fill_query(message: Any, query: Iterable[tuple[str, str]], forbidden: frozenset[str]) -> None:
    """grpc-gateway's PopulateQueryParameters: unbound fields from `?a.b=1&c=x`, strictly."""
    grouped: dict[str, list[str]] = {}
    for key, text in query:
        grouped.setdefault(key, []).append(text)
    desc = message.DESCRIPTOR
    for key, texts in grouped.items():
        where = f"query parameter {key!r}"
        chain = None if _bound(key, forbidden) else resolve_param(desc, key)
        if chain is None:
            raise DecodeError(f"unknown query parameter {key!r}")
        set_param(message, chain, texts, where)


def _bound(key: str, forbidden: frozenset[str]) -> bool:
    if "*" in forbidden:
        return True
    return any(key == f or key.startswith(f + ".") or f.startswith(key + ".") for f in forbidden)
