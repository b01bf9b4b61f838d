"""Builds a grpc.aio server the way every Parley service needs it: health checking, reflection,
metrics, the one check of internal credentials (every call of an internal service, against
internal_auth's table of roles), and one place where exceptions become statuses (ParleyError ->
catalogued status, anything else -> InternalError with a log_id; the caller never sees a
traceback). Reflection describes only the listener's own services."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import inprocess, internal_auth, reflection, tracing
from services.common.errors import ParleyError
from services.common.metrics import (
    GRPC_HANDLED,
    GRPC_MSG_RECEIVED,
    GRPC_MSG_SENT,
    GRPC_SECONDS,
    GRPC_STARTED,
)

log = logging.getLogger("parley.grpc")

REQUEST_ID_KEY = "x-request-id"
# Initial metadata a method sets to answer with another HTTP status than its success_status
# option (StartRun's idempotent replay answers 200 instead of 202). Read by the gateway.
HTTP_STATUS_KEY = "x-parley-http-status"


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    """One invocation-metadata value (keys are lower-case on the wire)."""
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return str(value)
    return None


def request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return metadata_value(context, REQUEST_ID_KEY) or uuid.uuid4().hex


class _Interceptor(grpc.aio.ServerInterceptor):
    """Wraps each of our methods' handlers once, on its first call; later calls reuse it."""

    def __init__(self, internal_secret: str) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._internal_secret = internal_secret

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/agents."):
            return handler  # health and reflection: not ours to wrap
        service, _, method = details.method[1:].rpartition("/")
        guard = _Guard(self._internal_secret, details.method)
        if handler.unary_unary:
            wrapped = grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, service, method, guard),
                handler.request_deserializer,
                handler.response_serializer,
            )
        elif handler.unary_stream:
            wrapped = grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, service, method, guard),
                handler.request_deserializer,
                handler.response_serializer,
            )
        elif handler.stream_unary:  # none yet; wrapped all the same, so none escapes the guard
            wrapped = grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, service, method, guard),
                handler.request_deserializer,
                handler.response_serializer,
            )
        else:
            assert handler.stream_stream is not None  # a handler has one of the four behaviours
            wrapped = grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, service, method, guard),
                handler.request_deserializer,
                handler.response_serializer,
            )
        self._wrapped[details.method] = wrapped
        return wrapped


