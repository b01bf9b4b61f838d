"""`parley health`: is a Parley service serving? A probe with a short deadline, for Docker's
HEALTHCHECK, a Kubernetes exec probe or an operator.

gRPC services answer `grpc.health.v1` Check for their own service name; the gateway answers
`GET /healthz` (200 only while its API answers). Health checking carries no credential: probes
come from Docker, the kubelet and load balancers, which hold none (grpc_server checks
credentials on agents.* services only). Under internal TLS the internal listeners (store,
runner, tool router) speak TLS only, so their probe dials with this process's certificate.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass

import grpc

from services.common import addresses, channels, internal_tls
from services.common.config import Settings
from services.common.internal_auth import PUBLIC_SERVICES

SERVICES = (*channels.SERVICES, "gateway")


@dataclass(frozen=True)
class Probe:
    service: str
    addr: str
    serving: bool
    status: str  # SERVING, NOT_SERVING, or what went wrong

    def line(self) -> str:
        return f"{self.service} {self.addr}: {self.status}"


def local_addr(settings: Settings, service: str) -> str:
    """Where `parley serve <service>` listens on this host: PARLEY_HOST (loopback for a wildcard)
    and the port of the first address in the service's own setting (the gateway: PARLEY_HTTP_PORT).
    A probe inside a container asks that container's process, never a load-balanced name."""
    if service == "gateway":
        port = settings.http_port
    else:
        port = _first(settings, service).first_port
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(settings: Settings, service: str, addr: str, timeout_s: float) -> Probe:
    """Probe `service` at `addr` (under internal TLS, its certificate must name addr's host)."""
    return _probe(settings, service, addr, timeout_s, server_name=None)


def probe_here(settings: Settings, service: str, timeout_s: float) -> Probe:
    """Probe the process serving `service` on this host (local_addr). Under internal TLS its
    certificate is checked against the host its clients dial (the service's own setting: `api`
    in dns:///api:50054), as the probe's loopback address is not a name certificates carry."""
    server_name = None
    if service != "gateway":
        server_name = _first(settings, service).first_host or None
    return _probe(settings, service, local_addr(settings, service), timeout_s, server_name)


def _probe(
    settings: Settings, service: str, addr: str, timeout_s: float, server_name: str | None
) -> Probe:
    if service == "gateway":
        serving, status = _http_healthz(addr, timeout_s)
    else:
        name = channels.service_name(service)
        tls = None if name in PUBLIC_SERVICES else internal_tls.channel_credentials(settings)
        serving, status = _grpc_check(name, addr, timeout_s, tls, server_name)
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
        probes.append(probe_here(settings, service, timeout_s))
    return probes


def _first(settings: Settings, service: str) -> addresses.Addresses:
    return addresses.parse(channels.address_setting(settings, service))


def _grpc_check(
    service_name: str,
    addr: str,
    timeout_s: float,
    tls: grpc.ChannelCredentials | None,
    server_name: str | None,
) -> tuple[bool, str]:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls is None:
        channel = grpc.insecure_channel(addr)
    else:
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(addr, tls, options=options)
    with channel:
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
