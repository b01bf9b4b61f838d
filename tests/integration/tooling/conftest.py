"""The tool router on real gRPC over loopback, against real MCP servers built with the SDK
(tests/fakes/mcp_servers.py), each on its own ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import grpc
import pytest_asyncio
from agents.v1 import config_pb2, tool_router_service_pb2, tool_router_service_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.config import Settings
from services.common.internal_auth import Role
from services.tooling import server as tooling_server
from tests.fakes import mcp_servers as fakes
from tests.internal import INTERNAL_SECRET, internal_channel

SECRET = "tooling-integration-secret-at-least-32-bytes"
DISCOVERY_TIMEOUT = 3.0
CALLER = tool_router_service_pb2.CallerIdentity(company_id=7, user_id=42)


@dataclass
class Fakes:
    zoo: str
    paged: str
    mutable: str
    mutable_server: fakes.MutableServer
    slow: list[str]
    content: str
    docs: str
    auth: str
    auth_open: str  # the same kind of server, not on the allowlist
    auth_seen: fakes.AuthRecorder
    auth_open_seen: fakes.AuthRecorder
    malformed: str
    not_rpc: str
    sse_only: str


@dataclass
class Router:
    stub: tool_router_service_pb2_grpc.ToolRouterServiceStub

    async def discover(self, *servers: dict[str, Any]) -> list[Any]:
        reply = await self.stub.DiscoverTools(
            tool_router_service_pb2.DiscoverToolsRequest(
                mcp_servers=[config_pb2.McpServer(**s) for s in servers], caller=CALLER
            )
        )
        return list(reply.tools)

    async def call(
        self, wire_name: str, arguments_json: str = "{}", *servers: dict[str, Any]
    ) -> Any:
        reply = await self.stub.CallTool(
            tool_router_service_pb2.CallToolRequest(
                mcp_servers=[config_pb2.McpServer(**s) for s in servers],
                caller=CALLER,
                tool_use_id="tu_1",
                wire_name=wire_name,
                arguments_json=arguments_json,
            )
        )
        return reply.result


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call (the catalogue's reason and metadata)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError(f"no ErrorInfo on {error!r}")


@pytest_asyncio.fixture(scope="module")
async def mcp() -> AsyncIterator[Fakes]:
    async with AsyncExitStack() as stack:

        async def up(app: Any, path: str = fakes.MCP_PATH) -> str:
            return await stack.enter_async_context(fakes.serve(app, path))

        mutable = fakes.MutableServer()
        auth_seen, auth_open_seen = fakes.AuthRecorder(), fakes.AuthRecorder()
        yield Fakes(
            zoo=await up(fakes.schema_zoo_server()),
            paged=await up(fakes.paged_server(count=25, page_size=10)),
            mutable=await up(mutable.app()),
            mutable_server=mutable,
            slow=[await up(fakes.slow_server(0.2)) for _ in range(3)],
            content=await up(fakes.content_server()),
            docs=await up(fakes.docs_search_server()),
            auth=await up(auth_seen.app()),
            auth_open=await up(auth_open_seen.app()),
            auth_seen=auth_seen,
            auth_open_seen=auth_open_seen,
            malformed=await up(fakes.malformed_app()),
            not_rpc=await up(fakes.malformed_app("not_rpc")),
            sse_only=await up(fakes.docs_search_server().sse_app(), "/sse"),
        )


@pytest_asyncio.fixture(scope="module")
async def router(mcp: Fakes) -> AsyncIterator[Router]:
    settings = Settings(
        jwt_secret=SECRET,
        internal_secret=INTERNAL_SECRET,
        mcp_allow_private_networks=True,
        mcp_auth_allowlist=(mcp.auth,),
    )
    async with _serve(settings) as stub:
        yield Router(stub)


@pytest_asyncio.fixture(scope="module")
async def strict_router() -> AsyncIterator[Router]:
    """An installation that does not allow private networks."""
    settings = Settings(
        jwt_secret=SECRET, internal_secret=INTERNAL_SECRET, mcp_allow_private_networks=False
    )
    async with _serve(settings) as stub:
        yield Router(stub)


class _serve:
    """Short timeouts, so the timeout tests take about a second."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> tool_router_service_pb2_grpc.ToolRouterServiceStub:
        self.running = await tooling_server.start(
            self.settings, "127.0.0.1:0", discovery_timeout=DISCOVERY_TIMEOUT, call_timeout=1.0
        )
        self.channel = internal_channel(f"127.0.0.1:{self.running.port}", Role.RUNNER)
        return tool_router_service_pb2_grpc.ToolRouterServiceStub(self.channel)

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.running.stop()
