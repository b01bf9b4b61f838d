"""OpenTelemetry tracing: W3C `traceparent` in and out, spans named by the GenAI conventions, OTLP
export configured by the standard OTEL_* variables.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and then
free: no SDK is imported, no interceptor is installed and every hook below tests `ENABLED` first
(a module global, read without a call). On, one TracerProvider per process exports in batches
(OTLP/HTTP protobuf, from a background thread: never on the event loop).

Each run keeps the traceparent of the StartRun that created it (`runs.traceparent`): every runner
that claims it, a later one after a lost lease too, opens its `invoke_agent` span under it, so a
run's whole path is one trace. With tracing off the caller's traceparent is still kept (or a new
one made), so the run's `trace_id` always names the trace a client or a log line can look for.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("parley.tracing")

ENABLED = False  # set once per process by configure()
TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

_tracer: Any = None
_provider: Any = None
_propagator: Any = None


def exporting(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for trace export (the SDK's own switches honoured)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def configure(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the exporting TracerProvider when the environment asks for it; True when on.
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override `service_name` as usual."""
    global ENABLED, _tracer, _provider, _propagator  # noqa: PLW0603 - one setup per process
    env = os.environ if environ is None else environ
    if ENABLED or not exporting(env):
        return ENABLED
    protocol = env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol.strip() not in ("", "http/protobuf"):
        raise SystemExit(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Parley exports traces over http/protobuf "
            "only (an OpenTelemetry Collector receives both on its OTLP ports)"
        )
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from services.common.version import VERSION

    resource = Resource.create({"service.name": service_name, "service.version": VERSION})
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _tracer = trace.get_tracer("parley", VERSION)
    _propagator = TraceContextTextMapPropagator()
    ENABLED = True
    log.info("tracing on: spans exported over OTLP/HTTP")
    return True


def shutdown() -> None:
    """Export what is left (at a stop)."""
    if _provider is not None:
        _provider.shutdown()


def tracer() -> Any:
    return _tracer


# --- traceparent ------------------------------------------------------------------------------


def parse(traceparent: str | None) -> tuple[str, str, str] | None:
    """(trace id, span id, flags) of a valid W3C traceparent (version 00), else None."""
    if not traceparent:
        return None
    found = _TRACEPARENT.match(traceparent.strip().lower())
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    return found.group(1), found.group(2), found.group(3)


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id a run's kept traceparent names (Run.trace_id), or None."""
    parsed = parse(traceparent)
    return parsed[0] if parsed else None


def current_traceparent() -> str | None:
    """The traceparent of the span current here, when tracing is on and one is."""
    if not ENABLED:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def run_traceparent(incoming: str | None) -> str:
    """What a new run keeps: the current span's (tracing on), else the caller's traceparent,
    else a new trace of its own (not sampled: nobody asked to record it)."""
    current = current_traceparent()
    if current is not None:
        return current
    if parse(incoming) is not None:
        return str(incoming).strip().lower()
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's traceparent to outgoing HTTP headers (a no-op when off)."""
    if ENABLED:
        value = current_traceparent()
        if value is not None:
            headers[TRACEPARENT] = value


def extract(traceparent: str | None) -> Any:
    """An OpenTelemetry Context whose parent is `traceparent` (None: a new trace)."""
    if parse(traceparent) is None:
        return None
    return _propagator.extract({TRACEPARENT: traceparent})


# --- spans ------------------------------------------------------------------------------------


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Any = None,
    kind: str = "internal",
) -> Iterator[Any]:
    """A span current inside the block (None when tracing is off). An exception marks it
    ERROR with its type; the span ends with the block."""
    if not ENABLED:
        yield None
        return
    from opentelemetry import trace

    span_kind = {
        "internal": trace.SpanKind.INTERNAL,
        "server": trace.SpanKind.SERVER,
        "client": trace.SpanKind.CLIENT,
    }[kind]
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=span_kind,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            fail(current, type(exc).__name__)
            raise


def fail(current: Any, error_type: str, message: str = "") -> None:
    """Mark a span failed (OpenTelemetry's `error.type` and an ERROR status)."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("error.type", error_type)
    current.set_status(Status(StatusCode.ERROR, message or error_type))


def set_attributes(current: Any, attributes: Mapping[str, Any]) -> None:
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


# --- gRPC ----------------------------------------------------------------------------------


def client_interceptors() -> Sequence[Any]:
    """Channel interceptors that send the current traceparent as metadata ([] when off)."""
    if not ENABLED:
        return []
    import grpc

    def with_traceparent(details: Any) -> Any:
        value = current_traceparent()
        if value is None:
            return details
        metadata = [*(details.metadata or ()), (TRACEPARENT, value)]
        return details._replace(metadata=metadata)

    class Unary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return await continuation(with_traceparent(details), request)

    class Stream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(
            self, continuation: Any, details: Any, request: Any
        ) -> Any:
            return await continuation(with_traceparent(details), request)

    return [Unary(), Stream()]
