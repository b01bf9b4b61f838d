"""routing: the dash routes by alias; everything else is the unknown-tool error."""

from __future__ import annotations

import pytest
from agents.v1 import config_pb2

from services.common.errors import ParleyError
from services.common.contract import split_wire_name
from services.tooling.routing import route

SERVERS = [
    config_pb2.McpServer(alias="docs", url="https://docs.test/mcp"),
    config_pb2.McpServer(
        alias="kb", url="https://kb.test/mcp", tools=[config_pb2.Tool(name="search")]
    ),
]


def test_split_at_the_first_dash() -> None:
    assert split_wire_name("docs-search_kb") == ("docs", "search_kb")
    assert split_wire_name("docs-get-page") == ("docs", "get-page")
    assert split_wire_name("search") is None
    assert split_wire_name("-x") is None and split_wire_name("docs-") is None


def test_route_by_alias() -> None:
    found = route("docs-get-page", SERVERS)
    assert (found.server.alias, found.tool) == ("docs", "get-page")
    assert route("kb-search", SERVERS).server.url == "https://kb.test/mcp"


@pytest.mark.parametrize("name", ["web-search", "search", "kb-delete", "-search", "docs-"])
def test_unknown(name: str) -> None:
    with pytest.raises(ParleyError) as info:
        route(name, SERVERS)
    assert info.value.entry.code == "AgentLoopUnknownToolAlias"
    assert name in info.value.detail
