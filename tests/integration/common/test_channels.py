"""Channels between Parley's processes (services/common/channels.py) on real gRPC servers: every
address of a setting is used in turn (round robin), a backend reporting NOT_SERVING gets no calls
(client-side health checking), and a stopped backend fails no call once the channel noticed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import channels

SERVICE = "parley.test.Who"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Backend:
    name: str
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int


async def _backend(name: str) -> Backend:
    server = grpc.aio.server()
    status = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(status, server)
    who = grpc.unary_unary_rpc_method_handler(lambda _request, _context: name.encode())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Who": who}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await status.set(SERVICE, SERVING)
    return Backend(name, server, status, port)


@asynccontextmanager
async def _backends(*names: str) -> AsyncIterator[list[Backend]]:
    backends = [await _backend(name) for name in names]
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.server.stop(None)


async def _ask(channel: grpc.aio.Channel, times: int) -> list[str]:
    who = channel.unary_unary(f"/{SERVICE}/Who", lambda b: b, lambda b: b)
    return [(await who(b"", timeout=5)).decode() for _ in range(times)]


async def _until_answers(channel: grpc.aio.Channel, expected: set[str]) -> None:
    """Until the channel has noticed: the next answers come from `expected` only."""
    until = time.monotonic() + 10
    while set(await _ask(channel, 4)) != expected:
        assert time.monotonic() < until, f"the channel never settled on {expected}"
        await asyncio.sleep(0.05)


async def test_a_list_of_addresses_is_balanced_round_robin() -> None:
    async with _backends("a", "b") as (a, b):
        setting = f"127.0.0.1:{a.port}, 127.0.0.1:{b.port}"
        async with channels.open_channel(setting, SERVICE) as channel:
            await _until_answers(channel, {"a", "b"})  # both connected
            answers = await _ask(channel, 10)
    assert answers.count("a") == answers.count("b") == 5  # in turn


async def test_a_backend_that_is_not_serving_gets_no_calls() -> None:
    async with _backends("a", "b") as (a, b):
        setting = f"127.0.0.1:{a.port},127.0.0.1:{b.port}"
        async with channels.open_channel(setting, SERVICE) as channel:
            await _until_answers(channel, {"a", "b"})
            await a.health.set(SERVICE, NOT_SERVING)  # draining: its Watch stream says so
            await _until_answers(channel, {"b"})
            assert set(await _ask(channel, 20)) == {"b"}
            await a.health.set(SERVICE, SERVING)
            await _until_answers(channel, {"a", "b"})


async def test_a_stopped_backend_fails_no_call_once_noticed() -> None:
    async with _backends("a", "b") as (a, b):
        setting = f"127.0.0.1:{a.port},127.0.0.1:{b.port}"
        async with channels.open_channel(setting, SERVICE) as channel:
            await _until_answers(channel, {"a", "b"})
            await b.server.stop(None)  # at once: its connections close
            assert set(await _ask(channel, 20)) == {"a"}  # every call answered, by a


async def test_a_dns_target_and_a_single_address() -> None:
    async with _backends("a") as (a,):
        for setting in (f"dns:///localhost:{a.port}", f"127.0.0.1:{a.port}"):
            async with channels.open_channel(setting, SERVICE) as channel:
                assert await _ask(channel, 2) == ["a", "a"]
