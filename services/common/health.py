"""`parley health`: is a Parley service serving? A probe with a short deadline, for Docker's
HEALTHCHECK, a Kubernetes exec probe or an operator.

gRPC services answer `grpc.health.v1` Check for their own service name; the gateway answers
`GET /healthz` (200 only while its API answers). Health checking carries no credential: probes
come from Docker, the kubelet and load balancers, which hold none.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass

from agents.v1 import (
    conversation_service_pb2,
    runner_service_pb2,
    store_service_pb2,
    tool_router_service_pb2,
)

from services.common.config import Settings

# Each gRPC service: the health service name it answers for, and its address setting.
_GRPC = {
    "api": (conversation_service_pb2, "ConversationService", "api_addr"),
    "store": (store_service_pb2, "StoreService", "store_addr"),
    "runner": (runner_service_pb2, "RunnerService", "runner_addr"),
    "tooling": (tool_router_service_pb2, "ToolRouterService", "tooling_addr"),
}
SERVICES = (*_GRPC, "gateway")


@dataclass(frozen=True)
class Probe:
    service: str
    addr: str
    serving: bool
    status: str  # SERVING, NOT_SERVING, or what went wrong

    def line(self) -> str:
        return f"{self.service} {self.addr}: {self.status}"


def health_service_name(service: str) -> str:
    module, name, _ = _GRPC[service]
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


def local_addr(settings: Settings, service: str) -> str:
    """Where `parley serve <service>` listens on this host: PARLEY_HOST (loopback for a wildcard)
    and the port of the first address in the service's own setting (the gateway: PARLEY_HTTP_PORT).
    A probe inside a container asks that container's process, never a load-balanced name."""
    if service == "gateway":
        port = settings.http_port
    else:
        first = getattr(settings, _GRPC[service][2]).split(",")[0].strip()
        port = int(first.rpartition(":")[2])
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(service: str, addr: str, timeout_s: float) -> Probe:
    serving, status = (
        _http_healthz(addr, timeout_s)
        if service == "gateway"
        else _grpc_check(health_service_name(service), addr, timeout_s)
    )
    return Probe(service, addr, serving, status)


def probe_local(settings: Settings, timeout_s: float) -> list[Probe]:
    """Every service listening on this host's Parley ports (a port that refuses connections
    serves nothing here and is left out): what a one-service container serves, or all of them
    under `parley up`."""
    probes = []
    for service in SERVICES:
        addr = local_addr(settings, service)
        host, port = _split(addr)
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except ConnectionRefusedError:
            continue
        except OSError as exc:
            probes.append(Probe(service, addr, False, _reason(exc)))
            continue
        probes.append(probe(service, addr, timeout_s))
    return probes


def _grpc_check(service_name: str, addr: str, timeout_s: float) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service_name), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            return False, f"{exc.code().name} ({' '.join((exc.details() or '').split())})"
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    return serving, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _http_healthz(addr: str, timeout_s: float) -> tuple[bool, str]:
    host, port = _split(addr)
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
    except OSError as exc:
        return False, _reason(exc)
    finally:
        connection.close()
    if response.status == 200:
        return True, "SERVING"
    return False, f"HTTP {response.status} from /healthz"


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _reason(exc: OSError) -> str:
    return f"{type(exc).__name__} ({exc})"
