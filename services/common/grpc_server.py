"""Builds a grpc.aio server the way every Parley service needs it: health checking, reflection,
metrics, and one place where exceptions become statuses (ParleyError -> catalogued status,
anything else -> InternalError with a log_id; the caller never sees a traceback)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.errors import ParleyError
from services.common.metrics import GRPC_HANDLED, GRPC_SECONDS

log = logging.getLogger("parley.grpc")

REQUEST_ID_KEY = "x-request-id"
# Initial metadata a method sets to answer with another HTTP status than its success_status
# option (StartRun's idempotent replay answers 200 instead of 202). Read by the gateway.
HTTP_STATUS_KEY = "x-parley-http-status"


def request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            return str(value)
    return uuid.uuid4().hex


async def _abort(context: grpc.aio.ServicerContext, error: ParleyError) -> None:
    status = error.to_grpc_status()
    await context.abort(status.code, status.details, status.trailing_metadata)


class _Interceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/agents."):
            return handler  # health and reflection: not ours to wrap
        service, _, method = details.method[1:].rpartition("/")
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, service, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, service, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler


def _code_of(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


async def _handle_failure(
    exc: BaseException, context: grpc.aio.ServicerContext, service: str, method: str
) -> str:
    if isinstance(exc, ParleyError):
        await _abort(context, exc)
    log_id = request_id(context)
    log.exception("unhandled error in %s/%s (log_id %s)", service, method, log_id, exc_info=exc)
    await _abort(
        context, ParleyError("InternalError", f"internal error; log_id {log_id}", log_id=log_id)
    )
    return "INTERNAL"  # not reached: abort raises


def _record(service: str, method: str, code: str, started: float) -> None:
    GRPC_HANDLED.labels(service, method, code).inc()
    GRPC_SECONDS.labels(service, method).observe(time.perf_counter() - started)


def _wrap_unary(behaviour: Callable[..., Any], service: str, method: str) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, code = time.perf_counter(), "OK"
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            code = _code_of(context)
            raise
        except ParleyError as exc:
            code = exc.entry.grpc_code.name
            await _abort(context, exc)
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into INTERNAL
            code = "INTERNAL"
            await _handle_failure(exc, context, service, method)
        finally:
            _record(service, method, code, started)

    return wrapper


def _wrap_stream(behaviour: Callable[..., Any], service: str, method: str) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, code = time.perf_counter(), "OK"
        try:
            async for item in behaviour(request, context):
                yield item
        except grpc.aio.AbortError:
            code = _code_of(context)
            raise
        except ParleyError as exc:
            code = exc.entry.grpc_code.name
            await _abort(context, exc)
        except Exception as exc:  # noqa: BLE001
            code = "INTERNAL"
            await _handle_failure(exc, context, service, method)
        finally:
            _record(service, method, code, started)

    return wrapper


@dataclass
class Running:
    """A started service: what `parley up`, `parley serve` and the tests hold on to."""

    name: str
    port: int
    stop: Callable[[], Awaitable[None]]


async def start_server(
    bind: str,
    registrations: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any]],
    service_names: Sequence[str],
) -> tuple[grpc.aio.Server, int]:
    """Start a server on `bind` (port 0 picks one); returns it and the bound port."""
    server = grpc.aio.server(interceptors=[_Interceptor()], options=[("grpc.so_reuseport", 0)])
    for add, servicer in registrations:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(bind)
    if port == 0:
        raise SystemExit(f"cannot bind gRPC server to {bind}")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port
