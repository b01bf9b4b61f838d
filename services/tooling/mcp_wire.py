"""The stateless MCP wire (2026-07-28 Streamable HTTP) by hand, for the two requests a run makes:
`tools/list` and `tools/call`, each one aiohttp POST on the shared pool.

The SDK negotiates (`server/discover`, or the handshake era and HTTP+SSE, which stay on the SDK
client: `mcp_connect`); once a server has adopted the stateless revision there is no session to
keep, so each request is a JSON-RPC body carrying the protocol version, client info and
capabilities in `params._meta`, mirrored in the `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`
and `Mcp-Param-*` headers (the SDK's own helpers build those). That skips the SDK's memory
streams, task groups and httpx2 objects per request: about 4x less CPU per call.

A same-origin 307/308 (a trailing-slash mount) is followed, as the SDK does, and remembered. The
reply is a JSON body or an SSE stream (a server that reports progress commits to SSE; its
notifications are skipped until the response). Results are validated with the SDK's pydantic
types (`mcp_types`) and tools' output schemas as the SDK client does: a call's result is
checked, then handed on as the wire JSON it arrived as (no dump of what was just parsed). A
listing drops tools whose `x-mcp-header` annotations are invalid (the revision's MUST). A
`HEADER_MISMATCH` reply to a call (the server saw a different schema) re-lists and resends once:
the server refused the call, so it did not run. Closing the response (the caller's timeout or
cancellation) is the revision's cancellation. Failures are `McpFailure`s; `Work` records what
`mcp_connect` needs to decide on a retry (was anything sent, was it refused unprocessed).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import mcp_types as types
import orjson
import yarl
from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp.client.session import DEFAULT_CLIENT_INFO
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from pydantic import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable

from services.common import tracing
from services.tooling.failures import McpFailure, first_line
from services.tooling.http_pool import refusal_in

# The HTTP client's own limits, as the SDK client's; the work's budget is the caller's timeout.
TIMEOUT = aiohttp.ClientTimeout(sock_connect=30.0, sock_read=300.0)
MAX_SSE_EVENT_BYTES = 1024 * 1024  # as the SDK client's streamable HTTP transport
MAX_REDIRECTS = 5  # same-origin 307/308s followed for one request
_R = TypeVar("_R", bound=types.Result)
_CLIENT_INFO = DEFAULT_CLIENT_INFO.model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass
class ToolState:
    """What a call needs from a tool's latest listing."""

    headers: dict[tuple[str, ...], str]  # argument path -> Mcp-Param-* token
    output_schema: dict[str, Any] | None
    validator: Validator | None = None  # compiled on first use


@dataclass
class Endpoint:
    """A server that adopted a stateless revision, shared by every work on one (URL, token
    owner) until `until` (monotonic): no state on the server's side, so no pool of sessions."""

    url: str
    version: str
    until: float
    tools: dict[str, ToolState] = field(default_factory=dict)  # the latest complete listing
    # That listing as discovery returns it, while the server's ttlMs says it is fresh.
    cached: list[types.Tool] | None = None
    cached_until: float = 0.0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._target = yarl.URL(self.url, encoded=True)
        self._meta = {
            types.PROTOCOL_VERSION_META_KEY: self.version,
            types.CLIENT_INFO_META_KEY: _CLIENT_INFO,
            types.CLIENT_CAPABILITIES_META_KEY: {},
        }


@dataclass
class Work:
    """One discovery or call on an endpoint: its token, its span, and what was sent."""

    endpoint: Endpoint
    http: aiohttp.ClientSession
    authorization: str | None = field(default=None, repr=False)
    traceparent: str | None = None
    sent: int = 0
    unprocessed: bool = False  # the server was not reached, or refused the request (HTTP 404)


