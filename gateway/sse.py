"""Server-streaming RPCs as Server-Sent Events (`text/event-stream`), generically.

The request is transcoded like a unary one (path, query). `Last-Event-ID` fills `after_seq` when
the query does not. Each streamed message becomes one event: `event:` its `type` and `id:` its
`seq` (when it has them), `data:` its JSON through the codec. Errors before the first message
are ordinary problem+json answers; once the stream has started, an error ends it with an
`event: error` carrying the problem. The response ends when the RPC's stream ends (for run
events: after the terminal event). A client that goes away cancels the RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from gateway import codec, problems
from gateway.routes import (
    DEFAULT_DEADLINE_S,
    Handler,
    MethodInfo,
    ProblemError,
    Request,
    Transcoder,
    invalid_request,
)
from services.common.metrics import OPEN_EVENT_STREAMS

CONTENT_TYPE = b"text/event-stream; charset=utf-8"
RESUME_FIELD = "after_seq"
ID_FIELD = "seq"
EVENT_FIELD = "type"
KEEPALIVE_S = 15.0


class SseTranscoder(Transcoder):
    def __init__(self, info: MethodInfo, channel: grpc.aio.Channel, max_body_bytes: int) -> None:
        super().__init__(info, channel, max_body_bytes, DEFAULT_DEADLINE_S)
        self.stream = channel.unary_stream(
            info.full_name,
            request_serializer=self.request_cls.SerializeToString,
            response_deserializer=self.response_cls.FromString,
        )
        # Last-Event-ID fills this field (a scalar of the request), when the method has one.
        self.resume_chain = codec.resolve_param(info.method.input_type, RESUME_FIELD)
        # Each event's `id:` and `event:` are these fields of the streamed message, if it has them.
        fields = info.method.output_type.fields_by_name
        self.has_id = ID_FIELD in fields
        self.has_event = EVENT_FIELD in fields

    async def __call__(self, request: Request) -> None:
        message = await self.decode(request)
        last_id = request.header(b"last-event-id")
        if self.resume_chain and last_id and not message.HasField(RESUME_FIELD):
            try:
                codec.set_param(
                    message, self.resume_chain, [last_id.strip()], "header 'Last-Event-ID'"
                )
            except codec.DecodeError as exc:
                raise invalid_request(exc) from None
        # No deadline: the stream lasts as long as the run.
        call = self.stream(message, metadata=request.call_metadata())
        disconnected = asyncio.create_task(_disconnect(request))
        OPEN_EVENT_STREAMS.inc()
        try:
            await self._relay(request, call, disconnected)
        finally:
            OPEN_EVENT_STREAMS.dec()
            disconnected.cancel()
            call.cancel()

    async def _relay(self, request: Request, call: Any, disconnected: asyncio.Task[None]) -> None:
        started = False

        async def emit(body: bytes, more: bool = True) -> None:
            nonlocal started
            if not started:
                await self._start(request)
                started = True
            await request.send({"type": "http.response.body", "body": body, "more_body": more})

        read: asyncio.Future[Any] | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait(
                    {read, disconnected}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
                )
                if disconnected in done:
                    read.cancel()
                    return
                if read not in done:  # quiet: a comment line keeps proxies from timing out
                    await emit(b": keep-alive\n\n")
                    continue
                item, read = read.result(), None
                if item is grpc.aio.EOF:
                    break
                await emit(_frame(item, self.has_id, self.has_event))
        except grpc.aio.AioRpcError as exc:
            problem = problems.from_rpc_error(exc, request.request_id)
            if not started:
                raise ProblemError(problem) from None
            await emit(b"event: error\ndata: " + request.problem_body(problem) + b"\n\n")
        await emit(b"", more=False)

    async def _start(self, request: Request) -> None:
        await request.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )


def _frame(message: Any, has_id: bool, has_event: bool) -> bytes:
    head = b""
    if has_event:
        name = str(getattr(message, EVENT_FIELD))
        if name and "\n" not in name and "\r" not in name:
            head = b"event: " + name.encode() + b"\n"
    if has_id:
        head += b"id: " + str(getattr(message, ID_FIELD)).encode() + b"\n"
    return head + b"data: " + codec.to_json(message) + b"\n\n"


async def _disconnect(request: Request) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return


def stream_handler(info: MethodInfo, channel: grpc.aio.Channel, settings: Any) -> Handler:
    """The `StreamHandlerFactory` the gateway uses for server-streaming methods."""
    return SseTranscoder(info, channel, settings.max_body_bytes)
