"""Typed wrappers over the StoreService and ToolRouterService stubs; every call's deadline and
internal credential are set here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from agents.v1 import (
    config_pb2,
    message_pb2,
    run_pb2,
    store_service_pb2,
    store_service_pb2_grpc,
    tool_router_service_pb2,
    tool_router_service_pb2_grpc,
)

from services.common.errors import entry_of
from services.common.incidents import LEASE_LOST
from services.common.internal_auth import InternalCredential

STORE_DEADLINE_S = 10.0
DISCOVERY_DEADLINE_S = 60.0
TOOL_CALL_DEADLINE_S = 300.0


def is_lease_lost(exc: grpc.aio.AioRpcError) -> bool:
    return entry_of(exc).code == LEASE_LOST


class StoreClient:
    def __init__(self, channel: grpc.aio.Channel, credential: InternalCredential) -> None:
        self._stub = store_service_pb2_grpc.StoreServiceStub(channel)
        self._auth = credential.metadata

    async def watch_work(
        self, runner_id: str
    ) -> AsyncIterator[store_service_pb2.WatchWorkResponse]:
        call = self._stub.WatchWork(
            store_service_pb2.WatchWorkRequest(runner_id=runner_id), metadata=self._auth()
        )
        try:
            async for signal in call:
                yield signal
        finally:
            call.cancel()

    def claim(
        self,
        runner_id: str,
        lease_seconds: int,
        wait_ms: int,
        clusters: list[str],
        max_runs: int = 1,
    ) -> grpc.aio.UnaryUnaryCall[
        store_service_pb2.ClaimRunRequest, store_service_pb2.ClaimRunResponse
    ]:
        """The (long-poll) call itself, so that the worker can cancel it. `clusters`: only runs
        of these execution clusters ([]: of every cluster); up to `max_runs` of them."""
        request = store_service_pb2.ClaimRunRequest(
            runner_id=runner_id,
            lease_seconds=lease_seconds,
            wait_ms=wait_ms,
            clusters=clusters,
            max_runs=max_runs,
        )
        call: grpc.aio.UnaryUnaryCall[
            store_service_pb2.ClaimRunRequest, store_service_pb2.ClaimRunResponse
        ] = self._stub.ClaimRun(
            request, timeout=STORE_DEADLINE_S + wait_ms / 1000, metadata=self._auth()
        )
        return call

    async def release_leases(
        self, runner_name: str, runner_id: str, timeout_s: float = STORE_DEADLINE_S
    ) -> list[str]:
        """Make the runs earlier incarnations of this runner held runnable now; their ids."""
        reply = await self._stub.ReleaseLeases(
            store_service_pb2.ReleaseLeasesRequest(runner_name=runner_name, runner_id=runner_id),
            timeout=timeout_s,
            metadata=self._auth(),
        )
        return list(reply.run_ids)

    async def renew_leases(
        self, runner_id: str, run_ids: list[str], lease_seconds: int
    ) -> store_service_pb2.RenewLeasesResponse:
        """Extend the runner's leases at once; the reply names runs to cancel and runs lost."""
        reply: store_service_pb2.RenewLeasesResponse = await self._stub.RenewLeases(
            store_service_pb2.RenewLeasesRequest(
                runner_id=runner_id, run_ids=run_ids, lease_seconds=lease_seconds
            ),
            timeout=STORE_DEADLINE_S,
            metadata=self._auth(),
        )
        return reply

    async def append_run_events(
        self,
        run_id: str,
        runner_id: str,
        events: list[run_pb2.RunEvent],
        iteration: store_service_pb2.Iteration | None,
    ) -> None:
        await self._stub.AppendRunEvents(
            store_service_pb2.AppendRunEventsRequest(
                run_id=run_id, runner_id=runner_id, events=events, iteration=iteration
            ),
            timeout=STORE_DEADLINE_S,
            metadata=self._auth(),
        )

    async def commit(
        self,
        run_id: str,
        runner_id: str,
        run: run_pb2.Run,
        turns: list[message_pb2.Message],
        iteration: store_service_pb2.Iteration | None,
        events: list[run_pb2.RunEvent],
    ) -> int:
        reply: store_service_pb2.CommitRunResponse = await self._stub.CommitRun(
            store_service_pb2.CommitRunRequest(
                run_id=run_id,
                runner_id=runner_id,
                run=run,
                turns=turns,
                iteration=iteration,
                events=events,
            ),
            timeout=STORE_DEADLINE_S,
            metadata=self._auth(),
        )
        return reply.version

    async def set_generated_name(self, conversation_id: str, name: str) -> bool:
        reply: store_service_pb2.SetGeneratedNameResponse = await self._stub.SetGeneratedName(
            store_service_pb2.SetGeneratedNameRequest(conversation_id=conversation_id, name=name),
            timeout=STORE_DEADLINE_S,
            metadata=self._auth(),
        )
        return reply.applied


class ToolRouterClient:
    def __init__(self, channel: grpc.aio.Channel, credential: InternalCredential) -> None:
        self._stub = tool_router_service_pb2_grpc.ToolRouterServiceStub(channel)
        self._auth = credential.metadata

    async def discover(
        self, servers: list[config_pb2.McpServer], company_id: int, user_id: int
    ) -> list[tool_router_service_pb2.DiscoveredTool]:
        reply = await self._stub.DiscoverTools(
            tool_router_service_pb2.DiscoverToolsRequest(
                mcp_servers=servers,
                caller=tool_router_service_pb2.CallerIdentity(
                    company_id=company_id, user_id=user_id
                ),
            ),
            timeout=DISCOVERY_DEADLINE_S,
            metadata=self._auth(),
        )
        return list(reply.tools)

    async def call(
        self,
        servers: list[config_pb2.McpServer],
        company_id: int,
        user_id: int,
        use: message_pb2.ToolUseBlock,
        arguments_json: str,
    ) -> message_pb2.ToolResultBlock:
        reply: tool_router_service_pb2.CallToolResponse = await self._stub.CallTool(
            tool_router_service_pb2.CallToolRequest(
                mcp_servers=servers,
                caller=tool_router_service_pb2.CallerIdentity(
                    company_id=company_id, user_id=user_id
                ),
                tool_use_id=use.tool_use_id,
                wire_name=use.name,
                arguments_json=arguments_json,
            ),
            timeout=TOOL_CALL_DEADLINE_S,
            metadata=self._auth(),
        )
        result = reply.result
        result.tool_use_id = use.tool_use_id
        return result
