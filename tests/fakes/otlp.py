"""A fake OpenTelemetry Collector: the OTLP/HTTP traces receiver (`POST /v1/traces`), on loopback.

It refuses what a Collector refuses: another path (404), another method (405), a body that is not
`application/x-protobuf` (415: Parley exports protobuf) and a body that does not decode as an
`ExportTraceServiceRequest` (400). What it accepts is kept as flat `Span`s, and `wait_for` wakes
on each export (a condition, not a poll).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.mcp_servers import serve

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Span:
    service: str  # the resource's service.name
    name: str
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str  # "" for a root
    kind: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@dataclass
class Collector:
    url: str = ""  # the base URL: OTEL_EXPORTER_OTLP_ENDPOINT
    spans: list[Span] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # statuses of refused exports
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            if request.headers.get("content-type", "").split(";")[0].strip() != PROTOBUF:
                return self._refuse(415)
            try:
                export = trace_service_pb2.ExportTraceServiceRequest.FromString(
                    await request.body()
                )
            except DecodeError:
                return self._refuse(400)
            got = []
            for resource_spans in export.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if len(span.trace_id) != 16 or len(span.span_id) != 8:
                            return self._refuse(400)
                        got.append(
                            Span(
                                service,
                                span.name,
                                span.trace_id.hex(),
                                span.span_id.hex(),
                                span.parent_span_id.hex(),
                                span.kind,
                                {a.key: _value(a.value) for a in span.attributes},
                                span.status.code,
                            )
                        )
            with self._changed:
                self.spans += got
                self._changed.notify_all()
            body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            return Response(body, media_type=PROTOBUF)

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def _refuse(self, status: int) -> Response:
        with self._changed:
            self.refused.append(status)
            self._changed.notify_all()
        return Response(b"", status_code=status)

    def of_trace(self, trace_id: str) -> list[Span]:
        with self._changed:
            return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, done: Callable[[Collector], bool], deadline_s: float = 30.0) -> None:
        """Until `done(self)` holds after an export (AssertionError at the deadline)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: done(self), timeout=deadline_s)

        if not await asyncio.to_thread(wait):
            names = sorted({s.name for s in self.spans})
            raise AssertionError(f"the collector did not get the spans in time; it has {names}")


@asynccontextmanager
async def serve_collector() -> AsyncIterator[Collector]:
    collector = Collector()
    async with serve(collector.app(), path="") as url:
        collector.url = url.rstrip("/")
        yield collector
