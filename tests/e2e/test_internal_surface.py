"""The internal door, tried as an attacker on the same network would: every internal RPC
(enumerated from the generated descriptors, so a new one is covered without editing this file)
on every listener (public api, store, runner, tool router), with no token, a user's token, a
token minted for an MCP server, internal tokens signed with the wrong secret or expired, and an
internal token of a role the method does not allow. None gets through; the public listener does
not serve or describe internal services at all."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import agents.v1
import grpc
import jwt
import pytest
import pytest_asyncio
from google.protobuf import descriptor, message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common import internal_auth
from services.common.auth import mint_mcp_token, mint_token
from services.common.internal_auth import Role, mint_internal_token
from tests.internal import INTERNAL_SECRET

from .conftest import SECRET
from .runner_suite import RunnerSuite, running_runner_suite, start_runner


def _internal_methods() -> list[descriptor.MethodDescriptor]:
    """Every method of every agents.v1 service but the public ones, from the generated files."""
    methods = []
    for module in pkgutil.iter_modules(agents.v1.__path__):
        if module.name.endswith("_pb2"):
            file = importlib.import_module(f"agents.v1.{module.name}").DESCRIPTOR
            for service in file.services_by_name.values():
                if service.full_name not in internal_auth.PUBLIC_SERVICES:
                    methods.extend(service.methods)
    return methods


INTERNAL_METHODS = _internal_methods()
IDS = [f"{m.containing_service.name}.{m.name}" for m in INTERNAL_METHODS]


def _path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_internal_rpc_is_found_and_given_roles() -> None:
    """The walk below covers what the descriptors hold; each method has at least one role (a
    method without one would be closed to Parley's own processes too)."""
    services = {m.containing_service.name for m in INTERNAL_METHODS}
    assert {"StoreService", "RunnerService", "ToolRouterService"} <= services
    assert len(INTERNAL_METHODS) >= 10
    for method in INTERNAL_METHODS:
        assert internal_auth.roles_for(_path(method)), _path(method)
        assert Role.GATEWAY not in internal_auth.roles_for(_path(method))
    assert set(internal_auth.PERMISSIONS) == {_path(m) for m in INTERNAL_METHODS}


@dataclass
class Listeners:
    suite: RunnerSuite
    ports: dict[str, int]  # listener name -> port
    serves: dict[str, str]  # internal service full name -> the listener that serves it


@pytest_asyncio.fixture(scope="module")
async def listeners(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[Listeners]:
    async with running_runner_suite(await make_database_url(), with_runner=False) as rs:
        runner = await start_runner(rs.settings)
        try:
            yield Listeners(
                rs,
                {
                    "public api": rs.api_port,
                    "store": rs.store_port,
                    "runner": runner.port,
                    "tooling": rs.tooling_port,
                },
                {
                    "agents.v1.StoreService": "store",
                    "agents.v1.RunnerService": "runner",
                    "agents.v1.ToolRouterService": "tooling",
                },
            )
        finally:
            await runner.stop()


def _forged_internal(secret: str, role: Role = Role.RUNNER, ttl: int = 300) -> str:
    return mint_internal_token(secret, role, ttl)


def _expired_internal() -> str:
    now = int(time.time())
    claims = {"aud": internal_auth.AUDIENCE, "role": "runner", "iat": now - 600, "exp": now - 300}
    return jwt.encode(claims, INTERNAL_SECRET, algorithm="HS256")


# name -> the Authorization metadata value (None: no header at all)
ATTEMPTS: dict[str, Callable[[], str | None]] = {
    "no token": lambda: None,
    "garbage": lambda: "Bearer not-a-jwt",
    "user token": lambda: f"Bearer {mint_token(SECRET, 1, 1)}",
    "MCP token": lambda: f"Bearer {mint_mcp_token(SECRET, 1, 1, 'http://mcp.example/mcp')}",
    # someone holding the user secret (an allow-listed MCP server does) forges an internal token
    "internal token signed with the user secret": lambda: f"Bearer {_forged_internal(SECRET)}",
    "expired internal token": lambda: f"Bearer {_expired_internal()}",
}


async def _call(port: int, method: descriptor.MethodDescriptor, authorization: str | None) -> Any:
    """Call `method` with an empty request; returns the AioRpcError it fails with (or None)."""
    request = message_factory.GetMessageClass(method.input_type)()
    metadata = [] if authorization is None else [("authorization", authorization)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        kwargs = {
            "request_serializer": type(request).SerializeToString,
            "response_deserializer": message_factory.GetMessageClass(method.output_type).FromString,
        }
        try:
            if method.server_streaming:
                call = channel.unary_stream(_path(method), **kwargs)(
                    request, metadata=metadata, timeout=5
                )
                await call.read()
            else:
                await channel.unary_unary(_path(method), **kwargs)(
                    request, metadata=metadata, timeout=5
                )
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


def _reason(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


@pytest.mark.parametrize("method", INTERNAL_METHODS, ids=IDS)
async def test_no_internal_rpc_answers_without_the_internal_credential(
    listeners: Listeners, method: descriptor.MethodDescriptor
) -> None:
    home = listeners.serves[method.containing_service.full_name]
    for listener, port in listeners.ports.items():
        for attempt, authorization in ATTEMPTS.items():
            error = await _call(port, method, authorization())
            where = f"{_path(method)} on the {listener} listener with {attempt}"
            assert error is not None, f"{where}: answered"
            if listener == home:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (where, error)
                assert _reason(error) == "INTERNAL_CREDENTIAL_REQUIRED", where
            else:
                assert error.code() == grpc.StatusCode.UNIMPLEMENTED, (where, error)


@pytest.mark.parametrize("method", INTERNAL_METHODS, ids=IDS)
async def test_each_role_calls_only_what_the_table_gives_it(
    listeners: Listeners, method: descriptor.MethodDescriptor
) -> None:
    port = listeners.ports[listeners.serves[method.containing_service.full_name]]
    allowed = internal_auth.roles_for(_path(method))
    for role in Role:
        error = await _call(port, method, f"Bearer {_forged_internal(INTERNAL_SECRET, role)}")
        code = None if error is None else error.code()
        if role in allowed:  # past the door: whatever an empty request gets, not a refusal
            assert code not in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNIMPLEMENTED,
            ), (role, error)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (role, error)
            assert error is not None and _reason(error) == "INTERNAL_ROLE_NOT_ALLOWED"


async def test_a_runner_may_not_read_inference_jobs(listeners: Listeners) -> None:
    (method,) = [m for m in INTERNAL_METHODS if m.name == "GetInferenceJob"]
    runner = f"Bearer {_forged_internal(INTERNAL_SECRET, Role.RUNNER)}"
    error = await _call(listeners.ports["store"], method, runner)
    assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED


async def _reflect(port: int, request: reflection_pb2.ServerReflectionRequest) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        async for response in stub.ServerReflectionInfo(iter([request])):
            return response
    raise AssertionError("no reflection answer")


async def test_the_public_listener_neither_lists_nor_describes_internal_services(
    listeners: Listeners,
) -> None:
    port = listeners.ports["public api"]
    listed = await _reflect(port, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert "agents.v1.ConversationService" in names
    assert names.isdisjoint(listeners.serves), names
    for service in listeners.serves:
        by_symbol = await _reflect(
            port, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
        )
        assert by_symbol.HasField("error_response"), service
    for file in ("agents/v1/store_service.proto", "agents/v1/tool_router_service.proto"):
        by_name = await _reflect(
            port, reflection_pb2.ServerReflectionRequest(file_by_filename=file)
        )
        assert by_name.HasField("error_response"), file
    # What the gateway needs is still there.
    public = await _reflect(
        port,
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="agents.v1.ConversationService"
        ),
    )
    assert public.file_descriptor_response.file_descriptor_proto
    # Each internal listener describes its own service (a description is not access).
    for service, listener in listeners.serves.items():
        listed = await _reflect(
            listeners.ports[listener], reflection_pb2.ServerReflectionRequest(list_services="")
        )
        assert service in {s.name for s in listed.list_services_response.service}
