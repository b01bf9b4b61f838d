"""Sessions with MCP servers: the SDK negotiates, and what a stateless server needs is sent by
hand (`mcp_wire`).

One pooled HTTP transport (`http_pool`: aiohttp, behind httpx2's interface where the SDK speaks)
is built at start-up and shared by every session, so TCP/TLS connections are reused across runs.
A server that adopts the stateless revision (2026-07-28) is remembered per (URL, token owner)
as an `mcp_wire.Endpoint`, shared by all work on it for at most `KEEP_SECONDS`: its tools/list
and tools/call are one POST each. A handshake-era or HTTP+SSE server keeps the SDK client: a
session that ends cleanly goes back to an idle list per (URL, token owner) and the next
discovery or call on that server reuses it, skipping the SDK's connect exchange and the address
check (a kept client lives at most `KEEP_SECONDS`). The bearer token an allow-listed server
gets is minted for each discovery and each call (never reused from an earlier one): `aud` the
server's URL as listed, scope `mcp:invoke`, a TTL of a minute.
Callers bound their work with their own timeout (a cancelled session is closed, never kept).
Discovery lists afresh unless a stateless server's listing said for how long it holds (`ttlMs`,
0 by default): the SDK's response cache is off (`cache=None`) and every SDK listing bypasses
it. A call checks its tool against the session's latest listing and lists (afresh) only when
the tool is not in it (the server still has the last word: a tool it no longer has is its
error).
A session that fails is closed, never kept (an endpoint is forgotten); work that failed on a
kept client or endpoint (its server may have restarted) is retried once on a new one, unless a
tools/call may already have run: a call is repeated only when nothing was sent, the server
could not be reached, or it refused the session (HTTP 404).
Each SDK client sits on a `_ServerTransport` that (1) checks the URL policy on the resolved
address of every host it talks to, redirects included (and the pool checks each address it
connects to, for `mcp_wire` too), (2) adds `Authorization: Bearer …` only when the session
carries a token and only for the session's own origin, and (3) never closes the shared pool.

Streamable HTTP first (the SDK negotiates the 2026 stateless era or the handshake era); when the
endpoint answers the first POST with 400/404/405, the older HTTP+SSE transport is tried.
Failures come out as `McpFailure(cause, message)` with a small fixed set of causes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from services.common import tracing, url_policy
from services.common.auth import mint_mcp_token
from services.common.config import Settings
from services.tooling import mcp_wire
from services.tooling.failures import McpFailure, first_line
from services.tooling.http_pool import AddressRefused, AiohttpPool

log = logging.getLogger("parley.tooling")
T = TypeVar("T")

_SSE_FALLBACK_STATUSES = {400, 404, 405}
KEEP_SECONDS = 60.0  # how long a connected client may be reused
KEEP_PER_SERVER = 16  # idle clients kept per (URL, token owner)
SWEEP_ENDPOINTS_AT = 1024  # endpoints remembered before the expired ones are swept out
AUDIENCES_KEPT = 4096  # URLs whose allow-list entry is remembered
# The HTTP client's own limits; the work's budget is the caller's asyncio timeout.
CONNECT_TIMEOUT_S = 30.0
HTTP_TIMEOUT = httpx2.Timeout(CONNECT_TIMEOUT_S, read=300.0)


@dataclass(frozen=True)
class Caller:
    company_id: int
    user_id: int


def log_failure(operation: str, alias: str, caller: Caller, failure: McpFailure) -> None:
    """One line per failed discovery or call, with its cause (the message names no token)."""
    fields: dict[str, Any] = {
        "cause": failure.cause,
        "company_id": caller.company_id,
        "user_id": caller.user_id,
    }
    trace_id = tracing.trace_id_of(tracing.current_traceparent())
    if trace_id is not None:
        fields["trace_id"] = trace_id
    log.warning("MCP %s failed on `%s`: %s", operation, alias, failure.message, extra=fields)


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass
class _ServerTransport(httpx2.AsyncBaseTransport):
    """One session's view of the shared pool (see the module docstring)."""

    pool: httpx2.AsyncBaseTransport
    origin: tuple[str, str, int | None]
    allow_private_networks: bool
    authorization: str | None = field(default=None, repr=False)
    traceparent: str | None = None  # the current work's span (a kept session's change)
    checked_hosts: set[tuple[str, int | None]] = field(default_factory=set)
    refused: str | None = None
    first_status: int | None = None
    sent: int = 0  # requests handed to the pool since the session was taken
    unprocessed: bool = False  # a request met a closed port or a 404 (an unknown session)
    # Ends the session's current work at once on a 404: the HTTP+SSE client only logs a failed
    # POST, and its request would otherwise wait for the caller's whole timeout.
    abort: asyncio.Timeout | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if (url.host, url.port) not in self.checked_hosts:
            try:
                await url_policy.check_resolved(str(url), self.allow_private_networks)
            except url_policy.UrlNotAllowed as exc:
                self.refused = f"{url.copy_with(query=None, fragment=None)}: {exc.reason}"
                raise httpx2.ConnectError(f"refused by the URL policy: {exc.reason}") from None
            self.checked_hosts.add((url.host, url.port))
        if self.authorization is not None and (url.scheme, url.host, url.port) == self.origin:
            request.headers["Authorization"] = self.authorization
        if self.traceparent is not None:
            request.headers[tracing.TRACEPARENT] = self.traceparent
        self.sent += 1
        try:
            response = await self.pool.handle_async_request(request)
        except AddressRefused as exc:  # the name resolved elsewhere when connecting
            self.refused = f"{url.copy_with(query=None, fragment=None)}: {exc}"
            self.unprocessed = True
            raise
        except httpx2.ConnectError:
            self.unprocessed = True
            raise
        if self.first_status is None:
            self.first_status = response.status_code
        if response.status_code == 404:
            self.unprocessed = True
            if self.abort is not None:
                self.abort.reschedule(-1)
        return response

    async def aclose(self) -> None:
        """The pool outlives every session."""


