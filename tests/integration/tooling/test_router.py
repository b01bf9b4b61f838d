"""ToolRouterService over real gRPC against real MCP servers on loopback."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

import grpc
import jwt
import pytest
from jsonschema import Draft202012Validator

from tests.fakes import mcp_servers as fakes
from tests.fakes.mcp_servers import ToolSpec

from .conftest import CALLER, SECRET, Fakes, Router, error_info


async def failed(coro: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro  # type: ignore[misc]
    return info.value


def block_dicts(result: object) -> list[dict[str, object]]:
    from google.protobuf import json_format

    return [
        json_format.MessageToDict(b, preserving_proto_field_name=True)
        for b in result.content  # type: ignore[attr-defined]
    ]


# --- discovery ------------------------------------------------------------------------------------


async def test_discovery_normalises_every_schema(router: Router, mcp: Fakes) -> None:
    tools = await router.discover({"alias": "zoo", "url": mcp.zoo})
    assert [t.wire_name for t in tools] == ["zoo-pick", "zoo-book", "zoo-tree"]
    for tool in tools:
        assert tool.strict is False
        schema = json.loads(tool.input_schema_json)
        Draft202012Validator.check_schema(schema)
        text = tool.input_schema_json
        for banned in ('"oneOf"', '"$ref"', '"format"', '"pattern"', '"$defs"', '"definitions"'):
            assert banned not in text, (tool.wire_name, banned)
        assert schema["additionalProperties"] is False
    book = json.loads(tools[1].input_schema_json)
    slot = book["properties"]["slot"]
    assert slot["additionalProperties"] is False
    assert "format: date-time" in slot["properties"]["start"]["description"]
    assert "pattern: ^[A-Z]{3}$" in book["properties"]["code"]["description"]
    tree = json.loads(tools[2].input_schema_json)
    assert tree["properties"]["root"]["properties"]["children"]["items"] == {}


async def test_discovery_follows_pagination_to_the_end(router: Router, mcp: Fakes) -> None:
    tools = await router.discover({"alias": "pg", "url": mcp.paged})
    assert [t.wire_name for t in tools] == [f"pg-t{i:02d}" for i in range(25)]


async def test_allow_list_filters_and_names_missing_tools(router: Router, mcp: Fakes) -> None:
    tools = await router.discover(
        {"alias": "pg", "url": mcp.paged, "tools": [{"name": "t24"}, {"name": "t03"}]}
    )
    assert [t.wire_name for t in tools] == ["pg-t24", "pg-t03"]
    error = await failed(
        router.discover({"alias": "pg", "url": mcp.paged, "tools": [{"name": "nope"}]})
    )
    info = error_info(error)
    assert info.reason == "MCP_DISCOVERY_FAILED" and info.metadata["alias"] == "pg"
    assert "nope" in error.details() and error.details().startswith("pg: ")


async def test_a_changed_tool_list_is_seen_by_the_next_run(router: Router, mcp: Fakes) -> None:
    first = await router.discover({"alias": "mut", "url": mcp.mutable})
    assert [t.wire_name for t in first] == ["mut-alpha"]
    saved = list(mcp.mutable_server.tools)
    mcp.mutable_server.tools[:] = [
        ToolSpec("beta", fakes.OBJECT_Q),
        ToolSpec("gamma", {"type": "object"}),
    ]
    try:
        second = await router.discover({"alias": "mut", "url": mcp.mutable})
        assert [t.wire_name for t in second] == ["mut-beta", "mut-gamma"]
    finally:
        mcp.mutable_server.tools[:] = saved


async def test_a_wire_name_over_64_characters_fails_discovery(router: Router, mcp: Fakes) -> None:
    saved = list(mcp.mutable_server.tools)
    mcp.mutable_server.tools[:] = [ToolSpec("x" * 60, fakes.OBJECT_Q)]
    try:
        error = await failed(router.discover({"alias": "mutable", "url": mcp.mutable}))
    finally:
        mcp.mutable_server.tools[:] = saved
    assert error_info(error).metadata["cause"] == "name_too_long"
    assert error.details().startswith("mutable: ") and "64" in error.details()


async def test_slow_servers_are_discovered_together(router: Router, mcp: Fakes) -> None:
    servers = [{"alias": f"slow{i}", "url": url} for i, url in enumerate(mcp.slow)]
    tools = await router.discover(*servers)
    assert [t.wire_name for t in tools] == [f"slow{i}-s{j}" for i in range(3) for j in range(3)]


async def test_servers_are_listed_concurrently(router: Router) -> None:
    """Each server answers tools/list only once all three are listing at the same time: discovery
    one server after another would never get an answer (no timing involved)."""
    barrier = threading.Barrier(3)
    specs = [fakes.ToolSpec("t", fakes.OBJECT_Q)]
    async with contextlib.AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(
                fakes.serve(fakes.tool_server(f"b{i}", specs, list_barrier=barrier))
            )
            for i in range(3)
        ]
        tools = await router.discover(*({"alias": f"b{i}", "url": u} for i, u in enumerate(urls)))
    assert [t.wire_name for t in tools] == ["b0-t", "b1-t", "b2-t"]


async def test_several_servers_in_order(router: Router, mcp: Fakes) -> None:
    tools = await router.discover(
        {"alias": "docs", "url": mcp.docs}, {"alias": "zoo", "url": mcp.zoo}
    )
    assert [t.wire_name for t in tools][:2] == [
        "docs-search_narrative_i_o_knowledge_base",
        "zoo-pick",
    ]


async def test_a_down_server_fails_discovery_naming_it(router: Router, mcp: Fakes) -> None:
    error = await failed(
        router.discover(
            {"alias": "docs", "url": mcp.docs}, {"alias": "gone", "url": fakes.down_url()}
        )
    )
    info = error_info(error)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert info.reason == "MCP_DISCOVERY_FAILED"
    assert info.metadata["alias"] == "gone" and info.metadata["cause"] == "unreachable"
    assert error.details().startswith("gone: unreachable")


@pytest.mark.parametrize("which", ["malformed", "not_rpc"])
async def test_a_malformed_server_fails_discovery(router: Router, mcp: Fakes, which: str) -> None:
    error = await failed(router.discover({"alias": "bad", "url": getattr(mcp, which)}))
    info = error_info(error)
    assert info.reason == "MCP_DISCOVERY_FAILED" and info.metadata["cause"] == "protocol"
    assert error.details().startswith("bad: protocol error")


async def test_a_server_speaking_only_http_sse_is_discovered(router: Router, mcp: Fakes) -> None:
    tools = await router.discover({"alias": "old", "url": mcp.sse_only})
    assert [t.wire_name for t in tools] == ["old-search_narrative_i_o_knowledge_base"]
    result = await router.call(
        "old-search_narrative_i_o_knowledge_base",
        '{"query": "rate limits"}',
        {"alias": "old", "url": mcp.sse_only},
    )
    assert not result.is_error and "rate limits" in result.content[0].text.text


# --- calls --------------------------------------------------------------------------------------


async def test_a_call_maps_every_content_kind(router: Router, mcp: Fakes) -> None:
    result = await router.call("c-everything", "{}", {"alias": "c", "url": mcp.content})
    assert result.tool_use_id == "tu_1" and not result.is_error
    assert block_dicts(result) == [
        {"text": {"text": "hello"}},
        {"image": {"mime_type": "image/png", "data": fakes.PNG_1PX}},
        {"audio": {"mime_type": "audio/wav", "data": "UklGRg=="}},
        {
            "resource_link": {
                "uri": "file:///x.txt",
                "name": "x.txt",
                "description": "a file",
                "mime_type": "text/plain",
            }
        },
        {"resource": {"uri": "file:///y.txt", "mime_type": "text/plain", "text": "inside"}},
        {"resource": {"uri": "file:///z.bin", "blob": "AAEC"}},
        {"json": {"value": {"answer": 42.0, "items": [1.0, "two", None]}}},
    ]


async def test_docs_search_call(router: Router, mcp: Fakes) -> None:
    result = await router.call(
        "docs-search_narrative_i_o_knowledge_base",
        '{"query": "rate limiting"}',
        {"alias": "docs", "url": mcp.docs},
    )
    assert not result.is_error
    assert "100 requests per minute" in result.content[0].text.text


@pytest.mark.parametrize(
    ("tool", "expect"),
    [("fail", "no such city"), ("boom", "calling `c-boom` failed: protocol error")],
)
async def test_tool_failures_are_in_band(
    router: Router, mcp: Fakes, tool: str, expect: str
) -> None:
    result = await router.call(f"c-{tool}", "{}", {"alias": "c", "url": mcp.content})
    assert result.is_error and expect in result.content[0].text.text


async def test_a_call_that_times_out_is_an_error_result(router: Router, mcp: Fakes) -> None:
    started = time.perf_counter()
    result = await router.call("c-sleepy", '{"seconds": 10}', {"alias": "c", "url": mcp.content})
    assert result.is_error and "timed out" in result.content[0].text.text
    assert time.perf_counter() - started < 8  # the call's timeout, not the tool's 10 s


async def test_a_call_to_a_down_server_is_an_error_result(router: Router) -> None:
    result = await router.call("gone-x", "{}", {"alias": "gone", "url": fakes.down_url()})
    assert result.is_error and "unreachable" in result.content[0].text.text


async def test_huge_results_are_truncated_with_a_marker(router: Router, mcp: Fakes) -> None:
    result = await router.call("c-huge", '{"size": 300000}', {"alias": "c", "url": mcp.content})
    text = result.content[0].text.text
    assert not result.is_error and len(text) < 100_200
    assert text.endswith("[truncated: 200000 more characters not shown]")


async def test_bad_arguments_are_an_error_result(router: Router, mcp: Fakes) -> None:
    result = await router.call("c-echo", "[1, 2", {"alias": "c", "url": mcp.content})
    assert result.is_error and "not valid JSON" in result.content[0].text.text


@pytest.mark.parametrize(
    ("name", "servers"),
    [
        ("web-search", [{"alias": "docs", "url": "http://127.0.0.1:9/mcp"}]),
        ("search", [{"alias": "docs", "url": "http://127.0.0.1:9/mcp"}]),
        ("docs-b", [{"alias": "docs", "url": "http://127.0.0.1:9/mcp", "tools": [{"name": "a"}]}]),
    ],
)
async def test_unknown_alias_or_tool(router: Router, name: str, servers: list[dict]) -> None:
    error = await failed(router.call(name, "{}", *servers))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "UNKNOWN_TOOL"


async def test_a_tool_the_server_does_not_have_is_unknown(router: Router, mcp: Fakes) -> None:
    error = await failed(router.call("c-nope", "{}", {"alias": "c", "url": mcp.content}))
    assert error_info(error).reason == "UNKNOWN_TOOL" and "nope" in error.details()


# --- authentication -----------------------------------------------------------------------------


async def test_only_allowlisted_servers_get_a_token_for_the_caller(
    router: Router, mcp: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mcp.auth_seen.seen.clear()
    mcp.auth_open_seen.seen.clear()
    servers = ({"alias": "narr", "url": mcp.auth}, {"alias": "open", "url": mcp.auth_open})
    tools = await router.discover(*servers)
    assert {t.wire_name for t in tools} == {"narr-whoami", "narr-ping", "open-whoami", "open-ping"}
    narr = await router.call("narr-whoami", "{}", *servers)
    opened = await router.call("open-whoami", "{}", *servers)

    assert opened.content[0].text.text == ""
    assert mcp.auth_open_seen.seen and set(mcp.auth_open_seen.seen) == {None}
    assert mcp.auth_seen.seen and all(v and v.startswith("Bearer ") for v in mcp.auth_seen.seen)
    echoed = narr.content[0].text.text
    assert echoed.startswith("Bearer ")
    token = echoed.removeprefix("Bearer ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=mcp.auth)
    assert (claims["company_id"], claims["user_id"]) == (CALLER.company_id, CALLER.user_id)
    assert claims["aud"] == mcp.auth and claims["scope"] == "mcp:invoke"
    assert claims["exp"] - claims["iat"] <= 60
    for value in mcp.auth_seen.seen:
        assert value is not None
        jwt.decode(value.removeprefix("Bearer "), SECRET, algorithms=["HS256"], audience=mcp.auth)
    # Minted per call chain: the call did not reuse the discovery's token (nor the kept client's).
    discovery_token = mcp.auth_seen.seen[0].removeprefix("Bearer ")
    assert token != discovery_token
    with pytest.raises(jwt.InvalidAudienceError):  # no other server accepts it as its own
        jwt.decode(token, SECRET, algorithms=["HS256"], audience=mcp.auth_open)
    # never logged (the router's logs and the SDK's, at DEBUG)
    tokens = {v.removeprefix("Bearer ") for v in mcp.auth_seen.seen if v}
    assert not any(t in caplog.text for t in tokens)


# --- URL policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/mcp",
        "http://[fe80::1]/mcp",
        "http://[64:ff9b::169.254.169.254]/mcp",
        "http://[::169.254.169.254]/mcp",
        "http://[2002:a9fe:a9fe::]/mcp",
        "http://2852039166/mcp",
    ],
)
async def test_link_local_is_always_refused(router: Router, url: str) -> None:
    error = await failed(router.discover({"alias": "meta", "url": url}))
    assert error_info(error).metadata["cause"] == "url_not_allowed"
    assert error.details().startswith("meta: the URL is not allowed")
    result = await router.call("meta-x", "{}", {"alias": "meta", "url": url})
    assert result.is_error and "not allowed" in result.content[0].text.text


async def test_loopback_is_refused_unless_allowed(strict_router: Router, mcp: Fakes) -> None:
    spellings = ("127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]")
    for url in (mcp.docs.replace("127.0.0.1", host) for host in spellings):
        error = await failed(strict_router.discover({"alias": "docs", "url": url}))
        assert error_info(error).metadata["cause"] == "url_not_allowed"
        assert "does not allow" in error.details() or "not allowed" in error.details()


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/mcp", "http://[64:ff9b::a9fe:a9fe]/mcp", "http://0xa9fea9fe/"],
)
async def test_a_redirect_elsewhere_is_not_followed(router: Router, target: str) -> None:
    async with fakes.serve(fakes.redirect_app(target)) as url:
        error = await failed(router.discover({"alias": "redir", "url": url}))
    assert error_info(error).reason == "MCP_DISCOVERY_FAILED"
    assert error.details().startswith("redir: ") and "not followed" in error.details()


# --- kept clients ---------------------------------------------------------------------------------


async def test_a_kept_client_skips_the_connect_exchange_and_still_lists_afresh(
    router: Router, mcp: Fakes
) -> None:
    # A URL no earlier test used (the query is ignored by the server): no kept client yet.
    server = {"alias": "open", "url": f"{mcp.auth_open}?t={time.monotonic_ns()}"}
    mcp.auth_open_seen.seen.clear()
    await router.discover(server)
    fresh_requests = len(mcp.auth_open_seen.seen)
    mcp.auth_open_seen.seen.clear()
    tools = await router.discover(server)
    kept_requests = len(mcp.auth_open_seen.seen)
    assert len(tools) == 2
    assert 1 <= kept_requests < fresh_requests  # tools/list still reaches the server


async def test_a_call_after_discovery_sends_only_the_call(router: Router, mcp: Fakes) -> None:
    """The kept client listed the tool during discovery: the call needs no tools/list."""
    server = {"alias": "open", "url": f"{mcp.auth_open}?t={time.monotonic_ns()}"}
    await router.discover(server)
    mcp.auth_open_seen.seen.clear()
    assert (await router.call("open-ping", "{}", server)).content[0].text.text == "pong"
    assert len(mcp.auth_open_seen.seen) == 1


async def test_a_tool_removed_since_the_listing_is_the_servers_error(
    router: Router, mcp: Fakes
) -> None:
    """The server, not the session's last listing, has the last word at call time."""
    server = {"alias": "mut", "url": mcp.mutable}
    assert [t.wire_name for t in await router.discover(server)] == ["mut-alpha"]
    saved = list(mcp.mutable_server.tools)
    mcp.mutable_server.tools[:] = [ToolSpec("beta", fakes.OBJECT_Q)]
    try:
        result = await router.call("mut-alpha", '{"q": "x"}', server)
        assert result.is_error and "Unknown tool: alpha" in result.content[0].text.text
        beta = await router.call("mut-beta", '{"q": "x"}', server)  # not in the listing: lists
        assert not beta.is_error
    finally:
        mcp.mutable_server.tools[:] = saved


