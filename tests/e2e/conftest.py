"""The suite as a client sees it: the real API and gateway on loopback ports, driven over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from agents.v1 import message_pb2, run_pb2, store_service_pb2, store_service_pb2_grpc

from gateway import app as gateway_app
from services.api import server as api_server
from services.common.auth import DEFAULT_SCOPE, mint_token
from services.common.config import Settings
from services.common.internal_auth import Role
from tests.internal import INTERNAL_SECRET, internal_channel
from tests.spec_examples import DATA_PLANE, example_defaults

SECRET = "e2e-secret-0123456789abcdef0123456789"
DOCS = "http://docs.parley.test"


@dataclass
class GatewayClient:
    """The REST surface as the spec's client uses it, on a suite's gateway."""

    http: httpx.AsyncClient

    def headers(self, company_id: int = 1, user_id: int = 1, scope: str = DEFAULT_SCOPE) -> dict:
        return {"Authorization": f"Bearer {mint_token(SECRET, company_id, user_id, scope)}"}

    async def create_conversation(self, user: tuple[int, int] = (1, 1), **body: Any) -> dict:
        body.setdefault("defaults", example_defaults())
        r = await self.http.post("/agents/conversations", json=body, headers=self.headers(*user))
        assert r.status_code == 200, r.text
        return r.json()

    async def post_run(
        self, conversation_id: str, user: tuple[int, int] = (1, 1), **body: Any
    ) -> httpx.Response:
        body.setdefault("client_op_id", str(uuid.uuid4()))
        body.setdefault("expected_version", 0)
        body.setdefault("payload", {"kind": "user_message", "text": "What is 2 + 2?"})
        return await self.http.post(
            f"/agents/conversations/{conversation_id}/runs", json=body, headers=self.headers(*user)
        )

    async def get_run(self, run_id: str, user: tuple[int, int] = (1, 1)) -> dict[str, Any]:
        r = await self.http.get(f"/agents/runs/{run_id}", headers=self.headers(*user))
        assert r.status_code == 200, r.text
        return r.json()

    async def messages(self, conversation_id: str, **params: Any) -> dict[str, Any]:
        r = await self.http.get(
            f"/agents/conversations/{conversation_id}/messages",
            params=params,
            headers=self.headers(),
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/agents/conversations/{conversation_id}", headers=self.headers())
        assert r.status_code == 200, r.text
        return r.json()


@dataclass
class Suite(GatewayClient):
    """The store and the gateway, no runner: runs stay pending."""

    store: store_service_pb2_grpc.StoreServiceStub  # the store as a runner calls it
    api_port: int
    gateway_port: int
    store_port: int  # the api's internal listener

    async def start_run(
        self, conversation_id: str, user: tuple[int, int] = (1, 1), **body: Any
    ) -> httpx.Response:
        return await self.post_run(conversation_id, user, **body)

    async def claim(self) -> store_service_pb2.ClaimRunResponse:
        """Lease the oldest runnable run, as a runner would (for tests of the store's side)."""
        return await self.store.ClaimRun(
            store_service_pb2.ClaimRunRequest(runner_id="test-runner", lease_seconds=30)
        )

    async def commit(
        self, run_id: str, run: run_pb2.Run, *turns: message_pb2.Message
    ) -> store_service_pb2.CommitRunResponse:
        return await self.store.CommitRun(
            store_service_pb2.CommitRunRequest(
                run_id=run_id, runner_id="test-runner", run=run, turns=list(turns)
            )
        )


@asynccontextmanager
async def running_suite(database_url: str, **overrides: Any) -> AsyncIterator[Suite]:
    settings = Settings(
        **{
            "database_url": database_url,
            "jwt_secret": SECRET,
            "internal_secret": INTERNAL_SECRET,
            "docs_base_url": DOCS,
            **overrides,
        }
    )
    api = await api_server.start(settings, "127.0.0.1:0", "127.0.0.1:0")
    gateway = await gateway_app.start(settings, f"127.0.0.1:{api.port}", "127.0.0.1", 0)
    channel = internal_channel(f"127.0.0.1:{api.internal_port}", Role.RUNNER)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway.port}", timeout=30
        ) as http:
            yield Suite(
                http,
                store_service_pb2_grpc.StoreServiceStub(channel),
                api.port,
                gateway.port,
                api.internal_port,
            )
    finally:
        await channel.close()
        await gateway.stop()
        await api.stop()


@pytest_asyncio.fixture(scope="session")
async def suite(database_url: str) -> AsyncIterator[Suite]:
    """Shared by tests that only read what they wrote themselves."""
    async with running_suite(database_url) as running:
        yield running


@pytest_asyncio.fixture
async def fresh_suite(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[Suite]:
    """An empty database of its own: for tests that claim runs, where other tests' pending runs
    would be in the way."""
    async with running_suite(await make_database_url()) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def rs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[Any]:
    """The whole suite with a runner (runner_suite.py), one per test module; MCP servers on
    loopback are allowed."""
    from .runner_suite import running_runner_suite  # it imports this module

    async with running_runner_suite(
        await make_database_url(), mcp_allow_private_networks=True
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def docs_url() -> AsyncIterator[str]:
    """The spec's Example 2 docs server: a real `mcp` SDK server on loopback."""
    from tests.fakes import mcp_servers

    async with mcp_servers.serve(mcp_servers.docs_search_server()) as url:
        yield url


__all__ = ["DATA_PLANE", "DOCS", "SECRET", "GatewayClient", "Suite", "example_defaults"]
