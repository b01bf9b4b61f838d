"""Real MCP servers for tests and benchmarks, built with the official `mcp` SDK and served by
uvicorn on an ephemeral loopback port in a background thread (its own event loop, so a slow
server never stalls the test's loop).

    async with serve(docs_search_server()) as url:      # url = "http://127.0.0.1:<port>/mcp"
        ...

Servers: `schema_zoo_server` (oneOf, $ref recursive and not, format, pattern, ranges),
`paged_server` (tools/list over several pages), `MutableServer` (its tool list changes between
runs), `slow_server` (answers tools/list and tools/call after a delay), `down_url` (nothing
listens), `malformed_app` (garbage instead of JSON-RPC), `AuthRecorder` (records the
Authorization header of every request), `content_server` (results with every content kind,
isError, and a tool that never answers in time), `docs_search_server` (the spec's Example 2),
`RecordsServer` (counts its calls; holds a call until released), `WireServer` (header-mirrored
arguments, an output schema, a JSON-RPC error, a slow call; its schemas can change),
`HandshakeOnly` (an app that refuses the stateless revision, as a 2025-era server does),
`TtlServer` (its listing says for how long a client may reuse it), `TrailingSlash` (the
docs-search server mounted at /mcp/, /mcp redirecting there).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import Server
from mcp.shared.exceptions import MCPError
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MCP_PATH = "/mcp"
ASGIApp = Callable[..., Awaitable[None]]

# --- serving ------------------------------------------------------------------------------------


@asynccontextmanager
async def serve(app: Any, path: str = MCP_PATH, port: int = 0) -> AsyncIterator[str]:
    """Serve an ASGI app (or an MCP server: its Streamable HTTP app) on 127.0.0.1:<port>
    (a free one unless given: a test restarts a server at the same URL that way)."""
    if isinstance(app, MCPServer | Server):
        app = app.streamable_http_app(streamable_http_path=path)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(
        # Open HTTP+SSE streams (kept clients) would hold a graceful shutdown for ever.
        uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = asyncio.get_running_loop().time() + 10
    while not server.started:
        if not thread.is_alive() or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("the fake MCP server did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        sock.close()


def down_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{MCP_PATH}"


# --- lowlevel servers with hand-written schemas ------------------------------------------------


@dataclass
class ToolSpec:
    name: str
    input_schema: dict[str, Any]
    description: str = ""


OBJECT_Q = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

CallHandler = Callable[[str, dict[str, Any]], Awaitable[types.CallToolResult]]


async def _echo(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=f"{name}: {arguments}")])


def tool_server(
    name: str,
    tools: Callable[[], Sequence[ToolSpec]] | Sequence[ToolSpec],
    *,
    page_size: int | None = None,
    call: CallHandler = _echo,
    list_delay: float = 0.0,
    call_delay: float = 0.0,
    list_barrier: threading.Barrier | None = None,
) -> Server[Any]:
    """A lowlevel SDK server listing `tools` (a list, or a function read on every tools/list),
    `page_size` per page, answering tools/list after `list_delay` and calls after `call_delay`.
    With `list_barrier`, tools/list answers only once the barrier's other parties list too (a
    threading barrier: each served app runs its own event loop in its own thread)."""

    def current() -> list[types.Tool]:
        specs = tools() if callable(tools) else tools
        return [
            types.Tool(name=t.name, description=t.description or None, input_schema=t.input_schema)
            for t in specs
        ]

    async def on_list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        if list_delay:
            await asyncio.sleep(list_delay)
        if list_barrier is not None:
            await asyncio.to_thread(list_barrier.wait, 5)
        listed = current()
        if page_size is None:
            return types.ListToolsResult(tools=listed)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + page_size
        return types.ListToolsResult(
            tools=listed[start:end], next_cursor=str(end) if end < len(listed) else None
        )

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if call_delay:
            await asyncio.sleep(call_delay)
        if params.name not in {t.name for t in current()}:
            return types.CallToolResult(
                content=[types.TextContent(text=f"Unknown tool: {params.name}")], is_error=True
            )
        return await call(params.name, params.arguments or {})

    return Server(name, on_list_tools=on_list_tools, on_call_tool=on_call_tool)


ZOO_TOOLS = [
    ToolSpec(
        "pick",
        {
            "type": "object",
            "properties": {
                "choice": {
                    "oneOf": [
                        {"type": "string", "format": "email"},
                        {"type": "integer", "minimum": 1, "maximum": 9},
                    ]
                }
            },
            "required": ["choice"],
        },
        "oneOf with validators",
    ),
    ToolSpec(
        "book",
        {
            "type": "object",
            "$defs": {
                "Slot": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "minutes": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 15},
                    },
                    "required": ["start"],
                }
            },
            "properties": {
                "slot": {"$ref": "#/$defs/Slot"},
                "code": {"type": "string", "pattern": "^[A-Z]{3}$", "maxLength": 3},
            },
            "required": ["slot"],
            "additionalProperties": True,
        },
        "non-recursive $ref",
    ),
    ToolSpec(
        "tree",
        {
            "type": "object",
            "definitions": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                    },
                }
            },
            "properties": {"root": {"$ref": "#/definitions/Node"}},
        },
        "recursive $ref",
    ),
]


def schema_zoo_server() -> Server[Any]:
    return tool_server("zoo", ZOO_TOOLS)


def paged_server(count: int = 25, page_size: int = 10) -> Server[Any]:
    """`count` tools named t00, t01, … listed `page_size` per page."""
    specs = [ToolSpec(f"t{i:02d}", OBJECT_Q, f"tool {i}") for i in range(count)]
    return tool_server("paged", specs, page_size=page_size)


def slow_server(delay: float = 0.2, tools: int = 3) -> Server[Any]:
    """Answers every tools/list and tools/call after `delay` seconds."""
    specs = [ToolSpec(f"s{i}", OBJECT_Q) for i in range(tools)]
    return tool_server("slow", specs, list_delay=delay, call_delay=delay)


@dataclass
class MutableServer:
    """A server whose tool list the test edits between runs (`tools` is read per tools/list)."""

    tools: list[ToolSpec] = field(default_factory=lambda: [ToolSpec("alpha", OBJECT_Q)])

    def app(self) -> Server[Any]:
        return tool_server("mutable", lambda: list(self.tools))


# --- results of every kind ----------------------------------------------------------------------

PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def _content_call(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    if name == "everything":
        return types.CallToolResult(
            content=[
                types.TextContent(text="hello"),
                types.ImageContent(data=PNG_1PX, mime_type="image/png"),
                types.AudioContent(data="UklGRg==", mime_type="audio/wav"),
                types.ResourceLink(
                    uri="file:///x.txt", name="x.txt", description="a file", mime_type="text/plain"
                ),
                types.EmbeddedResource(
                    resource=types.TextResourceContents(
                        uri="file:///y.txt", mime_type="text/plain", text="inside"
                    )
                ),
                types.EmbeddedResource(
                    resource=types.BlobResourceContents(uri="file:///z.bin", blob="AAEC")
                ),
            ],
            structured_content={"answer": 42, "items": [1, "two", None]},
        )
    if name == "fail":
        return types.CallToolResult(
            content=[types.TextContent(text="the tool failed: no such city")], is_error=True
        )
    if name == "huge":
        size = int(arguments.get("size", 500_000))
        return types.CallToolResult(content=[types.TextContent(text="x" * size)])
    if name == "boom":
        raise ValueError("kaboom")
    if name == "sleepy":
        await asyncio.sleep(float(arguments.get("seconds", 5)))
        return types.CallToolResult(content=[types.TextContent(text="finally")])
    return await _echo(name, arguments)


def content_server() -> Server[Any]:
    """Tools: everything (every content kind + structuredContent), fail (isError), huge
    (a long text), boom (raises), sleepy (sleeps `seconds`), echo."""
    names = ["everything", "fail", "huge", "boom", "sleepy", "echo"]
    return tool_server(
        "content",
        [ToolSpec(n, {"type": "object", "properties": {}}) for n in names],
        call=_content_call,
    )


# --- MCPServer-style servers ----------------------------------------------------------------------


def docs_search_server() -> MCPServer:
    """The spec's Example 2: a docs-search server with `search_narrative_i_o_knowledge_base`."""
    server = MCPServer("narrative-docs")

    @server.tool(description="Search Narrative I/O's knowledge base; returns matching passages.")
    def search_narrative_i_o_knowledge_base(query: str) -> str:
        return (
            f"Results for {query!r}:\n"
            "1. Rate limiting: the API allows 100 requests per minute per API token; "
            "429 responses carry Retry-After.\n"
            "2. Data Collaboration MCP Server: authenticated with a Default-scoped token."
        )

    return server