async def test_a_session_the_server_forgot_is_replaced_at_once(router: Router) -> None:
    """An HTTP+SSE server that answers 404 for a kept session: the call, refused unprocessed,
    goes out once on a new client at once (not after the call's timeout, an error result)."""
    forgetful = fakes.ForgetfulSse()
    async with fakes.serve(forgetful.app(), "/sse") as url:
        server = {"alias": "f", "url": url}
        assert (await router.call("f-count", "{}", server)).content[0].text.text == "call 1"
        forgetful.forget()
        # Without the fix the SDK only logs the refused POST and the call times out (1 s here).
        result = await router.call("f-count", "{}", server)
    assert result.content[0].text.text == "call 2" and forgetful.calls == 2


async def test_kept_clients_are_never_shared_between_callers(router: Router, mcp: Fakes) -> None:
    from agents.v1 import config_pb2, tool_router_service_pb2

    server = {"alias": "narr", "url": mcp.auth}
    first = await router.call("narr-whoami", "{}", server)
    other = tool_router_service_pb2.CallerIdentity(company_id=CALLER.company_id, user_id=999)
    reply = await router.stub.CallTool(
        tool_router_service_pb2.CallToolRequest(
            mcp_servers=[config_pb2.McpServer(**server)],
            caller=other,
            tool_use_id="t-other",
            wire_name="narr-whoami",
            arguments_json="{}",
        )
    )
    again = await router.call("narr-whoami", "{}", server)
    tokens = [r.content[0].text.text.removeprefix("Bearer ") for r in (first, reply.result, again)]
    owners = [
        jwt.decode(t, SECRET, algorithms=["HS256"], audience=mcp.auth)["user_id"] for t in tokens
    ]
    assert owners == [CALLER.user_id, 999, CALLER.user_id]
    assert len(set(tokens)) == 3  # the kept client's next call got a token of its own


