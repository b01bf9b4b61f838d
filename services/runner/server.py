"""The run executor's process: a worker that claims runs from the store (ClaimRun long polls;
cancellations on the store's WatchWork stream) and executes them, plus the RunnerService gRPC
server. It dials the store's internal listeners and the tool routers (every address of their
settings) with the runner's internal credential. Its runner_id is `<name>/<incarnation>`: the
name survives a restart, so the new process can release what the old one held."""

from __future__ import annotations

import logging
import socket
import uuid

from agents.v1 import runner_service_pb2, runner_service_pb2_grpc

from services.common import addresses, channels, internal_tls
from services.common.config import MAX_RUNNER_NAME, Settings
from services.common.internal_auth import InternalCredential, Role
from services.common.grpc_server import Running, start_server
from services.common.model_catalogue import MODELS
from services.runner.clients import StoreClient, ToolRouterClient
from services.runner.executor import Executor
from services.runner.providers.base import Provider
from services.runner.providers.bedrock import BedrockOptions, BedrockProvider
from services.runner.providers.echo import EchoProvider
from services.runner.servicer import RunnerServicer
from services.runner.worker import Worker

SERVICE_NAME = runner_service_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name
NO_CREDENTIALS = (
    "no AWS credentials found: runs on Bedrock models will fail with ModelInvocationFailed. "
    "For a first run without AWS, use the built-in echo model: `parley up --fake-model` "
    "(or PARLEY_FAKE_MODEL=true)"
)
log = logging.getLogger("parley.runner")


def runner_name(settings: Settings, bind: str) -> str:
    """The runner's name, the same after a restart: PARLEY_RUNNER_NAME, else this host and the
    port it listens on (two live runners never share both). A runner on an ephemeral port
    (tests) has no such name: it gets one of its own."""
    if settings.runner_name:
        return settings.runner_name
    port = addresses.parse(bind).first_port
    host = socket.gethostname()[: MAX_RUNNER_NAME - 20]
    return f"{host}:{port if port else f'ephemeral-{uuid.uuid4().hex[:8]}'}"


async def start(settings: Settings, bind: str) -> Running:
    store_channel = channels.dial(settings, "store")
    tooling_channel = channels.dial(settings, "tooling")
    credential = InternalCredential(settings.internal_secret, Role.RUNNER)
    bedrock: BedrockProvider | None = None
    providers: dict[str, Provider]
    if settings.fake_model:  # every catalogued provider is answered by the echo model
        echo = EchoProvider()
        providers = {model.provider: echo for model in MODELS.values()}
    else:
        bedrock = BedrockProvider(
            BedrockOptions(
                max_connections=max(settings.runner_concurrency, 4),
                max_attempts=settings.bedrock_max_attempts,
                connect_timeout_s=settings.bedrock_connect_timeout_s,
                read_timeout_s=settings.bedrock_read_timeout_s,
            )
        )
        providers = {bedrock.name: bedrock}
    store = StoreClient(store_channel, credential)
    name = runner_name(settings, bind)
    runner_id = f"{name}/{uuid.uuid4().hex[:12]}"  # this incarnation
    executor = Executor(store, ToolRouterClient(tooling_channel, credential), providers, runner_id)
    worker = Worker(
        store,
        executor,
        name,
        runner_id,
        settings.runner_concurrency,
        settings.runner_lease_seconds,
        settings.runner_renew_batch,
    )
    try:
        if bedrock is not None:  # resolved once, off the event loop
            endpoint = await bedrock.endpoint(settings.default_data_plane_id)
            if endpoint.credentials is None and endpoint.bearer_token is None:
                log.warning(NO_CREDENTIALS)
        server, port = await start_server(
            bind,
            [(runner_service_pb2_grpc.add_RunnerServiceServicer_to_server, RunnerServicer(worker))],
            [SERVICE_NAME],
            internal_secret=settings.internal_secret,
            tls=internal_tls.server_credentials(settings),
        )
    except BaseException:
        await store_channel.close()
        await tooling_channel.close()
        await _close(providers)
        raise
    worker.start()

    async def stop() -> None:
        await worker.stop()
        await executor.close()
        await server.stop(grace=2)
        await store_channel.close()
        await tooling_channel.close()
        await _close(providers)

    return Running("runner", port, stop)


async def _close(providers: dict[str, Provider]) -> None:
    for provider in {id(p): p for p in providers.values()}.values():
        await provider.close()