_Key = tuple[str, tuple[int, int] | None]  # (URL, token owner or None)


@dataclass
class KeptClient:
    """A connected SDK client, reusable until `until` (monotonic), and the tool names its
    latest complete listing showed."""

    client: Client
    transport: _ServerTransport
    until: float
    listed: frozenset[str] = frozenset()


# What discovery and calls work on: an SDK client, or one work on a stateless endpoint.
Session = KeptClient | mcp_wire.Work


class McpConnector:
    """Opens MCP sessions over the shared pool; one per tooling server process."""

    def __init__(self, settings: Settings) -> None:
        self._allow_private = settings.mcp_allow_private_networks
        self._secret = settings.jwt_secret
        # normalised URL -> the URL as listed (a token's audience)
        self._allowlist = {url_policy.normalize(u): u for u in settings.mcp_auth_allowlist}
        self._audiences: dict[str, str | None] = {}  # URL -> its allow-list entry
        allow_private = settings.mcp_allow_private_networks
        self._pool = AiohttpPool(
            max_connections=512,
            policy=lambda address: url_policy.address_refusal(address, allow_private),
        )
        self._idle: dict[_Key, list[KeptClient]] = {}
        self._endpoints: dict[_Key, mcp_wire.Endpoint] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        self._endpoints = {}
        for kept in (k for clients in idle.values() for k in clients):
            await _quiet_exit(kept.client)
        await self._pool.aclose()

    def _endpoint(self, key: _Key) -> mcp_wire.Endpoint | None:
        endpoint = self._endpoints.get(key)
        if endpoint is not None and endpoint.until <= asyncio.get_running_loop().time():
            del self._endpoints[key]
            return None
        return endpoint

    def _keep(self, key: _Key, endpoint: mcp_wire.Endpoint) -> mcp_wire.Endpoint:
        if len(self._endpoints) >= SWEEP_ENDPOINTS_AT:  # expired ones go before the map grows
            now = asyncio.get_running_loop().time()
            self._endpoints = {k: e for k, e in self._endpoints.items() if e.until > now}
        self._endpoints[key] = endpoint
        return endpoint

    def _forget(self, key: _Key, endpoint: mcp_wire.Endpoint) -> None:
        if self._endpoints.get(key) is endpoint:
            del self._endpoints[key]

    def _take(self, key: _Key) -> KeptClient | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            kept = idle.pop()
            if kept.until > now:
                kept.transport.first_status = None
                kept.transport.sent = 0
                kept.transport.unprocessed = False
                return kept
            self._close_later(kept)
        return None

    def _give_back(self, key: _Key, kept: KeptClient) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < KEEP_PER_SERVER and kept.until > asyncio.get_running_loop().time():
            idle.append(kept)
        else:
            self._close_later(kept)

    def _close_later(self, kept: KeptClient) -> None:
        task = asyncio.create_task(_quiet_exit(kept.client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _client(self, transport: _ServerTransport) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=transport,
            trust_env=False,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,  # the SDK follows same-origin redirects itself
        )

    def _audience(self, url: str) -> str | None:
        """The allow-list entry `url` matches after normalisation (it gets a token), or None
        (remembered per URL: a run's discovery and every call ask it again)."""
        if not self._secret:
            return None
        try:
            return self._audiences[url]
        except KeyError:
            if len(self._audiences) >= AUDIENCES_KEPT:
                self._audiences.clear()
            audience = self._audiences[url] = self._allowlist.get(url_policy.normalize(url))
            return audience

    def _authorization(self, audience: str | None, caller: Caller) -> str | None:
        if audience is None:
            return None
        token = mint_mcp_token(self._secret, caller.company_id, caller.user_id, audience)
        return f"Bearer {token}"

    @asynccontextmanager
    async def _session(
        self, url: str, caller: Caller, *, fresh: bool = False
    ) -> AsyncIterator[Session]:
        """A session for one run's discovery or one call: a kept client or endpoint unless
        `fresh`. Any failure, inside the `async with` body too, comes out as McpFailure (and a
        client is closed, an endpoint forgotten unless the server answered with an error);
        cancellation passes through (and closes a client too)."""
        audience = self._audience(url)
        authorization = self._authorization(audience, caller)
        key = (url, (caller.company_id, caller.user_id) if audience is not None else None)
        traceparent = tracing.current_traceparent()  # this work's span
        endpoint = None if fresh else self._endpoint(key)
        kept = None if fresh or endpoint is not None else self._take(key)
        on_kept = endpoint is not None or kept is not None
        if endpoint is None and kept is None:
            opened = await self._open(url, authorization, traceparent)
            if isinstance(opened, mcp_wire.Endpoint):
                endpoint = self._keep(key, opened)
            else:
                kept = opened
        if endpoint is not None:
            work = mcp_wire.Work(endpoint, self._pool.http(), authorization, traceparent)
            try:
                yield work
            except Exception as exc:
                if not isinstance(exc, mcp_wire.RpcError):  # else the server answered: it is up
                    self._forget(key, endpoint)
                failure = exc if isinstance(exc, McpFailure) else self.failure_of(exc)
                failure.on_kept = on_kept
                failure.unprocessed = work.unprocessed or work.sent == 0
                raise failure from None
            return
        assert kept is not None
        if on_kept:
            kept.transport.authorization = authorization  # this work's own token
            kept.transport.traceparent = traceparent
        try:
            try:
                async with asyncio.timeout(None) as kept.transport.abort:
                    yield kept
            finally:
                kept.transport.abort = None
        except Exception as exc:
            await _quiet_exit(kept.client)
            failure = self.failure_of(exc, kept.transport)
            failure.on_kept = on_kept
            # e.g. the SDK found the connection closed (the server went away) before sending
            failure.unprocessed = kept.transport.unprocessed or kept.transport.sent == 0
            raise failure from None
        except BaseException:
            await _quiet_exit(kept.client)
            raise
        self._give_back(key, kept)

    async def using(
        self,
        url: str,
        caller: Caller,
        work: Callable[[Session], Awaitable[T]],
        *,
        repeatable: Callable[[], bool] = lambda: True,
    ) -> T:
        """`work` on a session; when it failed on a kept client (its server may have restarted
        and dropped it), once more on a new one, if nothing it sent can have run or
        `repeatable()` says a repeat is safe."""
        try:
            async with self._session(url, caller) as session:
                return await work(session)
        except McpFailure as failure:
            if not failure.on_kept or not (failure.unprocessed or repeatable()):
                raise
        async with self._session(url, caller, fresh=True) as session:
            return await work(session)

    async def _open(
        self, url: str, authorization: str | None, traceparent: str | None = None
    ) -> KeptClient | mcp_wire.Endpoint:
        """Negotiate with the SDK: a stateless server becomes an endpoint (its SDK client is
        closed: there is nothing to keep), any other stays a connected client."""
        await self._check(url)
        parsed = httpx2.URL(url)
        transport = _ServerTransport(
            self._pool,
            (parsed.scheme, parsed.host, parsed.port),
            self._allow_private,
            authorization,
            traceparent=traceparent,
        )
        until = asyncio.get_running_loop().time() + KEEP_SECONDS
        client = Client(
            streamable_http_client(url, http_client=self._client(transport)), cache=None
        )
        try:
            await client.__aenter__()
        except Exception as exc:
            if transport.first_status not in _SSE_FALLBACK_STATUSES or transport.refused:
                raise self.failure_of(exc, transport) from None
            return KeptClient(await self._connect_sse(url, transport, exc), transport, until)
        version = client.protocol_version
        if version in MODERN_PROTOCOL_VERSIONS:
            await _quiet_exit(client)
            return mcp_wire.Endpoint(url, version, until)
        return KeptClient(client, transport, until)

    async def _connect_sse(
        self, url: str, transport: _ServerTransport, first: BaseException
    ) -> Client:
        """The 2024-11-05 HTTP+SSE transport, for endpoints that refuse a Streamable HTTP POST."""

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return self._client(transport)

        client = Client(
            sse_client(url, timeout=CONNECT_TIMEOUT_S, httpx_client_factory=factory),
            cache=None,
            mode="legacy",
        )
        try:
            await client.__aenter__()
        except Exception:
            # Report what Streamable HTTP said: the SSE attempt was only a fallback.
            raise self.failure_of(first, transport) from None
        return client

    async def _check(self, url: str) -> None:
        try:
            await url_policy.check_resolved(url, self._allow_private)
        except url_policy.UrlNotAllowed as exc:
            raise McpFailure("url_not_allowed", f"the URL is not allowed: {exc.reason}") from None

    @staticmethod
    def failure_of(exc: BaseException, transport: _ServerTransport | None = None) -> McpFailure:
        """A bounded cause and a readable message for whatever a session raised."""
        if transport is not None and transport.refused:
            return McpFailure("url_not_allowed", f"refused by the URL policy: {transport.refused}")
        leaf = _leaf(exc)
        if transport is not None and transport.unprocessed and isinstance(leaf, TimeoutError):
            return McpFailure("http_status", "the server no longer knows the session (HTTP 404)")
        if isinstance(leaf, McpFailure):
            return leaf
        if isinstance(leaf, TimeoutError | httpx2.TimeoutException) or (
            isinstance(leaf, MCPError) and leaf.code == -32001
        ):
            return McpFailure("timeout", "timed out")
        if isinstance(leaf, httpx2.TransportError):
            return McpFailure(
                "unreachable", f"unreachable: {first_line(leaf) or type(leaf).__name__}"
            )
        if isinstance(leaf, httpx2.HTTPStatusError):
            return McpFailure("http_status", f"HTTP {leaf.response.status_code}")
        if isinstance(leaf, MCPError):
            status = (
                ""
                if transport is None or transport.first_status in (None, 200)
                else (f" (HTTP {transport.first_status})")
            )
            return McpFailure("protocol", f"protocol error {leaf.code}: {first_line(leaf)}{status}")
        if isinstance(leaf, ValidationError | ValueError | RuntimeError):
            return McpFailure("protocol", f"invalid response: {first_line(leaf)}")
        log.warning("unexpected MCP failure: %s", type(leaf).__name__)
        return McpFailure("internal", f"{type(leaf).__name__}: {first_line(leaf)}")


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside the SDK's (nested) task-group ExceptionGroups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _quiet_exit(client: Client, timeout_s: float = 5.0) -> None:
    """Close a session within a bounded time (also while the caller is being cancelled)."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.__aexit__(None, None, None)
    except Exception as exc:  # noqa: BLE001 - closing a finished session must not mask its result
        log.debug("closing an MCP session failed: %s", type(exc).__name__)


PageFetch = Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]


async def _pages(fetch: PageFetch) -> AsyncIterator[list[Any]]:
    """Each `tools/list` page's tools, following cursors to the end (a repeated cursor is a
    protocol error)."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        tools, cursor = await fetch(cursor)
        yield tools
        if not cursor:
            return
        if cursor in seen:
            raise McpFailure("protocol", f"tools/list repeated the cursor {cursor!r}")
        seen.add(cursor)