class _Outcome:
    """Times one method's calls, turns a failure into a status, and records both once a call
    ends. Inline in each wrapper rather than an async context manager: that costs a generator
    and two awaits per call."""

    def __init__(self, service: str, method: str, grpc_type: str) -> None:
        self.service, self.method, self.type = service, method, grpc_type
        self.seconds = GRPC_SECONDS.labels(grpc_type, service, method)
        self.started = GRPC_STARTED.labels(grpc_type, service, method)
        self.received = GRPC_MSG_RECEIVED.labels(grpc_type, service, method)
        self.sent = GRPC_MSG_SENT.labels(grpc_type, service, method)
        self.handled: dict[str, Any] = {}

    def start(self) -> float:
        self.started.inc()
        self.received.inc()  # every method here takes one request message
        return time.perf_counter()

    def aborted(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        status = context.code()
        return status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"

    def failure(
        self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[str, Any]:
        """The code to record and the status to abort with (ParleyError: its catalogued one;
        anything else is a bug: InternalError with a log_id)."""
        error = exc if isinstance(exc, ParleyError) else self._internal(exc, context)
        return error.entry.grpc_code.name, error.to_grpc_status()

    def end(self, code: str, started: float) -> None:
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = GRPC_HANDLED.labels(
                self.type, self.service, self.method, code
            )
        counter.inc()
        self.seconds.observe(time.perf_counter() - started)

    def _internal(self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> ParleyError:
        log_id = request_id(context)
        log.exception(
            "unhandled error in %s/%s (log_id %s)", self.service, self.method, log_id, exc_info=exc
        )
        return ParleyError("InternalError", f"internal error; log_id {log_id}", log_id=log_id)


class _Guard:
    """The internal-credential check of one method (nothing to check on a public one)."""

    def __init__(self, secret: str, method: str) -> None:
        self.secret, self.method = secret, method
        self.internal = internal_auth.is_internal(method)

    def check(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.internal:
            authorization = metadata_value(context, internal_auth.AUTHORIZATION_KEY)
            internal_auth.authorize(self.secret, self.method, authorization)


def _wrap_unary(
    behaviour: Callable[..., Any], service: str, method: str, guard: _Guard
) -> Callable[..., Any]:
    outcome = _Outcome(service, method, "unary")

    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started, code = outcome.start(), "OK"
        try:
            guard.check(context)
            reply = await behaviour(request, context)
            outcome.sent.inc()
            return reply
        except grpc.aio.AbortError:
            code = outcome.aborted(context)
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into INTERNAL
            code, answer = outcome.failure(exc, context)
            await context.abort(answer.code, answer.details, answer.trailing_metadata)
        finally:
            outcome.end(code, started)

    if tracing.ENABLED:
        return _traced_unary(wrapper, service, method, guard.internal)
    return wrapper


def _wrap_stream(
    behaviour: Callable[..., Any], service: str, method: str, guard: _Guard
) -> Callable[..., Any]:
    outcome = _Outcome(service, method, "server_stream")

    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started, code = outcome.start(), "OK"
        try:
            guard.check(context)
            sent = outcome.sent
            async for item in behaviour(request, context):
                sent.inc()
                yield item
        except grpc.aio.AbortError:
            code = outcome.aborted(context)
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into INTERNAL
            code, answer = outcome.failure(exc, context)
            await context.abort(answer.code, answer.details, answer.trailing_metadata)
        finally:
            outcome.end(code, started)

    if tracing.ENABLED:
        return _traced_stream(wrapper, service, method, guard.internal)
    return wrapper


# --- tracing (only when on: tracing.ENABLED at start) ------------------------------------------
# A server span per call, child of the caller's `traceparent` metadata. Internal calls without
# one (claims, lease renewals, work watches: a runner's housekeeping) open none, or every long
# poll would be a trace of its own.


def _server_span(
    context: grpc.aio.ServicerContext[Any, Any], service: str, method: str, internal: bool
) -> contextlib.AbstractContextManager[Any]:
    incoming = metadata_value(context, tracing.TRACEPARENT)
    if internal and tracing.parse(incoming) is None:
        return contextlib.nullcontext()
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    return tracing.span(
        f"{service}/{method}", attributes, parent=tracing.extract(incoming), kind="server"
    )


def _record_code(current: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    code = context.code()
    if current is None or not isinstance(code, grpc.StatusCode):
        return
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if code not in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.CANCELLED):
        tracing.fail(current, code.name, str(context.details() or ""))


def _traced_unary(
    wrapper: Callable[..., Any], service: str, method: str, internal: bool
) -> Callable[..., Any]:
    async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _server_span(context, service, method, internal) as current:
            try:
                return await wrapper(request, context)
            finally:
                _record_code(current, context)

    return traced


def _traced_stream(
    wrapper: Callable[..., Any], service: str, method: str, internal: bool
) -> Callable[..., Any]:
    async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _server_span(context, service, method, internal) as current:
            try:
                async for item in wrapper(request, context):
                    yield item
            finally:
                _record_code(current, context)

    return traced


class _Health(health.aio.HealthServicer):  # type: ignore[misc]
    """grpcio-health-checking's servicer, with the List method its aio version lacks (there,
    a List answered UNIMPLEMENTED and logged a NotImplementedError traceback)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        statuses = {
            name: health_pb2.HealthCheckResponse(status=status)
            for name, status in self._server_status.items()
        }
        return health_pb2.HealthListResponse(statuses=statuses)


@dataclass
class Running:
    """A started service: what `parley up`, `parley serve` and the tests hold on to."""

    name: str
    port: int
    stop: Callable[[], Awaitable[None]]
    internal_port: int = 0  # the api: its StoreService listener (apart from the public one)


# gRPC core queues calls the application has not taken yet, and past `max_pending_requests`
# (default 1,000) it sheds them at random with CANCELLED: a burst of 2,000 StartRuns through the
# gateway lost ~10 % that way (tests/bench's in-flight cell). Every call here carries a deadline
# (the gateway's, the runner's), which bounds a backlog better than shedding does.
#
# A connection is retired after about a minute (GOAWAY: its open calls and streams finish on it,
# new ones go to a new connection), so a client dialing a dns:/// name resolves it again and
# reaches the replicas added since: gRPC re-resolves only when a connection goes away.
#
# gRPC's default 4 MB limit on a received message would fail a StartRun carrying images and
# documents (up to 32 MiB) inside Parley, and the claim of a conversation whose history holds them
# (a run's whole history rides in one ClaimRun answer): Parley's servers and channels take more.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_connection_age_ms", 60_000),
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    *CHANNEL_OPTIONS,
]


async def start_server(
    bind: str,
    registrations: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any]],
    service_names: Sequence[str],
    *,
    internal_secret: str = "",
    tls: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start a server on `bind` (port 0 picks one); returns it and the bound port. Internal
    methods it serves need a credential signed with `internal_secret` (none: all refused)."""
    interceptors = [_Interceptor(internal_secret)]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    for add, servicer in registrations:
        add(servicer, server)
    health_servicer = _Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable([*service_names, health.SERVICE_NAME], server)
    try:
        port = server.add_secure_port(bind, tls) if tls else server.add_insecure_port(bind)
    except RuntimeError:  # grpcio's way of saying the address is taken or invalid
        port = 0
    if port == 0:
        raise SystemExit(
            f"cannot listen on {bind} for {', '.join(service_names)}: the address is in use "
            "or invalid (see PARLEY_HOST and PARLEY_API_ADDR / PARLEY_STORE_ADDR / "
            "PARLEY_RUNNER_ADDR / PARLEY_TOOLING_ADDR)"
        )
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    # Callers in this process reach these servicers in process (inprocess.py), through the same
    # interceptors, until the server stops: from then on they go over gRPC like everyone else.
    listener = inprocess.register(bind, port, registrations, interceptors)
    stop = server.stop

    async def stop_serving(grace: float | None) -> None:
        inprocess.unregister(listener)
        await stop(grace)

    server.stop = stop_serving  # type: ignore[method-assign]
    return server, port
