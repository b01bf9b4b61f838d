"""One generic endpoint per (HTTP method, google.api.http rule), and the router that picks it.

No endpoint knows any particular RPC: a `Transcoder` is built from a method descriptor and its
rule, matches nothing itself, and turns (path bindings, query, JSON body) into a request message,
calls the method over a shared channel with a generic stub, and renders the reply. The router
tells 404 from 405 (with `Allow`) the way Starlette's `Match.NONE/PARTIAL/FULL` does.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import grpc
from google.api import http_pb2
from google.protobuf import descriptor

from gateway import codec, descriptors, problems
from gateway.http_rule import PathTemplate, parse, split_path
from services.common import tracing
from services.common.grpc_server import HTTP_STATUS_KEY, REQUEST_ID_KEY

log = logging.getLogger("parley.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON = "application/json"
DEFAULT_DEADLINE_S = 30.0
# A GET's JSON body is kept per reply (its wire bytes) when the reply is this small: pollers re-read
# the same finished run, and rendering a Run was ~20 % of a GET's CPU (bounded: entries x size,
# per GET route).
KEPT_REPLIES = 64
KEPT_REPLY_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*\Z")  # what a gRPC metadata value may hold
SCOPE_ROUTE = "parley.route"  # the matched template, for metrics labels


class ProblemError(Exception):
    """Raised by an endpoint to answer with a catalogued problem."""

    def __init__(self, problem: problems.Problem, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(problem.detail)
        self.problem = problem
        self.headers = headers or []


@dataclass
class Request:
    """What an endpoint gets: the ASGI triple plus the router's findings."""

    scope: Scope
    receive: Receive
    send: Send
    bindings: dict[str, str]
    request_id: str
    docs_url: str

    def problem_body(self, problem: problems.Problem) -> bytes:
        """The RFC 7807 body for a failure of this request (also inside an event stream)."""
        return problem.body(self.docs_url, self.scope.get("path", ""), self.request_id)

    def header(self, name: bytes) -> str | None:
        headers: Iterable[tuple[bytes, bytes]] = self.scope.get("headers", ())
        for key, value in headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def call_metadata(self) -> list[tuple[str, str]]:
        """What an RPC on the caller's behalf carries: the request id and the caller's token."""
        metadata = [(REQUEST_ID_KEY, self.request_id)]
        if not tracing.ENABLED:  # on, the channel sends the HTTP span's own
            incoming = self.header(b"traceparent")
            if tracing.parse(incoming) is not None:
                metadata.append((tracing.TRACEPARENT, str(incoming).strip().lower()))
        auth = self.header(b"authorization")
        if auth is not None:
            if not _METADATA_VALUE.match(auth):  # gRPC would refuse to send it at all
                raise ProblemError(
                    problems.catalogued(
                        "Unauthenticated",
                        "the Authorization header holds bytes outside printable ASCII: "
                        "it cannot be a bearer token",
                    )
                )
            metadata.append(("authorization", auth))
        return metadata

    async def body(self, limit: int) -> bytes:
        """The whole body; RequestTooLarge past `limit` bytes (before reading, when declared)."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ConnectionAbortedError("client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def invalid_request(exc: codec.DecodeError) -> ProblemError:
    return ProblemError(problems.catalogued("InvalidRequest", exc.detail))


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        problems.catalogued("RequestTooLarge", f"the request body exceeds {limit} bytes")
    )


Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    http_method: str
    template: PathTemplate
    handle: Handler


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Router:
    """Pure ASGI: request id, matching, and one place that renders failures as problems."""

    def __init__(self, endpoints: list[Endpoint], docs_url: str) -> None:
        # More literal segments first, so `/a/b` wins over `/a/{id}`; otherwise declaration order.
        self.endpoints = sorted(endpoints, key=lambda e: -e.template.literal_count)
        self.docs_url = docs_url
        # The endpoints a path of n segments can match, in that order: most have a fixed length.
        longest = max((len(e.template.segments) for e in self.endpoints), default=0)
        self._by_length = [
            tuple(e for e in self.endpoints if e.template.may_match_length(n))
            for n in range(longest + 1)
        ]
        self._longer = tuple(e for e in self.endpoints if e.template.may_match_length(longest + 1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            endpoint, bindings = self._match(scope)
            scope[SCOPE_ROUTE] = endpoint.template.template
            await endpoint.handle(
                Request(scope, receive, send_with_id, bindings, request_id, self.docs_url)
            )
        except ProblemError as exc:
            if not started:
                await self._problem(scope, send_with_id, exc.problem, request_id, exc.headers)
        except ConnectionAbortedError:
            pass
        except Exception as exc:  # noqa: BLE001 - the one place a gateway bug becomes a 500
            problem = problems.unexpected(exc, request_id)
            if not started:
                await self._problem(scope, send_with_id, problem, request_id)

    def _match(self, scope: Scope) -> tuple[Endpoint, dict[str, str]]:
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        segments = split_path(path.split("?", 1)[0])
        method = scope["method"]
        allowed: list[str] = []
        if segments is not None:
            n = len(segments)
            candidates = self._by_length[n] if n < len(self._by_length) else self._longer
            for endpoint in candidates:
                bindings = endpoint.template.match(segments)
                if bindings is None:
                    continue
                if endpoint.http_method == method:
                    return endpoint, bindings
                allowed.append(endpoint.http_method)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            raise ProblemError(
                problems.catalogued(
                    "MethodNotAllowed", f"{method} is not allowed here; use {allow}"
                ),
                [(b"allow", allow.encode())],
            )
        raise ProblemError(problems.catalogued("RouteNotFound", f"no endpoint has the path {path}"))

    async def _problem(
        self,
        scope: Scope,
        send: Send,
        problem: problems.Problem,
        request_id: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = problem.body(self.docs_url, scope.get("path", ""), request_id)
        await send_bytes(send, problem.status, body, problems.CONTENT_TYPE, headers)


def _request_id(scope: Scope) -> str:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    # A log correlation id, not a secret: 128 random bits without uuid4's urandom system call.
    return f"{random.getrandbits(128):032x}"


# --- transcoding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One (HTTP method, template) of a method's rule or its additional_bindings."""

    http_method: str
    template: PathTemplate
    body: str  # "" (no body), "*" or a top-level field name
    response_body: str  # "" (the whole reply) or a top-level field name


