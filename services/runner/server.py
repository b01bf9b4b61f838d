"""The run executor's process: a worker that claims runs from the store (ClaimRun long polls;
cancellations on the store's WatchWork stream) and executes them, plus the RunnerService gRPC
server."""

from __future__ import annotations

import os
import socket
import uuid

import grpc
from agents.v1 import runner_service_pb2, runner_service_pb2_grpc

from services.common.config import Settings
from services.common.grpc_server import Running, start_server
from services.runner.clients import StoreClient, ToolRouterClient
from services.runner.executor import Executor
from services.runner.providers.base import Provider
from services.runner.providers.bedrock import BedrockOptions, BedrockProvider
from services.runner.servicer import RunnerServicer
from services.runner.worker import Worker

SERVICE_NAME = runner_service_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name


def _runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def start(settings: Settings, bind: str) -> Running:
    store_channel = grpc.aio.insecure_channel(settings.api_addr)
    tooling_channel = grpc.aio.insecure_channel(settings.tooling_addr)
    bedrock = BedrockProvider(
        BedrockOptions(
            max_connections=max(settings.runner_concurrency, 4),
            max_attempts=settings.bedrock_max_attempts,
            connect_timeout_s=settings.bedrock_connect_timeout_s,
            read_timeout_s=settings.bedrock_read_timeout_s,
        )
    )
    providers: dict[str, Provider] = {bedrock.name: bedrock}
    store = StoreClient(store_channel)
    runner_id = _runner_id()
    executor = Executor(store, ToolRouterClient(tooling_channel), providers, runner_id)
    worker = Worker(
        store,
        executor,
        runner_id,
        settings.runner_concurrency,
        settings.runner_lease_seconds,
        settings.runner_renew_batch,
    )
    try:
        await bedrock.endpoint(settings.default_data_plane_id)  # resolved once, off the event loop
        server, port = await start_server(
            bind,
            [(runner_service_pb2_grpc.add_RunnerServiceServicer_to_server, RunnerServicer(worker))],
            [SERVICE_NAME],
        )
    except BaseException:
        await store_channel.close()
        await tooling_channel.close()
        await bedrock.close()
        raise
    worker.start()

    async def stop() -> None:
        await worker.stop()
        await executor.close()
        await server.stop(grace=2)
        await store_channel.close()
        await tooling_channel.close()
        await bedrock.close()

    return Running("runner", port, stop)
