"""The ToolRouterService: translates requests to discovery and calls, and back."""

from __future__ import annotations

from typing import Any

import grpc
from agents.v1 import tool_router_service_pb2 as pb
from agents.v1 import tool_router_service_pb2_grpc

from services.tooling import calls, discovery
from services.tooling.mcp_connect import Caller, McpConnector


def _caller(identity: pb.CallerIdentity) -> Caller:
    return Caller(identity.company_id, identity.user_id)


class ToolRouterServicer(tool_router_service_pb2_grpc.ToolRouterServiceServicer):
    def __init__(
        self, connector: McpConnector, discovery_timeout: float, call_timeout: float
    ) -> None:
        self._connector = connector
        self._discovery_timeout = discovery_timeout
        self._call_timeout = call_timeout

    async def DiscoverTools(
        self, request: pb.DiscoverToolsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DiscoverToolsResponse:
        tools = await discovery.discover_tools(
            self._connector,
            request.mcp_servers,
            _caller(request.caller),
            self._discovery_timeout,
        )
        return pb.DiscoverToolsResponse(
            tools=[
                pb.DiscoveredTool(
                    wire_name=t.wire_name,
                    description=t.description,
                    input_schema_json=t.input_schema_json,
                    strict=False,
                )
                for t in tools
            ]
        )

    async def CallTool(
        self, request: pb.CallToolRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CallToolResponse:
        result = await calls.call_tool(
            self._connector,
            request.mcp_servers,
            _caller(request.caller),
            request.tool_use_id,
            request.wire_name,
            request.arguments_json,
            self._call_timeout,
        )
        return pb.CallToolResponse(result=result)
