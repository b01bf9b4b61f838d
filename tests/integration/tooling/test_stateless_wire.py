"""The stateless MCP wire (services/tooling/mcp_wire.py) against real SDK servers: headers the
server checks, output schemas, JSON-RPC errors, SSE replies, a changed schema, listings reused
for as long as the server's ttlMs says, a same-origin redirect, and a handshake-era server that
stays on the SDK client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.fakes import mcp_servers as fakes
from tests.integration.tooling.conftest import Router


@dataclass
class Servers:
    wire: str
    wire_server: fakes.WireServer
    handshake: str
    handshake_app: fakes.HandshakeOnly
    ttl: str
    ttl_server: fakes.TtlServer
    slash: str
    slash_app: fakes.TrailingSlash


@pytest_asyncio.fixture(scope="module")
async def servers() -> AsyncIterator[Servers]:
    wire, handshake, ttl = fakes.WireServer(), fakes.HandshakeOnly(), fakes.TtlServer()
    slash = fakes.TrailingSlash()
    async with (
        fakes.serve(wire.server()) as wire_url,
        fakes.serve(handshake.app()) as hs_url,
        fakes.serve(ttl.server()) as ttl_url,
        fakes.serve(slash.app()) as slash_url,
    ):
        yield Servers(wire_url, wire, hs_url, handshake, ttl_url, ttl, slash_url, slash)


def _server(url: str, alias: str = "w") -> dict[str, str]:
    return {"alias": alias, "url": url}


async def test_an_annotated_argument_is_mirrored_in_its_header(
    router: Router, servers: Servers
) -> None:
    server = _server(servers.wire)
    await router.discover(server)
    result = await router.call("w-region", json.dumps({"region": "eu-west-1"}), server)
    assert not result.is_error and result.content[0].text.text == "region eu-west-1"
    assert servers.wire_server.regions[-1] == "eu-west-1"


async def test_a_schema_annotated_since_the_listing_is_relisted_and_resent(
    router: Router, servers: Servers
) -> None:
    """The server refuses a call without the header it now expects (HEADER_MISMATCH): the
    router lists again and sends the call once more, with the header."""
    server = _server(servers.wire, "w2")
    servers.wire_server.annotate = False
    try:
        await router.discover(server)
        servers.wire_server.annotate = True
        before = len(servers.wire_server.regions)
        result = await router.call("w2-region", json.dumps({"region": "us"}), server)
    finally:
        servers.wire_server.annotate = True
    assert not result.is_error and result.content[0].text.text == "region us"
    assert servers.wire_server.regions[before:] == ["us"]  # the refused call never ran


@pytest.mark.parametrize(
    ("arguments", "is_error", "expect"),
    [
        ({"n": 3}, False, "counted"),
        ({"n": "three"}, True, "invalid structured content returned by tool count"),
    ],
)
async def test_structured_content_is_checked_against_the_output_schema(
    router: Router, servers: Servers, arguments: dict[str, object], is_error: bool, expect: str
) -> None:
    server = _server(servers.wire)
    result = await router.call("w-count", json.dumps(arguments), server)
    assert result.is_error is is_error and expect in result.content[0].text.text
    if not is_error:
        assert result.content[1].json.value.struct_value["n"] == 3


async def test_a_json_rpc_error_is_an_error_result(router: Router, servers: Servers) -> None:
    result = await router.call("w-refuse", "{}", _server(servers.wire))
    assert result.is_error
    assert "protocol error -32602: refused: no such record" in result.content[0].text.text


async def test_a_reply_on_an_sse_stream_is_read(
    router: Router, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK server commits a reply to SSE (with keep-alive comments) once a call outlasts
    its ping interval; shortened here so a 0.3 s call gets an SSE reply."""
    monkeypatch.setattr("mcp.server._streamable_http_modern._SSE_PING_INTERVAL", 0.05)
    result = await router.call("w-slow", json.dumps({"seconds": 0.3}), _server(servers.wire))
    assert not result.is_error and result.content[0].text.text == "slowly"


async def test_a_handshake_era_server_keeps_its_sdk_session(
    router: Router, servers: Servers
) -> None:
    seen = servers.handshake_app.session_ids
    server = _server(servers.handshake, "hs")
    tools = await router.discover(server)
    assert [t.wire_name for t in tools] == ["hs-search_narrative_i_o_knowledge_base"]
    result = await router.call(
        "hs-search_narrative_i_o_knowledge_base", json.dumps({"query": "limits"}), server
    )
    assert not result.is_error and "100 requests per minute" in result.content[0].text.text
    assert seen[0] is None and seen[-1] is not None  # discover, …, then calls in the session
    first = len(seen)
    await router.call("hs-search_narrative_i_o_knowledge_base", '{"query": "x"}', server)
    assert len(seen) == first + 1 and seen[-1] == seen[-2]  # the kept session, one POST


async def test_a_listing_is_reused_while_its_ttl_holds(router: Router, servers: Servers) -> None:
    """Discovery answers from a listing the server said is good for a minute; a call of a tool
    that listing lacks lists afresh (and finds the tool the server has added since)."""
    ttl = servers.ttl_server
    server = _server(servers.ttl, "t")
    assert [t.wire_name for t in await router.discover(server)] == ["t-alpha"]
    lists = ttl.lists
    ttl.tools = ["alpha", "beta"]
    try:
        assert [t.wire_name for t in await router.discover(server)] == ["t-alpha"]
        assert ttl.lists == lists  # served from the listing, inside its ttlMs
        result = await router.call("t-beta", "{}", server)
        assert not result.is_error and result.content[0].text.text == "beta ran"
        assert ttl.lists == lists + 1
        assert [t.wire_name for t in await router.discover(server)] == ["t-alpha", "t-beta"]
    finally:
        ttl.tools = ["alpha"]


async def test_a_same_origin_redirect_is_followed_once_and_remembered(
    router: Router, servers: Servers
) -> None:
    server = _server(servers.slash, "sl")
    tools = await router.discover(server)
    assert [t.wire_name for t in tools] == ["sl-search_narrative_i_o_knowledge_base"]
    redirects = servers.slash_app.redirects
    for _ in range(2):
        result = await router.call(
            "sl-search_narrative_i_o_knowledge_base", '{"query": "limits"}', server
        )
        assert not result.is_error and "100 requests per minute" in result.content[0].text.text
    assert servers.slash_app.redirects == redirects  # straight to /mcp/ since the first one
