"""The tool router's gRPC server: ToolRouterService over one shared, pooled MCP connector."""

from __future__ import annotations

from agents.v1 import tool_router_service_pb2, tool_router_service_pb2_grpc

from services.common import internal_tls
from services.common.config import Settings
from services.common.grpc_server import Running, start_server
from services.tooling.calls import CALL_TIMEOUT_SECONDS
from services.tooling.discovery import DISCOVERY_TIMEOUT_SECONDS
from services.tooling.mcp_connect import McpConnector
from services.tooling.servicer import ToolRouterServicer

SERVICE_NAME = tool_router_service_pb2.DESCRIPTOR.services_by_name["ToolRouterService"].full_name


async def start(
    settings: Settings,
    bind: str,
    *,
    discovery_timeout: float = DISCOVERY_TIMEOUT_SECONDS,
    call_timeout: float = CALL_TIMEOUT_SECONDS,
) -> Running:
    """Serve ToolRouterService on `bind`; the timeouts are per server (discovery) and per call."""
    connector = McpConnector(settings)
    server, port = await start_server(
        bind,
        [
            (
                tool_router_service_pb2_grpc.add_ToolRouterServiceServicer_to_server,
                ToolRouterServicer(connector, discovery_timeout, call_timeout),
            )
        ],
        [SERVICE_NAME],
        internal_secret=settings.internal_secret,
        tls=internal_tls.server_credentials(settings),
    )

    async def stop() -> None:
        await server.stop(grace=2)
        await connector.aclose()

    return Running("tooling", port, stop)