@dataclass
class AuthRecorder:
    """An MCPServer wrapped in ASGI middleware that records the Authorization header (or None)
    of every HTTP request it receives (and its traceparent); `whoami` also returns it."""

    seen: list[str | None] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)

    def app(self) -> ASGIApp:
        server = MCPServer("auth")

        @server.tool(description="Who am I?")
        async def whoami(ctx: Context) -> str:
            return (ctx.headers or {}).get("authorization", "")

        @server.tool(description="Answers pong; says nothing about the caller.")
        async def ping() -> str:
            return "pong"

        inner = server.streamable_http_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                value = headers.get(b"authorization")
                self.seen.append(value.decode() if value is not None else None)
                traceparent = headers.get(b"traceparent")
                self.traceparents.append(traceparent.decode() if traceparent else None)
            await inner(scope, receive, send)

        return app


def malformed_app(kind: str = "garbage") -> Starlette:
    """Not an MCP server: `garbage` answers 200 with invalid JSON, `not_rpc` valid JSON that is
    not JSON-RPC, `html` a 200 HTML page."""

    async def endpoint(request: Request) -> Response:
        await request.body()
        if kind == "not_rpc":
            return Response(b'{"hello": "world"}', media_type="application/json")
        if kind == "html":
            return Response(b"<html><body>hi</body></html>", media_type="text/html")
        return Response(b"{this is not json", media_type="application/json")

    return Starlette(routes=[Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"])])


def redirect_app(location: str) -> Starlette:
    """Answers every request with a 307 to `location`."""

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(status_code=307, headers={"location": location})

    return Starlette(routes=[Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"])])


@dataclass
class ForgetfulSse:
    """The docs-search server over HTTP+SSE that, once `forget()` is called, answers 404 to
    messages for every session it had so far (as a restarted server would), while its old
    event streams stay open. `calls` counts the tool calls that ran."""

    calls: int = 0
    forgotten: set[str] = field(default_factory=set)
    _sessions: set[str] = field(default_factory=set)

    def forget(self) -> None:
        self.forgotten |= self._sessions

    def app(self) -> ASGIApp:
        server = MCPServer("forgetful")

        @server.tool(description="Counts its calls.")
        def count() -> str:
            self.calls += 1
            return f"call {self.calls}"

        inner = server.sse_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                query = dict(
                    p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p
                )
                session = query.get("session_id", "")
                if session in self.forgotten:
                    await Response("Could not find session", status_code=404)(scope, receive, send)
                    return
                self._sessions.add(session)
            await inner(scope, receive, send)

        return app


class RecordsServer:
    """An MCPServer with `read_record` and `delete_record`, counting every call by (tool, key)
    (for approvals: which calls ran, and how often). A delete of a key in `held` waits until
    `release(key)`, with `arrived(key)` set when it came in."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._held: dict[str, tuple[threading.Event, threading.Event]] = {}

    def count(self, tool: str, key: str) -> int:
        with self._lock:
            return self.calls.get((tool, key), 0)

    def hold(self, key: str) -> None:
        self._held[key] = (threading.Event(), threading.Event())

    def arrived(self, key: str) -> threading.Event:
        return self._held[key][0]

    def release(self, key: str) -> None:
        self._held[key][1].set()

    def release_all(self) -> None:
        for _, released in self._held.values():
            released.set()

    def _record(self, tool: str, key: str) -> None:
        with self._lock:
            self.calls[(tool, key)] = self.calls.get((tool, key), 0) + 1

    def server(self) -> MCPServer:
        server = MCPServer("records")

        @server.tool(description="Reads a record.")
        def read_record(key: str) -> str:
            self._record("read_record", key)
            return f"record {key}"

        @server.tool(description="Deletes a record for good.")
        async def delete_record(key: str) -> str:
            self._record("delete_record", key)
            held = self._held.get(key)
            if held is not None:
                held[0].set()
                await asyncio.to_thread(held[1].wait, 60)
            return f"deleted {key}"

        return server


# --- the stateless wire's corners -----------------------------------------------------------------

REGION_PLAIN = {"type": "object", "properties": {"region": {"type": "string"}}}
REGION_HEADER = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    "required": ["region"],
}
COUNT_OUTPUT = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@dataclass
class WireServer:
    """A lowlevel SDK server with `region` (its argument mirrored in `Mcp-Param-Region` once
    `annotate` is set: the server then refuses a call without the header), `count` (output
    schema {n: integer}; returns the `n` it is given), `refuse` (a JSON-RPC error, -32602) and
    `slow` (answers after `seconds`). `regions` records the header as the server saw it."""

    annotate: bool = True
    regions: list[str | None] = field(default_factory=list)

    def server(self) -> Server[Any]:
        def tools() -> list[types.Tool]:
            return [
                types.Tool(
                    name="region", input_schema=REGION_HEADER if self.annotate else REGION_PLAIN
                ),
                types.Tool(name="count", input_schema=OBJECT_Q, output_schema=COUNT_OUTPUT),
                types.Tool(name="refuse", input_schema=OBJECT_Q),
                types.Tool(name="slow", input_schema=OBJECT_Q),
            ]

        async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return types.ListToolsResult(tools=tools())

        async def on_call_tool(
            ctx: Any, params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            arguments = params.arguments or {}
            if params.name == "region":
                headers = getattr(ctx.request, "headers", None) or {}
                self.regions.append(headers.get("mcp-param-region"))
                return types.CallToolResult(
                    content=[types.TextContent(text=f"region {arguments.get('region')}")]
                )
            if params.name == "count":
                return types.CallToolResult(
                    content=[types.TextContent(text="counted")],
                    structured_content={"n": arguments.get("n")},
                )
            if params.name == "refuse":
                raise MCPError(types.INVALID_PARAMS, "refused: no such record")
            await asyncio.sleep(float(arguments.get("seconds", 0.3)))
            return types.CallToolResult(content=[types.TextContent(text="slowly")])

        return Server("wire", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


@dataclass
class HandshakeOnly:
    """The docs-search server behind a filter that answers `server/discover` as a 2025-era
    server does (400, no session), so clients fall back to initialize + Mcp-Session-Id.
    `session_ids` records the Mcp-Session-Id of every POST (None when absent)."""

    session_ids: list[str | None] = field(default_factory=list)

    def app(self) -> ASGIApp:
        inner = docs_search_server().streamable_http_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await inner(scope, receive, send)
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            session = dict(scope["headers"]).get(b"mcp-session-id")
            self.session_ids.append(session.decode() if session else None)
            if b'"server/discover"' in body:
                refusal = Response(
                    b'{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,'
                    b'"message":"Bad Request: Missing session ID"}}',
                    status_code=400,
                    media_type="application/json",
                )
                await refusal(scope, receive, send)
                return
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return dict(await receive())
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await inner(scope, replay, send)

        return app


@dataclass
class TtlServer:
    """Lists `tools` with `ttl_ms` (how long a client may reuse the listing, 2026-07-28);
    `lists` counts the tools/list requests it answered."""

    ttl_ms: int = 60_000
    tools: list[str] = field(default_factory=lambda: ["alpha"])
    lists: int = 0

    def server(self) -> Server[Any]:
        async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            self.lists += 1
            return types.ListToolsResult(
                tools=[types.Tool(name=n, input_schema=OBJECT_Q) for n in self.tools],
                ttl_ms=self.ttl_ms,
            )

        async def on_call_tool(
            ctx: Any, params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            if params.name not in self.tools:
                return types.CallToolResult(
                    content=[types.TextContent(text=f"Unknown tool: {params.name}")], is_error=True
                )
            return types.CallToolResult(content=[types.TextContent(text=f"{params.name} ran")])

        return Server("ttl", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


@dataclass
class TrailingSlash:
    """The docs-search server at `/mcp/`, with `/mcp` answering a 307 to it (as a Starlette
    Mount does); `redirects` counts the 307s it sent."""

    redirects: int = 0

    def app(self) -> ASGIApp:
        inner = docs_search_server().streamable_http_app(streamable_http_path=MCP_PATH + "/")

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == MCP_PATH:
                self.redirects += 1
                redirect = Response(status_code=307, headers={"location": MCP_PATH + "/"})
                await redirect(scope, receive, send)
                return
            await inner(scope, receive, send)

        return app
