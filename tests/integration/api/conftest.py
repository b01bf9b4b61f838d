"""The store on real gRPC over loopback, once per database kind (SQLite file, PostgreSQL).

The databases come from tests/conftest.py (`database_url`): when PostgreSQL does not answer on
127.0.0.1:5432 its variants skip with a loud reason; they never pass silently.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from agents.v1 import (
    config_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    run_pb2,
    store_service_pb2,
    store_service_pb2_grpc,
)
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from services.api import server as api_server
from services.common.auth import DEFAULT_SCOPE, mint_token
from services.common.config import DEFAULT_DATA_PLANE_ID, Settings
from services.common.internal_auth import Role
from tests.internal import INTERNAL_SECRET, internal_channel

SECRET = "api-integration-secret-at-least-32-bytes-long"
DOCS = "http://docs.parley.test"
MODEL = "anthropic.claude-opus-4.6"


def defaults(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "data_plane_id": DEFAULT_DATA_PLANE_ID, **fields}


@dataclass
class Api:
    """The store as its clients see it, plus a few helpers that keep tests short."""

    port: int
    store_port: int  # the internal listener
    public: conversation_service_pb2_grpc.ConversationServiceStub
    store: store_service_pb2_grpc.StoreServiceStub  # as a runner calls it
    operator: store_service_pb2_grpc.StoreServiceStub  # as `parley job` calls it

    @staticmethod
    def user() -> tuple[int, int]:
        """A fresh (company_id, user_id), so tests sharing a database never see each other."""
        return (uuid.uuid4().int % 10**9 + 1, uuid.uuid4().int % 10**9 + 1)

    @staticmethod
    def auth(who: tuple[int, int], scope: str = DEFAULT_SCOPE) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {mint_token(SECRET, who[0], who[1], scope)}"),)

    async def create(self, who: tuple[int, int], **body: Any) -> Any:
        body.setdefault("defaults", defaults())
        request = json_format.ParseDict(body, conversation_service_pb2.CreateConversationRequest())
        return await self.public.CreateConversation(request, metadata=self.auth(who))

    def start_request(
        self, conversation_id: str, **body: Any
    ) -> conversation_service_pb2.StartRunRequest:
        body.setdefault("client_op_id", str(uuid.uuid4()))
        body.setdefault("expected_version", 0)
        body.setdefault("payload", {"user_message": {"text": "What is 2 + 2?"}})
        return json_format.ParseDict(
            {"id": conversation_id, **body}, conversation_service_pb2.StartRunRequest()
        )

    async def start(self, who: tuple[int, int], conversation_id: str, **body: Any) -> Any:
        return await self.public.StartRun(
            self.start_request(conversation_id, **body), metadata=self.auth(who)
        )

    async def get_run(self, who: tuple[int, int], run_id: str) -> run_pb2.Run:
        return await self.public.GetRun(
            conversation_service_pb2.GetRunRequest(id=run_id), metadata=self.auth(who)
        )

    async def claim(
        self,
        run_id: str,
        runner_id: str = "runner-1",
        lease_seconds: int = 300,
        deadline: float = 10.0,
    ) -> store_service_pb2.ClaimRunResponse:
        """Claim until this run comes up (other tests' runs may be ahead in the queue)."""
        until = time.monotonic() + deadline
        while (left := until - time.monotonic()) > 0:
            claimed = await self.store.ClaimRun(  # a long poll: it answers when a run is there
                store_service_pb2.ClaimRunRequest(
                    runner_id=runner_id, lease_seconds=lease_seconds, wait_ms=int(left * 1000)
                )
            )
            if claimed.run.id == run_id:
                return claimed
        raise AssertionError(f"run {run_id} never became claimable")

    async def commit(
        self, run_id: str, run: run_pb2.Run, *turns: Any, runner_id: str = "runner-1"
    ) -> int:
        response = await self.store.CommitRun(
            store_service_pb2.CommitRunRequest(
                run_id=run_id, runner_id=runner_id, run=run, turns=list(turns)
            )
        )
        return response.version


@asynccontextmanager
async def running_api(database_url: str, docs_base_url: str = DOCS) -> AsyncIterator[Api]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,
        internal_secret=INTERNAL_SECRET,
        docs_base_url=docs_base_url,
    )
    running = await api_server.start(settings, "127.0.0.1:0", "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    store = f"127.0.0.1:{running.internal_port}"
    runner, operator = internal_channel(store, Role.RUNNER), internal_channel(store, Role.OPERATOR)
    try:
        yield Api(
            running.port,
            running.internal_port,
            conversation_service_pb2_grpc.ConversationServiceStub(channel),
            store_service_pb2_grpc.StoreServiceStub(runner),
            store_service_pb2_grpc.StoreServiceStub(operator),
        )
    finally:
        for open_channel in (channel, runner, operator):
            await open_channel.close()
        await running.stop()


@pytest_asyncio.fixture(scope="session")
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_api(database_url) as running:
        yield running


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call, read from its google.rpc.Status trailer."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            assert status.code == error.code().value[0] and status.message == error.details()
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError(f"no ErrorInfo on {error.code()}: {error.details()}")


async def expect_error(
    call: Any, code: str
) -> tuple[grpc.aio.AioRpcError, error_details_pb2.ErrorInfo]:
    """Await a call that must fail with the catalogued incident code `code`."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    info = error_info(raised.value)
    assert info.metadata["incident_code"] == code, (info, raised.value.details())
    return raised.value, info


__all__ = ["Api", "config_pb2", "defaults", "error_info", "expect_error", "running_api"]
