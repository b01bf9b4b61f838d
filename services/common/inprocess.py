"""The in-process transport: a call from one Parley service to another that listens in the same
process (`parley up`) goes straight to the servicer's handler instead of through HTTP/2 on
loopback (a gRPC hop costs ~0.5 ms of CPU, client and server; a one_tool turn made 9 of them),
the way grpc-java's in-process transport and grpc-go's bufconn do.

It is the same call, not a shortcut around one: the handler is found through the listener's own
server interceptors (the internal-credential check, error mapping and metrics of
grpc_server.py, and any added there), it reads the caller's metadata, the caller's deadline and
cancellation reach it as they would over gRPC, messages are serialised and parsed as on the wire
(so caller and servicer never share an object; with upb it costs microseconds), and a failure
reaches the caller as the same `grpc.aio.AioRpcError` (code, details, trailers with the
google.rpc.Status). Whatever is not served that way goes over the channel's gRPC: health,
reflection, a service of another process, a listener that has stopped (which then answers as a
stopped server does).

`grpc_server.start_server` registers each listener here; `channels.open_channel(…,
in_process=True)` (PARLEY_IN_PROCESS, on by default) returns a `Channel` that looks it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import grpc

from services.common import addresses, tracing

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]  # generic only to the type checker
else:
    Handler = grpc.RpcMethodHandler
_LOCAL_HOSTS = frozenset({"localhost", "0.0.0.0", "::", ""})
STREAM_BUFFER = 16  # messages a stream's handler may run ahead of its reader (gRPC: flow control)


class _CallDetails(NamedTuple):  # grpc.HandlerCallDetails, as a server interceptor sees it
    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


@dataclass
class Listener:
    """One gRPC listener of this process: its handlers and the interceptors its server runs."""

    host: str
    port: int
    handlers: dict[str, Handler]
    interceptors: Sequence[grpc.aio.ServerInterceptor]

    def __post_init__(self) -> None:
        async def lookup(d: Any) -> Handler | None:
            return self.handlers.get(d.method)

        continuation: Callable[[Any], Any] = lookup
        for interceptor in reversed(self.interceptors):
            continuation = _chain(interceptor, continuation)
        self._first = continuation

    async def handler(self, details: _CallDetails) -> Handler | None:
        """The method's handler as the server would run it: through every interceptor."""
        result: Handler | None = await self._first(details)
        return result


def _chain(interceptor: grpc.aio.ServerInterceptor, inner: Callable[[Any], Any]) -> Any:
    async def call(details: Any) -> Any:
        return await interceptor.intercept_service(inner, details)

    return call


_LISTENERS: dict[int, Listener] = {}


