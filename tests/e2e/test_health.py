"""`parley health` as Docker's HEALTHCHECK and a Kubernetes exec probe run it: a real process
probing the real api (its public and its store listener), runner, tooling and gateway on
loopback, without a credential, and services that are down, hung, or (the gateway) cut off from
their API."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from agents.v1 import store_service_pb2, store_service_pb2_grpc

from gateway import app as gateway_app
from services.api import server as api_server
from services.api.db import migrate
from services.common.config import Settings
from services.runner import server as runner_server
from services.tooling import server as tooling_server
from tests.ports import free_port
from tests.fakes.bedrock import serve_fake_bedrock
from tests.internal import INTERNAL_SECRET

from .conftest import DOCS, SECRET
from .runner_suite import aws_env

PARLEY = str(Path(sys.executable).with_name("parley"))


@dataclass
class Ports:
    api: int
    store: int  # the api's internal listener
    runner: int
    tooling: int
    gateway: int


async def _settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """On a SQLite file: what is probed here does not depend on the database kind."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('health') / 'parley.db'}"
    await migrate.upgrade(url)
    return Settings(
        database_url=url, jwt_secret=SECRET, internal_secret=INTERNAL_SECRET, docs_base_url=DOCS
    )


async def _health(*args: str, **env: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    # Every address setting names a port of the test's choosing, so nothing else on this
    # machine (the defaults 50051-50054, 8080) is ever probed by accident.
    defaults = {
        "PARLEY_API_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_STORE_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_RUNNER_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_TOOLING_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_HTTP_PORT": str(free_port()),
    }
    process = await asyncio.create_subprocess_exec(
        PARLEY,
        "health",
        *args,
        env={**base, **defaults, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None and not err, err
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines  # one line, whatever happened
    return process.returncode, lines[0]


@pytest_asyncio.fixture(scope="module")
async def ports(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ports]:
    settings = await _settings(tmp_path_factory)
    async with serve_fake_bedrock() as bedrock, aws_env(bedrock.url):
        api = await api_server.start(settings, "127.0.0.1:0", "127.0.0.1:0")
        tooling = await tooling_server.start(settings, "127.0.0.1:0")
        settings = settings.with_overrides(
            api_addr=f"127.0.0.1:{api.port}",
            store_addr=f"127.0.0.1:{api.internal_port}",
            tooling_addr=f"127.0.0.1:{tooling.port}",
        )
        runner = await runner_server.start(settings, "127.0.0.1:0")
        gateway = await gateway_app.start(settings, settings.api_addr, "127.0.0.1", 0)
        try:
            yield Ports(api.port, api.internal_port, runner.port, tooling.port, gateway.port)
        finally:
            for service in (gateway, runner, tooling, api):
                await service.stop()


async def test_each_service_serving_at_an_address(ports: Ports) -> None:
    for service, port in [
        ("api", ports.api),
        ("store", ports.store),  # the api's internal listener, apart from the public one
        ("runner", ports.runner),
        ("tooling", ports.tooling),
        ("gateway", ports.gateway),
    ]:
        addr = f"127.0.0.1:{port}"
        assert await _health(service, "--addr", addr) == (0, f"{service} {addr}: SERVING")


async def test_health_needs_no_credential_where_every_other_call_does(ports: Ports) -> None:
    """The store listener refuses an uncredentialed StoreService call, yet answers the probe
    (which carries none, as Docker's and the kubelet's do)."""
    addr = f"127.0.0.1:{ports.store}"
    async with grpc.aio.insecure_channel(addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await store_service_pb2_grpc.StoreServiceStub(channel).ClaimRun(
                store_service_pb2.ClaimRunRequest(runner_id="probe", lease_seconds=5), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await _health("store", "--addr", addr) == (0, f"store {addr}: SERVING")


async def test_services_at_their_configured_addresses(ports: Ports) -> None:
    env = {
        "PARLEY_API_ADDR": f"127.0.0.1:{ports.api}",
        "PARLEY_STORE_ADDR": f"127.0.0.1:{ports.store}",
        "PARLEY_TOOLING_ADDR": f"127.0.0.1:{ports.tooling}",
        "PARLEY_HTTP_PORT": str(ports.gateway),
    }
    runner = {"PARLEY_RUNNER_ADDR": f"127.0.0.1:{ports.runner}"}
    code, line = await _health("api", "store", "runner", "tooling", "gateway", **env, **runner)
    assert code == 0 and line.count(": SERVING") == 5, line
    # The api container's healthcheck: both of its listeners.
    code, line = await _health("api", "store", **env)
    assert code == 0 and line.count(": SERVING") == 2, line
    # A load-balanced form of the setting (a dns:/// name, a list) still probes this host's
    # own port: the first address's.
    for balanced in (f"dns:///parley-api:{ports.api}", f"127.0.0.1:{ports.api},10.0.0.2:1"):
        code, line = await _health("api", PARLEY_API_ADDR=balanced)
        assert (code, line) == (0, f"api 127.0.0.1:{ports.api}: SERVING")
    # No service named (the image's HEALTHCHECK): every one listening here, the runner (its
    # setting names a port nothing serves) left out.
    code, line = await _health(**env)
    assert code == 0 and line.count(": SERVING") == 4 and "runner" not in line, line


async def test_a_service_that_is_down_is_unhealthy() -> None:
    addr = f"127.0.0.1:{free_port()}"
    code, line = await _health("runner", "--addr", addr)
    assert code == 1 and line.startswith(f"runner {addr}: UNAVAILABLE"), line
    code, line = await _health("gateway", "--addr", addr)
    assert code == 1 and line.startswith(f"gateway {addr}: ConnectionRefusedError"), line


async def test_a_hung_service_is_unhealthy_within_the_timeout() -> None:
    with socket.socket() as hung:  # accepts connections (the backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        addr = f"127.0.0.1:{hung.getsockname()[1]}"
        code, line = await _health("api", "--addr", addr, "--timeout", "0.5")
        assert code == 1 and line.startswith(f"api {addr}: DEADLINE_EXCEEDED"), line
        code, line = await _health("gateway", "--addr", addr, "--timeout", "0.5")
        assert code == 1 and line.startswith(f"gateway {addr}: TimeoutError"), line


async def test_a_gateway_whose_api_is_gone_is_unhealthy(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = await _settings(tmp_path_factory)
    api = await api_server.start(settings, "127.0.0.1:0", "127.0.0.1:0")
    gateway = await gateway_app.start(settings, f"127.0.0.1:{api.port}", "127.0.0.1", 0)
    addr = f"127.0.0.1:{gateway.port}"
    try:
        assert await _health("gateway", "--addr", addr) == (0, f"gateway {addr}: SERVING")
    finally:
        await api.stop()
    try:
        code, line = await _health("gateway", "--addr", addr)
        assert (code, line) == (1, f"gateway {addr}: HTTP 503 from /healthz")
    finally:
        await gateway.stop()


async def test_usage_errors_name_the_choices() -> None:
    process = await asyncio.create_subprocess_exec(
        PARLEY, "health", "database", stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 2 and b"api, store, runner, tooling, gateway" in err


async def test_health_list_answers_every_service_without_logging_an_error(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    """grpc.health.v1 List (the aio servicer of grpcio-health-checking lacks it: it answered
    UNIMPLEMENTED and logged a NotImplementedError traceback)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.api}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).List(
            health_pb2.HealthListRequest(), timeout=5
        )
    serving = health_pb2.HealthCheckResponse.SERVING
    assert reply.statuses["agents.v1.ConversationService"].status == serving
    assert reply.statuses[""].status == serving
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