def _sdk_pages(client: Client) -> PageFetch:
    async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        return page.tools, page.next_cursor

    return fetch


async def list_all_tools(session: Session, *, refresh: bool = False) -> list[ListedTool]:
    """Every tool, over every page; the session (or endpoint) remembers them. An endpoint's
    listing is reused while the server's `ttlMs` allows, unless `refresh`."""
    if isinstance(session, mcp_wire.Work):
        listed = await _wire_listing(session, refresh)
    else:
        listed = [t async for page in _pages(_sdk_pages(session.client)) for t in page]
        session.listed = frozenset(t.name for t in listed)
    return [ListedTool(t.name, t.description or "", dict(t.input_schema or {})) for t in listed]


async def _wire_listing(work: mcp_wire.Work, refresh: bool) -> list[Any]:
    now = asyncio.get_running_loop().time()
    cached = None if refresh else mcp_wire.cached_listing(work.endpoint, now)
    if cached is not None:
        return cached
    ttls: list[int] = []

    async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
        page = await mcp_wire.list_page(work, cursor)
        ttls.append(page.ttl_ms)
        return page.tools, page.next_cursor

    listed = [t async for page in _pages(fetch) for t in page]
    mcp_wire.remember(work.endpoint, listed, min(ttls), now)
    return listed


async def find_tool(session: Session, name: str) -> bool:
    """Whether the server offers `name`: from the session's latest listing, listing again when
    the name is not in it. A listing on this client also gave the SDK the tool's output schema
    and header annotations, so the call needs no re-list."""
    if not _listed(session, name):
        await list_all_tools(session, refresh=True)
    return _listed(session, name)


def _listed(session: Session, name: str) -> bool:
    if isinstance(session, mcp_wire.Work):
        return name in session.endpoint.tools
    return name in session.listed


async def call_tool(session: Session, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """`tools/call`; the result as MCP wire JSON (content, structuredContent, isError)."""
    if isinstance(session, mcp_wire.Work):
        work = session
        return await mcp_wire.call_tool(
            work, name, arguments, lambda: list_all_tools(work, refresh=True)
        )
    result = await session.client.call_tool(name, arguments)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")
