"""The gateway: transcoded routes from reflection, plus /openapi.json, /docs (the API reference),
/console (the web console), /docs/errors, /healthz and /metrics, as one pure-ASGI app served by
uvicorn (no access log; Prometheus counts requests)."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import socket
import time
from collections.abc import MutableMapping
from typing import Any

import grpc
import orjson
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gateway import console, docs, openapi, problems, sse
from gateway.cors import Cors
from gateway.descriptors import LoadedService, load_service
from gateway.http_rule import parse
from gateway.routes import (
    DEFAULT_DEADLINE_S,
    JSON,
    SCOPE_ROUTE,
    Endpoint,
    ProblemError,
    Receive,
    Request,
    Router,
    Scope,
    Send,
    StreamHandlerFactory,
    build_endpoints,
    methods_of,
    send_bytes,
)
from services.common import channels, tracing
from services.common.config import Settings
from services.common.errors import CATALOGUE, CatalogueEntry
from services.common.grpc_server import Running
from services.common.metrics import HTTP_REQUESTS, HTTP_SECONDS

access_log = logging.getLogger("parley.access")
HTML = "text/html; charset=utf-8"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HEALTH_TIMEOUT_S = 2.0


class Metrics:
    """Pure ASGI: counts every response by method, route template and status; with
    `access_log` (PARLEY_ACCESS_LOG), logs one line per request as well."""

    def __init__(self, app: Any, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        # Label values come from small fixed sets: each child is looked up once, then reused.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, request_id = time.perf_counter(), 500, ""

        async def send_counted(message: MutableMapping[str, Any]) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.access_log:
                    for key, value in message.get("headers", ()):
                        if key == b"x-request-id":
                            request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = scope.get(SCOPE_ROUTE, "unmatched")
            children = self._children.get((method, route, status))
            if children is None:
                children = self._children[method, route, status] = (
                    HTTP_REQUESTS.labels(method, route, str(status)),
                    HTTP_SECONDS.labels(method, route),
                )
            children[0].inc()
            elapsed = time.perf_counter() - started
            children[1].observe(elapsed)
            if self.access_log:
                fields = {
                    "method": method,
                    "path": scope["path"],
                    "http_status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "request_id": request_id,
                }
                access_log.info("%s %s %d", method, scope["path"], status, extra=fields)


class Traced:
    """Pure ASGI, installed only with tracing on: a server span per HTTP request, child of the
    request's `traceparent` (else a new trace), named by its route template. Prometheus scrapes
    and health probes open none."""

    UNTRACED = frozenset({"/metrics", "/healthz"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNTRACED:
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope.get("headers", ()):
            if key == b"traceparent":
                incoming = value.decode("latin-1")
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.span(
            method, attributes, parent=tracing.extract(incoming), kind="server"
        ) as current:
            status = 500

            async def send_traced(message: MutableMapping[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = scope.get(SCOPE_ROUTE)
                if route is not None:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                current.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracing.fail(current, str(status))


def build_app(
    settings: Settings,
    channel: grpc.aio.Channel,
    loaded: LoadedService,
    *,
    deadline_s: float = DEFAULT_DEADLINE_S,
    stream_handler: StreamHandlerFactory | None = None,
) -> Metrics:
    """The whole ASGI app for a reflected service; `channel` is shared by every call.
    Server-streaming methods are served as Server-Sent Events unless told otherwise."""
    endpoints = build_endpoints(
        loaded.service,
        channel,
        settings,
        deadline_s=deadline_s,
        stream_handler=stream_handler or sse.stream_handler,
    )
    spec = orjson.dumps(openapi.build(methods_of(loaded.service), loaded.comments))
    health = health_pb2_grpc.HealthStub(channel)

    async def serve_openapi(request: Request) -> None:
        await send_bytes(request.send, 200, spec, JSON)

    async def serve_health(request: Request) -> None:
        try:
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT_S
            )
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            serving = False
        body = b'{"status":"ok"}' if serving else b'{"status":"unavailable"}'
        await send_bytes(request.send, 200 if serving else 503, body, JSON)

    async def serve_metrics(request: Request) -> None:
        await send_bytes(request.send, 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

    assets = docs.load_assets()

    async def serve_docs(request: Request) -> None:
        headers = [(b"content-security-policy", docs.CSP.encode())]
        await send_bytes(request.send, 200, docs.PAGE, HTML, headers)

    async def serve_asset(request: Request) -> None:
        await _send_asset(request, assets, "/docs")

    console_page = console.page()
    console_assets = console.load_assets()

    async def serve_console(request: Request) -> None:
        headers = [
            (b"content-security-policy", console.CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        await send_bytes(request.send, 200, console_page, HTML, headers)

    async def serve_console_asset(request: Request) -> None:
        await _send_asset(request, console_assets, "/console")

    index_page = error_index_page(settings.docs_url).encode()
    pages = {e.slug: error_page(e, settings.docs_url).encode() for e in CATALOGUE.values()}

    async def serve_error_index(request: Request) -> None:
        await send_bytes(request.send, 200, index_page, HTML)

    async def serve_error_page(request: Request) -> None:
        page = pages.get(request.bindings["slug"])
        if page is None:
            raise ProblemError(
                problems.catalogued(
                    "RouteNotFound", f"no error page is called {request.bindings['slug']!r}"
                )
            )
        await send_bytes(request.send, 200, page, HTML)

    fixed = [
        ("/openapi.json", serve_openapi),
        ("/healthz", serve_health),
        ("/metrics", serve_metrics),
        ("/docs", serve_docs),
        ("/docs/assets/{name}", serve_asset),
        ("/console", serve_console),
        ("/console/assets/{name}", serve_console_asset),
        ("/docs/errors", serve_error_index),
        ("/docs/errors/{slug}", serve_error_page),
    ]
    endpoints += [Endpoint("GET", parse(path), handle) for path, handle in fixed]
    app: Any = Router(endpoints, settings.docs_url)
    if settings.cors_origins:
        app = Cors(app, settings.cors_origins, {e.http_method for e in endpoints})
    if tracing.ENABLED:
        app = Traced(app)
    return Metrics(app, settings.access_log)


async def _send_asset(request: Request, assets: dict[str, docs.Asset], page: str) -> None:
    asset = assets.get(request.bindings["name"])
    if asset is None:
        raise ProblemError(
            problems.catalogued(
                "RouteNotFound", f"{page} has no asset called {request.bindings['name']!r}"
            )
        )
    headers = [
        # The console's modules change with Parley: a browser revalidates, never runs stale code.
        (b"cache-control", b"no-cache" if page == "/console" else b"public, max-age=3600"),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send_bytes(request.send, 200, asset.body, asset.content_type, headers)


# --- error pages ------------------------------------------------------------------------------


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def error_page(entry: CatalogueEntry, docs_url: str) -> str:
    status = entry.http_status
    rows = [
        ("Incident code", f"<code>{html.escape(entry.code)}</code>"),
        ("HTTP status", str(status) if status else "none: reported on a failed run"),
        ("gRPC status", f"<code>{entry.grpc_code.name}</code>"),
        ("Reason", f"<code>{html.escape(entry.reason)}</code>"),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return _page(
        entry.title,
        f"<h1>{html.escape(entry.title)}</h1><table>{table}</table>"
        f"<h2>What to do</h2><p>{_inline(entry.advice)}</p>"
        f'<p><a href="{html.escape(docs_url)}/errors">All errors</a></p>',
    )


def error_index_page(docs_url: str) -> str:
    items = "".join(
        f'<li><a href="{html.escape(docs_url)}/errors/{e.slug}">{html.escape(e.title)}</a> '
        f"(<code>{html.escape(e.code)}</code>)</li>"
        for e in CATALOGUE.values()
    )
    return _page("Errors", f"<h1>Errors</h1><ul>{items}</ul>")


# --- serving ----------------------------------------------------------------------------------


async def start(
    settings: Settings,
    api_target: str,
    host: str,
    port: int,
    *,
    reflection_deadline_s: float | None = None,
    stream_handler: StreamHandlerFactory | None = None,
) -> Running:
    """Connect to the API (every address `api_target` names: PARLEY_API_ADDR), reflect its public
    service, and serve HTTP on (host, port). An API that does not answer within
    `reflection_deadline_s` (PARLEY_API_WAIT_S) stops the start with one line."""
    channel = channels.open_channel(
        api_target, channels.service_name("api"), in_process=settings.in_process
    )
    wait_s = settings.api_wait_s if reflection_deadline_s is None else reflection_deadline_s
    try:
        try:
            loaded = await load_service(channel, deadline_s=wait_s)
        except grpc.aio.AioRpcError as exc:
            reason = " ".join((exc.details() or "").split())
            raise SystemExit(
                f"the gateway cannot read the API's routes from {api_target} "
                f"({exc.code().name}: {reason}) after {wait_s:g} s: is `parley serve api` "
                "running there? (PARLEY_API_ADDR; PARLEY_API_WAIT_S sets the wait)"
            ) from None
        app = build_app(settings, channel, loaded, stream_handler=stream_handler)
        sock = _bind(host, port)
    except BaseException:
        await channel.close()
        raise
    config = uvicorn.Config(
        app,
        access_log=False,
        lifespan="off",
        log_config=None,
        loop="none",
        http="auto",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # Open event streams end with their run; a stop must not wait for that.
        timeout_graceful_shutdown=3,
        # Longer than clients keep idle connections (httpx: 5 s, uvicorn's default too): a
        # client must never reuse a connection the server is closing at that very moment.
        timeout_keep_alive=75,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    # startup()/main_loop() rather than serve(): serve() would take over the process's signals.
    await server.startup(sockets=[sock])
    loop_task = asyncio.create_task(server.main_loop(), name="gateway-http")
    real_port = sock.getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        try:
            await loop_task
            await server.shutdown(sockets=[sock])
        finally:
            sock.close()
            await channel.close()

    return Running("gateway", real_port, stop)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"cannot listen on {host}:{port} for the gateway: {exc.strerror} "
            "(see PARLEY_HOST and PARLEY_HTTP_PORT)"
        ) from None
    sock.set_inheritable(True)
    return sock