@pytest.mark.parametrize("kind", ["streamable_http", "http_sse"])
async def test_discovery_survives_a_server_restart_behind_a_kept_client(
    router: Router, kind: str
) -> None:
    """A kept client whose server restarted (its session gone) costs a retry, not a failed
    run: discovery lists again on a new client."""
    from urllib.parse import urlsplit

    def app() -> object:
        server = fakes.docs_search_server()
        return server.sse_app() if kind == "http_sse" else server

    path = "/sse" if kind == "http_sse" else fakes.MCP_PATH
    async with fakes.serve(app(), path) as url:
        server = {"alias": "docs", "url": url}
        assert len(await router.discover(server)) == 1  # leaves a kept client behind
    async with fakes.serve(app(), path, port=urlsplit(url).port or 0) as again:
        assert again == url
        assert len(await router.discover(server)) == 1


@pytest.mark.parametrize("kind", ["streamable_http", "http_sse"])
async def test_a_call_survives_a_server_restart_behind_a_kept_client(
    router: Router, kind: str
) -> None:
    """The kept client fails on the call's tools/list, before the call is sent: the call goes
    out once, on a new client."""
    from urllib.parse import urlsplit

    def app() -> object:
        server = fakes.docs_search_server()
        return server.sse_app() if kind == "http_sse" else server

    path = "/sse" if kind == "http_sse" else fakes.MCP_PATH
    name, arguments = "docs-search_narrative_i_o_knowledge_base", '{"query": "limits"}'
    async with fakes.serve(app(), path) as url:
        server = {"alias": "docs", "url": url}
        assert not (await router.call(name, arguments, server)).is_error  # kept afterwards
    async with fakes.serve(app(), path, port=urlsplit(url).port or 0):
        result = await router.call(name, arguments, server)
    assert not result.is_error and "limits" in result.content[0].text.text