class _Recorder:
    """Stands in for a server to a generated `add_*Servicer_to_server`: keeps the handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers come through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


def register(
    bind: str,
    port: int,
    registrations: Sequence[tuple[Callable[[Any, Any], None], Any]],
    interceptors: Sequence[grpc.aio.ServerInterceptor],
) -> Listener:
    recorder = _Recorder()
    for add, servicer in registrations:
        add(servicer, recorder)
    listener = Listener(bind.rpartition(":")[0].strip("[]"), port, recorder.handlers, interceptors)
    _LISTENERS[port] = listener
    return listener


def unregister(listener: Listener) -> None:
    """From now on calls go over gRPC, to a server that is stopping (as a remote caller's do)."""
    if _LISTENERS.get(listener.port) is listener:
        del _LISTENERS[listener.port]


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listener_for(setting: str) -> Callable[[], Listener | None]:
    """How a channel to `setting` finds this process's listener for it at call time: only a
    setting naming one address, on this process's port, and the same or a local host."""
    try:
        parsed = addresses.parse(setting)
    except ValueError:
        return lambda: None
    if parsed.listed or parsed.target.startswith("dns:"):
        return lambda: None  # several backends: gRPC balances them
    host, port = parsed.first_host, parsed.first_port

    def find() -> Listener | None:
        listener = _LISTENERS.get(port)
        if listener is None:
            return None
        if host == listener.host or (_is_local(host) and _is_local(listener.host)):
            return listener
        return None

    return find


# --- the servicer's side of a call ----------------------------------------------------------


class _Context:
    """The part of `grpc.aio.ServicerContext` a handler (and its interceptors) may use."""

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None):
        self._metadata = metadata
        self._deadline = deadline
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.initial: tuple[tuple[str, str | bytes], ...] = ()
        self._cancelled = False

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        if code == grpc.StatusCode.OK:
            code = grpc.StatusCode.UNKNOWN  # as grpc.aio does: an abort is never OK
        self._code, self._details, self._trailing = code, details, tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self.initial = tuple(metadata)

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = tuple(metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self._cancelled

    def peer(self) -> str:
        return "in-process"

    def error(self) -> grpc.aio.AioRpcError | None:
        """The caller's error when the handler set a failing status without raising."""
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return self.failure(self._code, self._details or "")

    def failure(self, code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            code,
            grpc.aio.Metadata(*self.initial),
            grpc.aio.Metadata(*self._trailing),
            details,
            "in-process",
        )

    def aborted(self) -> grpc.aio.AioRpcError:
        return self.failure(self._code or grpc.StatusCode.UNKNOWN, self._details or "")


def _unexpected(context: _Context, exc: Exception) -> grpc.aio.AioRpcError:
    # What grpc.aio's server answers when a handler raises past every interceptor.
    return context.failure(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")


def _deadline_exceeded(context: _Context) -> grpc.aio.AioRpcError:
    return context.failure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


def _unimplemented() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNIMPLEMENTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Method not found!"
    )


def _metadata(metadata: Any) -> tuple[tuple[str, str | bytes], ...]:
    """The call's metadata as the servicer reads it, with the current traceparent added as the
    channel's tracing interceptor would (client interceptors do not run in process)."""
    items = tuple((str(k), v) for k, v in metadata) if metadata else ()
    traceparent = tracing.current_traceparent()
    return items if traceparent is None else (*items, (tracing.TRACEPARENT, traceparent))


class _Codec:
    """Serialise on one side, parse on the other, as the wire would (None: as it is)."""

    def __init__(self, serialize: Callable[[Any], bytes] | None, parse: Any) -> None:
        self.serialize, self.parse = serialize, parse

    def __call__(self, message: Any) -> Any:
        data = self.serialize(message) if self.serialize else message
        return self.parse(data) if self.parse else data


# --- the caller's side ----------------------------------------------------------------------


class _UnaryCall:
    """A `grpc.aio.UnaryUnaryCall`: it starts at once, is awaited for the reply, cancellable."""

    def __init__(self, run: Callable[[_Context], Any], context: _Context) -> None:
        self._context = context
        self._task: asyncio.Task[Any] = asyncio.ensure_future(run(context))

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()

    def cancel(self) -> bool:
        return self._task.cancel()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    async def initial_metadata(self) -> grpc.aio.Metadata:
        if not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
        return grpc.aio.Metadata(*self._context.initial)

    async def code(self) -> grpc.StatusCode:
        try:
            await asyncio.shield(self._task)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        except asyncio.CancelledError:
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.OK


class _StreamCall:
    """A `grpc.aio.UnaryStreamCall`: the handler runs in a task of its own, at most
    STREAM_BUFFER messages ahead of the reader; `read()` ends with grpc.aio.EOF, `cancel()` ends
    both sides."""

    _END = object()

    def __init__(self, run: Callable[..., Any], context: _Context) -> None:
        self._context = context
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = asyncio.Semaphore(STREAM_BUFFER)
        self._task = asyncio.ensure_future(run(context, self._put))
        self._task.add_done_callback(self._ended)
        self._done = False
        self._cancelled_by_caller = False

    async def _put(self, item: Any) -> None:
        await self._room.acquire()
        self._queue.put_nowait(item)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._context._cancelled = True
        else:
            task.exception()  # retrieved: a reader that stopped early raises nothing
        self._queue.put_nowait(self._END)

    async def read(self) -> Any:
        if self._cancelled_by_caller:
            raise asyncio.CancelledError()
        if self._done:
            return grpc.aio.EOF
        item = await self._queue.get()
        if item is not self._END:
            self._room.release()
            return item
        self._done = True
        if self._task.cancelled():
            raise asyncio.CancelledError()
        error = self._task.exception()
        if error is not None:
            raise error
        return grpc.aio.EOF

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            item = await self.read()
            if item is grpc.aio.EOF:
                return
            yield item

    def cancel(self) -> bool:
        """As grpc.aio's: unless the reader has seen the end, reads raise CancelledError."""
        if self._done:
            return False
        self._cancelled_by_caller = True
        self._task.cancel()
        return True

    def cancelled(self) -> bool:
        return self._cancelled_by_caller or self._task.cancelled()

    def done(self) -> bool:
        return self._done or self._cancelled_by_caller

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*self._context.initial)


