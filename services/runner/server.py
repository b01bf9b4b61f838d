"""The run executor's gRPC server. Its RPCs (RunnerService) are declared in the contract and are
implemented with the agent loop (issue 4); until then they answer UNIMPLEMENTED."""

from __future__ import annotations

from agents.v1 import runner_service_pb2, runner_service_pb2_grpc

from services.common.config import Settings
from services.common.grpc_server import Running, start_server

SERVICE_NAME = runner_service_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name


async def start(settings: Settings, bind: str) -> Running:
    server, port = await start_server(
        bind,
        [
            (
                runner_service_pb2_grpc.add_RunnerServiceServicer_to_server,
                runner_service_pb2_grpc.RunnerServiceServicer(),
            )
        ],
        [SERVICE_NAME],
    )
    return Running("runner", port, lambda: server.stop(grace=2))
