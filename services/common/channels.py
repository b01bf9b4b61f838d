"""gRPC channels between Parley's processes: one per service, dialing every address its setting
names (addresses.py), balanced by gRPC's own `round_robin` policy with client-side health
checking (`healthCheckConfig`: a grpc.health.v1 Watch stream on each backend). A backend that
stops, or reports NOT_SERVING while it drains, gets no new calls once the channel has noticed;
a `dns:///` name is resolved again when one of its backends goes away.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
from agents.v1 import (
    conversation_service_pb2,
    runner_service_pb2,
    store_service_pb2,
    tool_router_service_pb2,
)

from services.common import addresses, inprocess, internal_tls, tracing
from services.common.config import Settings
from services.common.grpc_server import CHANNEL_OPTIONS
from services.common.internal_auth import PUBLIC_SERVICES

# Each of Parley's gRPC services: its full name (the name its health is checked by too) and the
# setting that addresses it.
SERVICES: dict[str, tuple[str, str]] = {
    short: (str(module.DESCRIPTOR.services_by_name[name].full_name), setting)
    for short, module, name, setting in (
        ("api", conversation_service_pb2, "ConversationService", "api_addr"),
        ("store", store_service_pb2, "StoreService", "store_addr"),
        ("runner", runner_service_pb2, "RunnerService", "runner_addr"),
        ("tooling", tool_router_service_pb2, "ToolRouterService", "tooling_addr"),
    )
}


def service_name(service: str) -> str:
    return SERVICES[service][0]


def address_setting(settings: Settings, service: str) -> str:
    return str(getattr(settings, SERVICES[service][1]))


def service_config(service: str) -> str:
    """Round-robin over the backends whose health check of `service` answers SERVING."""
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
    }
    return json.dumps(config)


def open_channel(
    setting: str,
    service: str,
    credentials: grpc.ChannelCredentials | None = None,
    *,
    interceptors: Sequence[Any] | None = None,
    in_process: bool = False,
) -> grpc.aio.Channel:
    """A channel to every address of `setting` that serves `service` (a full service name). A
    list's authority (the host TLS checks certificates against) is its first address.
    `in_process` (PARLEY_IN_PROCESS): calls to a listener of this very process skip the wire
    (inprocess.py); the rest, and every call when it is off, go over gRPC."""
    parsed = addresses.parse(setting)
    target = parsed.target
    options = [*CHANNEL_OPTIONS, ("grpc.service_config", service_config(service))]
    if parsed.listed:
        options.append(("grpc.default_authority", parsed.first))
    if tracing.ENABLED:  # every hop carries the caller's traceparent
        interceptors = [*(interceptors or ()), *tracing.client_interceptors()]
    if credentials is None:
        channel = grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    else:
        channel = grpc.aio.secure_channel(
            target, credentials, options=options, interceptors=interceptors
        )
    if in_process:
        return inprocess.Channel(channel, setting)  # type: ignore[return-value]
    return channel


def dial(settings: Settings, service: str) -> grpc.aio.Channel:
    """A channel to `service` ("api", "store", "runner", "tooling") at its configured addresses:
    internal services over mutual TLS when it is configured, plaintext otherwise."""
    name = service_name(service)
    credentials = None if name in PUBLIC_SERVICES else internal_tls.channel_credentials(settings)
    return open_channel(
        address_setting(settings, service), name, credentials, in_process=settings.in_process
    )
