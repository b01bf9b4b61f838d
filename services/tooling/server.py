"""The tool router's gRPC server. Its RPCs (ToolRouterService) are declared in the contract and
are implemented with MCP discovery and calls (issue 3); until then they answer UNIMPLEMENTED."""

from __future__ import annotations

from agents.v1 import tool_router_service_pb2, tool_router_service_pb2_grpc

from services.common.config import Settings
from services.common.grpc_server import Running, start_server

SERVICE_NAME = tool_router_service_pb2.DESCRIPTOR.services_by_name["ToolRouterService"].full_name


async def start(settings: Settings, bind: str) -> Running:
    server, port = await start_server(
        bind,
        [
            (
                tool_router_service_pb2_grpc.add_ToolRouterServiceServicer_to_server,
                tool_router_service_pb2_grpc.ToolRouterServiceServicer(),
            )
        ],
        [SERVICE_NAME],
    )
    return Running("tooling", port, lambda: server.stop(grace=2))