def bindings_of(rule: http_pb2.HttpRule) -> list[Binding]:
    out: list[Binding] = []
    for r in (rule, *rule.additional_bindings):
        kind = r.WhichOneof("pattern")
        if kind is None:
            continue
        if kind == "custom":
            method, path = r.custom.kind.upper(), r.custom.path
        else:
            method, path = kind.upper(), getattr(r, kind)
        out.append(Binding(method, parse(path), r.body, r.response_body))
    return out


@dataclass
class MethodInfo:
    """A reflected RPC with what transcoding needs; shared by routes and openapi."""

    method: descriptor.MethodDescriptor
    binding: Binding
    success_status: int
    full_name: str = field(init=False)
    # Initial metadata key -> the response header it becomes (the RPC's response_headers).
    headers: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        svc = self.method.containing_service.full_name
        self.full_name = f"/{svc}/{self.method.name}"
        self.headers = {
            name.lower(): name.encode() for name in descriptors.response_headers(self.method)
        }


def methods_of(service: descriptor.ServiceDescriptor) -> list[MethodInfo]:
    """Every (method, binding) pair the service's google.api.http rules declare."""
    out: list[MethodInfo] = []
    for method in service.methods:
        rule = descriptors.http_rule(method)
        if rule is None:
            continue
        status = descriptors.success_status(method)
        out.extend(MethodInfo(method, b, status) for b in bindings_of(rule))
    return out


class StreamHandlerFactory(Protocol):
    """The extension point for server-streaming RPCs (e.g. SSE in `gateway/sse.py`)."""

    def __call__(self, info: MethodInfo, channel: grpc.aio.Channel, settings: Any) -> Handler: ...