class _MultiCallable:
    """`channel.unary_unary(method, …)` or `channel.unary_stream(…)`: in process while this
    process serves the method, over the remote channel otherwise. Subclasses say how a call runs."""

    kind = ""  # the channel method a subclass stands for
    call: Any = None  # the call object it answers with

    def __init__(self, channel: Channel, method: str, serialize: Any, parse: Any) -> None:
        self._method = method
        self._remote = getattr(channel.remote, self.kind)(
            method, request_serializer=serialize, response_deserializer=parse
        )
        self._find = channel.find
        self._serialize, self._parse = serialize, parse

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **kwargs: Any,
    ) -> Any:
        listener = self._find()
        if listener is None or self._method not in listener.handlers:
            return self._remote(request, timeout=timeout, metadata=metadata, **kwargs)
        deadline = None if timeout is None else time.monotonic() + timeout
        context = _Context(_metadata(metadata), deadline)
        return type(self).call(self._runner(listener, request, timeout), context)

    def _runner(self, listener: Listener, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    async def _served(self, listener: Listener, context: _Context) -> tuple[Any, _Codec, _Codec]:
        """The servicer's behaviour for this call (through the listener's interceptors), and the
        codecs that carry its request in and its answers out."""
        handler = await listener.handler(_CallDetails(self._method, context.invocation_metadata()))
        behaviour = None if handler is None else getattr(handler, self.kind)
        if handler is None or behaviour is None:
            raise _unimplemented()
        return (
            behaviour,
            _Codec(self._serialize, handler.request_deserializer),
            _Codec(handler.response_serializer, self._parse),
        )


def _failed(context: _Context, exc: Exception) -> BaseException:
    """What the caller sees of an exception out of the servicer, as grpc.aio's server shows it."""
    if isinstance(exc, grpc.aio.AbortError):
        return context.aborted()
    if isinstance(exc, TimeoutError):
        return _deadline_exceeded(context)
    return _unexpected(context, exc)  # past every interceptor: UNKNOWN


def _raise_recorded(context: _Context) -> None:
    """An error the servicer set on its context without raising (`set_code` and return)."""
    error = context.error()
    if error is not None:
        raise error


class _UnaryUnary(_MultiCallable):
    kind, call = "unary_unary", _UnaryCall

    def _runner(self, listener: Listener, request: Any, timeout: float | None) -> Any:
        async def run(context: _Context) -> Any:
            behaviour, inbound, outbound = await self._served(listener, context)
            try:
                async with asyncio.timeout(timeout):
                    reply = await behaviour(inbound(request), context)
            except Exception as exc:  # noqa: BLE001 - mapped as grpc.aio's server maps it
                raise _failed(context, exc) from None
            _raise_recorded(context)
            return outbound(reply)

        return run


class _UnaryStream(_MultiCallable):
    kind, call = "unary_stream", _StreamCall

    def _runner(self, listener: Listener, request: Any, timeout: float | None) -> Any:
        async def run(context: _Context, put: Callable[[Any], Any]) -> None:
            behaviour, inbound, outbound = await self._served(listener, context)
            try:
                async with asyncio.timeout(timeout):
                    async for item in behaviour(inbound(request), context):
                        await put(outbound(item))
            except Exception as exc:  # noqa: BLE001 - mapped as grpc.aio's server maps it
                raise _failed(context, exc) from None
            _raise_recorded(context)

        return run


class Channel:
    """A `grpc.aio.Channel` to one service's setting that serves in process what this process
    listens for, and sends everything else over `remote` (its gRPC channel, which it owns)."""

    def __init__(self, remote: grpc.aio.Channel, setting: str) -> None:
        self.remote = remote
        self.find = _listener_for(setting)

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> Any:
        return _UnaryUnary(self, method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> Any:
        return _UnaryStream(self, method, request_serializer, response_deserializer)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self.remote.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.remote.stream_stream(*args, **kwargs)

    async def close(self, grace: float | None = None) -> None:
        await self.remote.close(grace)

    async def channel_ready(self) -> None:
        await self.remote.channel_ready()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.remote.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.remote.wait_for_state_change(last_observed_state)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)
