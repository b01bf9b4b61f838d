"""Server-streaming RPCs as Server-Sent Events (`text/event-stream`), generically.

The request is transcoded like a unary one (path, query). `Last-Event-ID` fills `after_seq` when
the query does not. Each streamed message becomes one event: `event:` its `type` and `id:` its
`seq` (when it has them), `data:` its JSON through the codec. Errors before the first message
are ordinary problem+json answers; once the stream has started, an error ends it with an
`event: error` carrying the problem. The response ends with an event of a type the message
declares terminal (`StreamEventType.terminal`: the run's terminal events), in that event's write,
or else when the RPC's stream ends. A client that goes away cancels the RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from gateway import codec, descriptors, problems
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
        # The event types the stream ends with: the response ends with them too.
        self.terminal = frozenset(
            e.name for e in descriptors.event_types(info.method.output_type) if e.terminal
        )

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
        stream = _Response(request)
        watcher = asyncio.create_task(_watch(stream, call))
        OPEN_EVENT_STREAMS.inc()
        try:
            await self._relay(stream, call)
        finally:
            OPEN_EVENT_STREAMS.dec()
            watcher.cancel()
            call.cancel()

    async def _relay(self, stream: _Response, call: Any) -> None:
        """Each message as it is read (one await per event: the watcher, not a wait on several
        futures, looks after the client and quiet periods)."""
        request = stream.request
        try:
            while True:
                try:
                    item = await call.read()
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if stream.disconnected and not (current and current.cancelling()):
                        return  # the watcher cancelled the call: the client went away
                    raise
                if item is grpc.aio.EOF:
                    break
                if self.has_event and getattr(item, EVENT_FIELD) in self.terminal:
                    await stream.emit(_frame(item, self.has_id, self.has_event), more=False)
                    return
                await stream.emit(_frame(item, self.has_id, self.has_event))
        except grpc.aio.AioRpcError as exc:
            problem = problems.from_rpc_error(exc, request.request_id)
            if not stream.started:
                raise ProblemError(problem) from None
            await stream.emit(b"event: error\ndata: " + request.problem_body(problem) + b"\n\n")
        await stream.emit(b"", more=False)


class _Response:
    """The event stream's HTTP response: started on its first write, ended by the last."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.started = False
        self.ended = False
        self.disconnected = False
        self.last_write = asyncio.get_running_loop().time()

    async def emit(self, body: bytes, more: bool = True) -> None:
        if self.ended:
            return
        self.ended = not more
        self.last_write = asyncio.get_running_loop().time()
        if not self.started:
            self.started = True
            await self.request.send(
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
        await self.request.send({"type": "http.response.body", "body": body, "more_body": more})


async def _watch(stream: _Response, call: Any) -> None:
    """Beside the relay: a comment line after KEEPALIVE_S without a write keeps proxies from
    timing the stream out, and a client that goes away cancels the call (ending the relay). The
    wait is bounded by `asyncio.timeout`, not `wait_for`, which would wrap each receive in a task
    of its own (one more per stream: with thousands of runs in flight it shows)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):
        while True:
            quiet = stream.last_write + KEEPALIVE_S - loop.time()
            try:
                async with asyncio.timeout(max(quiet, 0.0)):
                    message = await stream.request.receive()
            except TimeoutError:
                if loop.time() - stream.last_write >= KEEPALIVE_S:
                    await stream.emit(b": keep-alive\n\n")
                continue
            if message["type"] == "http.disconnect":
                stream.disconnected = True
                call.cancel()
                return


def _frame(message: Any, has_id: bool, has_event: bool) -> bytes:
    head = b""
    if has_event:
        name = str(getattr(message, EVENT_FIELD))
        if name and "\n" not in name and "\r" not in name:
            head = b"event: " + name.encode() + b"\n"
    if has_id:
        head += b"id: " + str(getattr(message, ID_FIELD)).encode() + b"\n"
    return head + b"data: " + codec.to_json(message) + b"\n\n"


def stream_handler(info: MethodInfo, channel: grpc.aio.Channel, settings: Any) -> Handler:
    """The `StreamHandlerFactory` the gateway uses for server-streaming methods."""
    return SseTranscoder(info, channel, settings.max_body_bytes)