class Transcoder:
    """The generic endpoint of one unary RPC binding."""

    def __init__(
        self,
        info: MethodInfo,
        channel: grpc.aio.Channel,
        max_body_bytes: int,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> None:
        method = info.method
        self.info = info
        self.binding = info.binding
        self.request_cls = descriptors.message_class(method.input_type)
        self.response_cls = descriptors.message_class(method.output_type)
        self.max_body_bytes = max_body_bytes
        self.deadline_s = deadline_s
        # The reply comes back as its JSON body: parsed and rendered in one step (the gateway
        # reads nothing else of it), or found among the kept ones without either.
        render: Callable[[bytes], bytes] = self.render
        if self.binding.http_method == "GET":
            render = _kept(render)
        self.call = channel.unary_unary(
            info.full_name,
            request_serializer=self.request_cls.SerializeToString,
            response_deserializer=render,
        )
        self.path_chains = {}
        for path in self.binding.template.field_paths:
            chain = codec.resolve_param(method.input_type, path)
            if chain is None:
                raise ValueError(
                    f"{method.full_name}: path variable {path!r} is not a scalar field"
                )
            self.path_chains[path] = chain
        body = self.binding.body
        if body not in ("", "*") and body not in method.input_type.fields_by_name:
            raise ValueError(f"{method.full_name}: body field {body!r} does not exist")
        self.path_tops = frozenset(p.split(".")[0] for p in self.path_chains)
        self.no_query = (
            frozenset({"*"})
            if body == "*"
            else frozenset([*self.path_chains, *([body] if body else [])])
        )

    async def __call__(self, request: Request) -> None:
        message = await self.decode(request)
        call = self.call(message, metadata=request.call_metadata(), timeout=self.deadline_s)
        try:
            body = await call
            initial = await call.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            raise ProblemError(problems.from_rpc_error(exc, request.request_id)) from None
        status = self.info.success_status
        headers: list[tuple[bytes, bytes]] = []
        for key, value in initial or ():
            if key == HTTP_STATUS_KEY and str(value).isdigit():
                status = int(value)
            elif key in self.info.headers:
                headers.append((self.info.headers[key], str(value).encode("latin-1")))
        await send_bytes(request.send, status, body, JSON, headers)

    async def decode(self, request: Request) -> Any:
        message = self.request_cls()
        try:
            for path, text in request.bindings.items():
                codec.set_param(message, self.path_chains[path], [text], f"path parameter {path!r}")
            await self._decode_body(request, message)
            query = request.scope.get("query_string", b"")
            if query:
                pairs = parse_qsl(
                    query.decode("latin-1"), keep_blank_values=True, strict_parsing=False
                )
                codec.fill_query(message, pairs, self.no_query)
        except codec.DecodeError as exc:
            raise invalid_request(exc) from None
        return message

    async def _decode_body(self, request: Request, message: Any) -> None:
        raw = await request.body(self.max_body_bytes)
        body = self.binding.body
        if not body:
            if raw.strip() not in (b"", b"{}"):
                where = f"{self.binding.http_method} {self.binding.template.template}"
                raise codec.DecodeError(f"{where} takes no request body")
            return
        if not raw.strip():
            return
        content_type = (request.header(b"content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != JSON and not (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            raise ProblemError(
                problems.catalogued(
                    "UnsupportedMediaType",
                    "the body must be JSON (Content-Type: application/json), "
                    f"not {content_type or 'untyped'}",
                )
            )
        value = codec.parse_json(raw)
        if body == "*":
            if isinstance(value, dict):
                for top in self.path_tops:
                    if top in value:
                        raise codec.DecodeError(f"{top} is set by the path, not the body")
            codec.from_value(value, message)
        else:
            codec.decode_field(message, body, value)

    def render(self, data: bytes) -> bytes:
        """The JSON body of a reply's wire bytes."""
        return self.encode(self.response_cls.FromString(data))

    def encode(self, reply: Any) -> bytes:
        name = self.binding.response_body
        if not name:
            return codec.to_json(reply)
        return codec.to_json_value(codec.plan(reply.DESCRIPTOR).fields[name].encode(reply))


def _kept(render: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """`render`, answering a small reply it rendered lately from memory (same bytes, same JSON:
    the rendering depends on nothing else)."""
    cached = functools.lru_cache(maxsize=KEPT_REPLIES)(render)

    def render_kept(data: bytes) -> bytes:
        return cached(data) if len(data) <= KEPT_REPLY_BYTES else render(data)

    return render_kept


def build_endpoints(
    service: descriptor.ServiceDescriptor,
    channel: grpc.aio.Channel,
    settings: Any,
    *,
    deadline_s: float = DEFAULT_DEADLINE_S,
    stream_handler: StreamHandlerFactory | None = None,
) -> list[Endpoint]:
    """The transcoded routes of `service`: one Endpoint per (method, binding)."""
    endpoints: list[Endpoint] = []
    for info in methods_of(service):
        method = info.method
        if method.client_streaming:
            log.warning("%s is client-streaming: no HTTP route", method.full_name)
            continue
        if method.server_streaming:
            if stream_handler is None:
                log.info(
                    "%s is server-streaming and no stream handler is set: no route",
                    method.full_name,
                )
                continue
            handle = stream_handler(info, channel, settings)
        else:
            limit = descriptors.max_body_bytes(method) or settings.max_body_bytes
            handle = Transcoder(info, channel, limit, deadline_s)
        endpoints.append(Endpoint(info.binding.http_method, info.binding.template, handle))
    return endpoints