class RpcError(McpFailure):
    """The server answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__("protocol", message)
        self.code = code


async def list_page(work: Work, cursor: str | None) -> types.ListToolsResult:
    """One `tools/list` page, without the tools whose header annotations are invalid."""
    raw = await _request(work, "tools/list", {"cursor": cursor} if cursor else {})
    ttl = raw.get("ttlMs")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl < 0:
        raw["ttlMs"] = 0  # the SDK floors a negative TTL the same way
    page = _validated(types.ListToolsResult, raw)
    page.tools = [t for t in page.tools if find_invalid_x_mcp_header(t.input_schema) is None]
    return page


def remember(endpoint: Endpoint, tools: list[types.Tool], ttl_ms: int, now: float) -> None:
    """A complete listing becomes what calls are checked against (a compiled validator is kept
    while its output schema is unchanged), and what discovery answers for `ttl_ms` (the
    shortest of its pages'; 0, the default, is stale at once)."""
    known = endpoint.tools
    endpoint.tools = {}
    for t in tools:
        state = ToolState(x_mcp_header_map(t.input_schema), t.output_schema)
        before = known.get(t.name)
        if before is not None and before.output_schema == state.output_schema:
            state.validator = before.validator
        endpoint.tools[t.name] = state
    endpoint.cached = tools if ttl_ms > 0 else None
    endpoint.cached_until = now + ttl_ms / 1000


def cached_listing(endpoint: Endpoint, now: float) -> list[types.Tool] | None:
    return endpoint.cached if endpoint.cached is not None and now < endpoint.cached_until else None


async def call_tool(
    work: Work, name: str, arguments: dict[str, Any], relist: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    """`tools/call`; the result as MCP wire JSON (content, structuredContent, isError).
    `relist()` refreshes the endpoint's listing after a HEADER_MISMATCH."""
    try:
        raw = await _call(work, name, arguments)
    except RpcError as mismatch:
        if mismatch.code != types.HEADER_MISMATCH:
            raise
        await relist()
        raw = await _call(work, name, arguments)
    if raw.get("resultType") == "input_required":
        raise McpFailure(
            "protocol", "the server asked for input during the call, which Parley cannot give"
        )
    result = _validated(types.CallToolResult, raw)
    if not result.is_error:
        _check_output(work.endpoint.tools.get(name), name, result)
    if raw.get("structuredContent", 0) is None:
        del raw["structuredContent"]  # null is no structured content
    return raw


async def _call(work: Work, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    listed = work.endpoint.tools.get(name)
    headers = mcp_param_headers(listed.headers, arguments) if listed and listed.headers else None
    return await _request(
        work, "tools/call", {"name": name, "arguments": arguments}, name=name, extra=headers
    )


def _check_output(listed: ToolState | None, name: str, result: types.CallToolResult) -> None:
    """The SDK client's check of structuredContent against the tool's output schema."""
    if listed is None or listed.output_schema is None:
        return
    if result.structured_content is None and "structured_content" not in result.model_fields_set:
        raise McpFailure(
            "protocol",
            f"invalid response: tool {name} has an output schema but returned no "
            "structured content",
        )
    if listed.validator is None:
        cls = validator_for(listed.output_schema)
        try:
            cls.check_schema(listed.output_schema)
        except SchemaError as exc:
            raise McpFailure(
                "protocol", f"invalid response: invalid schema for tool {name}: {first_line(exc)}"
            ) from None
        listed.validator = cls(listed.output_schema, registry=Registry())
    try:
        error = best_match(listed.validator.iter_errors(result.structured_content))
    except Unresolvable as exc:
        raise McpFailure(
            "protocol", f"invalid response: invalid schema for tool {name}: {first_line(exc)}"
        ) from None
    if error is not None:
        raise McpFailure(
            "protocol",
            f"invalid response: invalid structured content returned by tool {name}: "
            f"{first_line(error)}",
        )


def _validated(model: type[_R], raw: dict[str, Any]) -> _R:
    try:
        return model.model_validate(raw, by_name=False)
    except ValidationError as exc:
        raise McpFailure("protocol", f"invalid response: {first_line(exc)}") from None


async def _request(
    work: Work,
    method: str,
    params: dict[str, Any],
    *,
    name: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON-RPC request, its result (a JSON-RPC error is an `RpcError`)."""
    endpoint = work.endpoint
    request_id = next(endpoint._ids)
    params["_meta"] = endpoint._meta
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        MCP_PROTOCOL_VERSION_HEADER: endpoint.version,
        MCP_METHOD_HEADER: method,
    }
    if name is not None:
        headers[MCP_NAME_HEADER] = encode_header_value(name)
    if extra:
        headers.update(extra)
    if work.authorization is not None:
        headers["Authorization"] = work.authorization
    if work.traceparent is not None:
        headers[tracing.TRACEPARENT] = work.traceparent
    work.sent += 1
    target = endpoint._target
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with work.http.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                auto_decompress=True,
                timeout=TIMEOUT,
            ) as response:
                location = _followed(target, response)
                if location is None:
                    message = await _reply(work, response)
                    break
            target = location
        else:
            raise McpFailure("http_status", f"more than {MAX_REDIRECTS} redirects")
    except aiohttp.ClientConnectorError as exc:
        work.unprocessed = True
        refused = refusal_in(exc)
        if refused is not None:
            raise McpFailure("url_not_allowed", f"refused by the URL policy: {refused}") from None
        raise McpFailure("unreachable", f"unreachable: {first_line(exc)}") from None
    except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError):
        raise McpFailure("timeout", "timed out") from None
    except aiohttp.ClientError as exc:  # a connection reset or closed while reading, …
        why = first_line(exc) or type(exc).__name__
        raise McpFailure("unreachable", f"unreachable: {why}") from None
    endpoint._target = target  # where a redirect led: the next request goes straight there
    error = message.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        status = "" if response.status == 200 else f" (HTTP {response.status})"
        raise RpcError(
            code if isinstance(code, int) else 0, f"protocol error {code}: {text}{status}"
        )
    result = message.get("result")
    if not isinstance(result, dict):
        raise McpFailure("protocol", "invalid response: the reply has no result object")
    return result


def _followed(target: yarl.URL, response: aiohttp.ClientResponse) -> yarl.URL | None:
    """Where a redirect the SDK's transports would follow leads: a 307/308 (so the POST stays
    a POST) within the endpoint's origin (its token and URL-policy check hold there), with no
    credentials of its own. None for any other response."""
    location = response.headers.get("Location")
    if response.status not in (307, 308) or not location:
        return None
    try:
        joined = target.join(yarl.URL(location))
    except ValueError:
        return None
    if (joined.scheme, joined.host, joined.port) != (target.scheme, target.host, target.port):
        return None
    if joined.user != target.user or joined.password != target.password:
        return None
    return joined


async def _reply(work: Work, response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON-RPC response in a reply's JSON body or SSE stream."""
    status = response.status
    if status == 404:
        work.unprocessed = True  # the server did not take the request (as the SDK's transport)
    if 300 <= status < 400:
        # Named without its query or fragment, which can carry state (as the SDK does).
        location = response.headers.get("Location", "").split("?", 1)[0].split("#", 1)[0]
        raise McpFailure(
            "http_status",
            f"HTTP {status}: redirect to {location} not followed; use that URL as the endpoint "
            "if it is the intended server",
        )
    kind = response.headers.get("Content-Type", "").lower()
    if kind.startswith("application/json"):
        try:
            message = orjson.loads(await response.read())
        except orjson.JSONDecodeError as exc:
            if status >= 400:
                raise McpFailure("http_status", f"HTTP {status}") from None
            raise McpFailure("protocol", f"protocol error: the reply is not JSON: {exc}") from None
        if isinstance(message, dict) and ("result" in message or "error" in message):
            if status < 400 or "error" in message:
                return message
    elif kind.startswith("text/event-stream") and status < 400:
        return await sse_response(response.content.iter_any())
    if status >= 400:
        raise McpFailure("http_status", f"HTTP {status}")
    if status == 202:
        raise McpFailure("protocol", "protocol error: the server answered a request with 202")
    raise McpFailure("protocol", f"protocol error: unexpected reply ({kind or 'no content type'})")


async def sse_response(chunks: AsyncIterable[bytes]) -> dict[str, Any]:
    """The first JSON-RPC response (result or error) on an SSE stream; notifications before it
    are skipped (nothing here asked for progress), as are comments and other fields."""
    pending = bytearray()
    data: list[bytes] = []
    size = 0
    async for chunk in chunks:
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end]).rstrip(b"\r")
            del pending[: end + 1]
            if line:
                field_name, _, value = line.partition(b":")
                if field_name == b"data":
                    value = value[1:] if value.startswith(b" ") else value
                    size += len(value) + 1
                    if size > MAX_SSE_EVENT_BYTES:
                        raise McpFailure("protocol", "protocol error: an SSE event over 1 MiB")
                    data.append(value)
                continue  # event/id/retry fields and comments change nothing here
            if not data:
                continue
            try:
                message = orjson.loads(b"\n".join(data))
            except orjson.JSONDecodeError as exc:
                raise McpFailure(
                    "protocol", f"protocol error: an SSE event is not JSON: {exc}"
                ) from None
            data, size = [], 0
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return message
    raise McpFailure("protocol", "protocol error: the SSE stream ended without a response")
