"""The suite as a client sees it: the real API and gateway on loopback ports, driven over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from agents.v1 import store_service_pb2_grpc

from gateway import app as gateway_app
from services.api import server as api_server
from services.common.auth import DEFAULT_SCOPE, mint_token
from services.common.config import Settings
from services.common.internal_auth import Role
from tests.internal import INTERNAL_SECRET, internal_channel

SECRET = "e2e-secret-0123456789abcdef0123456789"
DOCS = "http://docs.parley.test"
DATA_PLANE = "f79cbdae-4848-47ca-95e8-69588364d185"


@dataclass
class Suite:
    http: httpx.AsyncClient
    store: store_service_pb2_grpc.StoreServiceStub  # the store as a runner calls it
    api_port: int
    gateway_port: int
    store_port: int  # the api's internal listener

    def headers(self, company_id: int = 1, user_id: int = 1, scope: str = DEFAULT_SCOPE) -> dict:
        return {"Authorization": f"Bearer {mint_token(SECRET, company_id, user_id, scope)}"}

    async def create_conversation(self, user: tuple[int, int] = (1, 1), **body: Any) -> dict:
        body.setdefault("defaults", example_defaults())
        r = await self.http.post("/agents/conversations", json=body, headers=self.headers(*user))
        assert r.status_code == 200, r.text
        return r.json()

    async def start_run(
        self, conversation_id: str, user: tuple[int, int] = (1, 1), **body: Any
    ) -> httpx.Response:
        body.setdefault("client_op_id", str(uuid.uuid4()))
        body.setdefault("expected_version", 0)
        body.setdefault("payload", {"kind": "user_message", "text": "What is 2 + 2?"})
        return await self.http.post(
            f"/agents/conversations/{conversation_id}/runs", json=body, headers=self.headers(*user)
        )


def example_defaults(**changes: Any) -> dict:
    """The defaults of the spec's Example 1."""
    return {
        "model": "anthropic.claude-opus-4.6",
        "data_plane_id": DATA_PLANE,
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 1024,
        "temperature": 0.0,
        **changes,
    }


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
