"""The public service's descriptors, fetched through gRPC server reflection into a DescriptorPool.

Routes come from here, never from importing the service's generated modules. Custom options on
descriptors of a non-default pool are re-parsed against the default pool, where importing
`google.api.annotations_pb2` and `agents.v1.http_options_pb2` registered the extensions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

import grpc
from agents.v1 import http_options_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf.internal.containers import (
    RepeatedCompositeFieldContainer,
    RepeatedScalarFieldContainer,
)
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

if TYPE_CHECKING:
    from google.protobuf.internal.extension_dict import _ExtensionFieldDescriptor as _Extension

PUBLIC_SERVICE = "agents.v1.ConversationService"

_OptionsT = TypeVar("_OptionsT", bound=message.Message)
_options_cache: dict[descriptor.DescriptorBase, message.Message] = {}

# protoc's .pyi types each extension a bare FieldDescriptor: these say what it extends and holds.
_Method = descriptor_pb2.MethodOptions
_Message = descriptor_pb2.MessageOptions
_Field = descriptor_pb2.FieldOptions
_SUCCESS_STATUS = cast("_Extension[_Method, int]", http_options_pb2.success_status)
_RESPONSE_HEADERS = cast(
    "_Extension[_Method, RepeatedScalarFieldContainer[str]]", http_options_pb2.response_headers
)
_MAX_BODY_BYTES = cast("_Extension[_Method, int]", http_options_pb2.max_body_bytes)
_OMIT_EMPTY = cast("_Extension[_Field, bool]", http_options_pb2.omit_empty)
_UNION_DISCRIMINATOR = cast("_Extension[_Message, str]", http_options_pb2.union_discriminator)
_JSON_ARRAY = cast("_Extension[_Message, bool]", http_options_pb2.json_array)
_RETIRED_FIELDS = cast(
    "_Extension[_Message, RepeatedCompositeFieldContainer[http_options_pb2.RetiredField]]",
    http_options_pb2.retired_fields,
)
_RULES = cast("_Extension[_Field, http_options_pb2.FieldRules]", http_options_pb2.rules)
_EVENT_TYPES = cast(
    "_Extension[_Message, RepeatedCompositeFieldContainer[http_options_pb2.StreamEventType]]",
    http_options_pb2.event_types,
)
_EXAMPLES = cast(
    "_Extension[_Method, RepeatedCompositeFieldContainer[http_options_pb2.HttpExample]]",
    http_options_pb2.examples,
)


def method_options(method: descriptor.MethodDescriptor) -> descriptor_pb2.MethodOptions:
    return _reparsed(method, descriptor_pb2.MethodOptions)


def message_options(message: descriptor.Descriptor) -> descriptor_pb2.MessageOptions:
    return _reparsed(message, descriptor_pb2.MessageOptions)


def field_options(field: descriptor.FieldDescriptor) -> descriptor_pb2.FieldOptions:
    return _reparsed(field, descriptor_pb2.FieldOptions)


def _reparsed(desc: descriptor.DescriptorBase, options_cls: type[_OptionsT]) -> _OptionsT:
    cached = _options_cache.get(desc)
    if cached is None:
        raw = desc.GetOptions().SerializeToString() if desc.has_options else b""
        cached = _options_cache[desc] = options_cls.FromString(raw)
    return cast(_OptionsT, cached)  # the cache holds options_cls's instance for each desc


def message_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """A message field's type (the stubs type `message_type` optional: None on other fields)."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_type(field: descriptor.FieldDescriptor) -> descriptor.EnumDescriptor:
    """An enum field's type (None on other fields)."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type


def http_rule(method: descriptor.MethodDescriptor) -> http_pb2.HttpRule | None:
    opts = method_options(method)
    if not opts.HasExtension(annotations_pb2.http):
        return None
    return opts.Extensions[annotations_pb2.http]


def success_status(method: descriptor.MethodDescriptor) -> int:
    return method_options(method).Extensions[_SUCCESS_STATUS] or 200


def response_headers(method: descriptor.MethodDescriptor) -> tuple[str, ...]:
    """The headers the method may answer with, each from the initial metadata of its lower-cased
    name (the `response_headers` option)."""
    return tuple(method_options(method).Extensions[_RESPONSE_HEADERS])


def max_body_bytes(method: descriptor.MethodDescriptor) -> int:
    """The method's own request body limit, or 0 when it keeps the gateway's."""
    return int(method_options(method).Extensions[_MAX_BODY_BYTES])


def omit_empty(field: descriptor.FieldDescriptor) -> bool:
    return bool(field_options(field).Extensions[_OMIT_EMPTY])


def union_discriminator(message: descriptor.Descriptor) -> str:
    return message_options(message).Extensions[_UNION_DISCRIMINATOR]


def json_array(message: descriptor.Descriptor) -> bool:
    return message_options(message).Extensions[_JSON_ARRAY]


def retired_fields(message: descriptor.Descriptor) -> list[http_options_pb2.RetiredField]:
    return list(message_options(message).Extensions[_RETIRED_FIELDS])


def field_rules(field: descriptor.FieldDescriptor) -> http_options_pb2.FieldRules:
    return field_options(field).Extensions[_RULES]


def event_types(message: descriptor.Descriptor) -> list[http_options_pb2.StreamEventType]:
    return list(message_options(message).Extensions[_EVENT_TYPES])


def examples(method: descriptor.MethodDescriptor) -> list[http_options_pb2.HttpExample]:
    return list(method_options(method).Extensions[_EXAMPLES])


def message_class(message: descriptor.Descriptor) -> type[message.Message]:
    return message_factory.GetMessageClass(message)


@dataclass(frozen=True)
class LoadedService:
    """A service descriptor plus the comments its files carried (empty when stripped)."""

    service: descriptor.ServiceDescriptor
    pool: descriptor_pool.DescriptorPool
    comments: dict[str, str]  # full name of a service/method/message/field/enum -> leading comment


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `files`, added in dependency order."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in added:
            return
        if name in chain:
            raise ValueError(f"import cycle through {name}")
        proto = by_name.get(name)
        if proto is None:
            raise ValueError(f"reflection did not return {name}")
        for dep in proto.dependency:
            add(dep, (*chain, name))
        pool.Add(proto)
        added.add(name)

    for name in by_name:
        add(name, ())
    return pool


def files_of(file: descriptor.FileDescriptor) -> list[descriptor_pb2.FileDescriptorProto]:
    """A loaded file and its transitive imports as protos (dependencies first), e.g. from the
    default pool when the generated modules are already imported in this process."""
    out: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def visit(fd: descriptor.FileDescriptor) -> None:
        if fd.name in out:
            return
        for dep in fd.dependencies:
            visit(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        out[fd.name] = proto

    visit(file)
    return list(out.values())


def load_from_files(
    files: Iterable[descriptor_pb2.FileDescriptorProto], service_name: str = PUBLIC_SERVICE
) -> LoadedService:
    files = list(files)
    pool = build_pool(files)
    return LoadedService(pool.FindServiceByName(service_name), pool, _comments(files))


async def fetch_files(
    channel: grpc.aio.Channel, symbol: str = PUBLIC_SERVICE, timeout: float = 5.0
) -> list[descriptor_pb2.FileDescriptorProto]:
    """The file defining `symbol` and its transitive dependencies, over one reflection stream."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=timeout)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    try:
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        pending: set[str] = set()
        while True:
            reply = await call.read()
            if reply is grpc.aio.EOF:
                raise LookupError("reflection stream ended early")
            if reply.HasField("error_response"):
                raise LookupError(f"reflection: {reply.error_response.error_message}")
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[proto.name] = proto
            missing = {d for f in files.values() for d in f.dependency} - files.keys() - pending
            for name in missing:
                await call.write(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
            pending |= missing
            pending -= files.keys()
            if not pending:
                break
    finally:
        await call.done_writing()
        call.cancel()
    return list(files.values())


async def load_service(
    channel: grpc.aio.Channel, *, deadline_s: float = 15.0, service_name: str = PUBLIC_SERVICE
) -> LoadedService:
    """Reflect `service_name`, retrying while the server is not up yet, until `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    delay = 0.05
    while True:
        try:
            return load_from_files(await fetch_files(channel, service_name), service_name)
        except grpc.aio.AioRpcError as exc:
            if (
                exc.code()
                not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNIMPLEMENTED,
                )
                or time.monotonic() > give_up
            ):
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


# --- proto comments (present only when the server kept source_code_info) -----------------------


def _comments(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in files:
        if not f.HasField("source_code_info"):
            continue
        names = _paths_to_names(f)
        for loc in f.source_code_info.location:
            name = names.get(tuple(loc.path))
            text = loc.leading_comments.strip()
            if name and text:
                out[name] = " ".join(line.strip() for line in text.splitlines())
    return out


def _paths_to_names(f: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    # Paths use the field numbers of FileDescriptorProto, DescriptorProto, ServiceDescriptorProto.
    pkg = f.package + "." if f.package else ""
    names: dict[tuple[int, ...], str] = {}

    def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        full = prefix + m.name
        names[path] = full
        for i, fld in enumerate(m.field):
            names[(*path, 2, i)] = f"{full}.{fld.name}"
        for i, nested in enumerate(m.nested_type):
            message(nested, (*path, 3, i), full + ".")
        for i, enum in enumerate(m.enum_type):
            names[(*path, 4, i)] = f"{full}.{enum.name}"

    for i, m in enumerate(f.message_type):
        message(m, (4, i), pkg)
    for i, enum in enumerate(f.enum_type):
        names[(5, i)] = pkg + enum.name
    for i, svc in enumerate(f.service):
        names[(6, i)] = pkg + svc.name
        for j, meth in enumerate(svc.method):
            names[(6, i, 2, j)] = f"{pkg}{svc.name}.{meth.name}"
    return names
