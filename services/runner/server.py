"""The run executor's process: a worker that claims runs from the store (ClaimRun long polls;
cancellations on the store's WatchWork stream) and executes them, plus the RunnerService gRPC
server. It dials the store's internal listeners and the tool routers (every address of their
settings) with the runner's internal credential. It serves every execution cluster of the
catalogue, or those named by `parley serve runner --cluster`, with one provider each, and reads
only their credentials. Its runner_id is `<name>/<incarnation>`: the name survives a restart, so
the new process can release what the old one held."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping

from agents.v1 import runner_service_pb2, runner_service_pb2_grpc

from services.common import addresses, channels, internal_tls
from services.common.catalogue import Cluster
from services.common.config import MAX_RUNNER_NAME, Settings
from services.common.grpc_server import Running, start_server
from services.common.internal_auth import InternalCredential, Role
from services.runner.capacity import Capacity, budget_bytes, open_files
from services.runner.clients import StoreClient, ToolRouterClient
from services.runner.executor import Executor
from services.runner.providers.base import Provider
from services.runner.providers.bedrock import BedrockOptions, BedrockProvider
from services.runner.providers.chat_http import ChatOptions
from services.runner.providers.cortex import cortex_provider
from services.runner.providers.echo import EchoProvider
from services.runner.providers.openai import openai_provider
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


def served_clusters(settings: Settings) -> list[Cluster]:
    """The clusters this runner serves: those `--cluster` names (each must be catalogued), else
    every one."""
    catalogue = settings.catalogue
    unknown = [name for name in settings.runner_clusters if name not in catalogue.clusters]
    if unknown:
        raise SystemExit(
            f"parley serve runner --cluster {' '.join(unknown)}: no such execution cluster in "
            f"{catalogue.source}; it has: {', '.join(catalogue.clusters)}"
        )
    if not settings.runner_clusters:
        return list(catalogue.clusters.values())
    return [catalogue.clusters[name] for name in dict.fromkeys(settings.runner_clusters)]


def build_providers(
    settings: Settings, clusters: list[Cluster], environ: Mapping[str, str]
) -> dict[str, Provider]:
    """One provider per served cluster, by its name (bedrock clusters share one; the echo model
    answers every cluster under --fake-model). Only these clusters' credentials are read."""
    if settings.fake_model:
        echo = EchoProvider()
        return {cluster.name: echo for cluster in clusters}
    # As many connections as runs at once: no limit unless an operator counts runs.
    connections = max(settings.runner_concurrency, 4) if settings.runner_concurrency else 0
    chat = ChatOptions(
        max_connections=connections,
        max_attempts=settings.chat_max_attempts,
        connect_timeout_s=settings.chat_connect_timeout_s,
        read_timeout_s=settings.chat_read_timeout_s,
    )
    bedrock: BedrockProvider | None = None
    providers: dict[str, Provider] = {}
    for cluster in clusters:
        if cluster.provider == "bedrock":
            if bedrock is None:
                bedrock = BedrockProvider(
                    BedrockOptions(
                        max_connections=connections,
                        max_attempts=settings.bedrock_max_attempts,
                        connect_timeout_s=settings.bedrock_connect_timeout_s,
                        read_timeout_s=settings.bedrock_read_timeout_s,
                    )
                )
            providers[cluster.name] = bedrock
        else:
            build = cortex_provider if cluster.provider == "cortex" else openai_provider
            provider = build(cluster, chat, environ)
            if provider.missing_credential:
                log.warning(
                    "%s: its runs will fail with ModelInvocationFailed", provider.missing_credential
                )
            providers[cluster.name] = provider
    return providers


async def start(settings: Settings, bind: str) -> Running:
    clusters = served_clusters(settings)
    files = open_files()  # a run in flight holds a connection: open files must not bound it
    if files is not None and files < 4096:
        log.warning("at most %d open files: runs in flight are bounded by them", files)
    store_channel = channels.dial(settings, "store")
    tooling_channel = channels.dial(settings, "tooling")
    credential = InternalCredential(settings.internal_secret, Role.RUNNER)
    providers = build_providers(settings, clusters, os.environ)
    bedrock = next((p for p in providers.values() if isinstance(p, BedrockProvider)), None)
    store = StoreClient(store_channel, credential)
    name = runner_name(settings, bind)
    runner_id = f"{name}/{uuid.uuid4().hex[:12]}"  # this incarnation
    executor = Executor(
        store,
        ToolRouterClient(tooling_channel, credential),
        providers,
        runner_id,
        settings.catalogue,
    )
    worker = Worker(
        store,
        executor,
        name,
        runner_id,
        Capacity(settings.runner_concurrency, budget_bytes(settings.runner_memory_mb)),
        settings.runner_lease_seconds,
        settings.runner_renew_batch,
        clusters=[c.name for c in clusters] if settings.runner_clusters else (),
        limits={c.name: c.runner_concurrency for c in clusters if c.runner_concurrency},
        known=list(settings.catalogue.clusters),
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
