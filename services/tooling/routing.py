"""Routing a wire name (`{alias}-{tool}`, services/common/contract.py) to a run's MCP server.

Pure: alias resolution against a run's `mcp_servers`. Dash-free names are caller
tools and never reach the router, so here they are unknown too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.v1 import config_pb2

from services.common.contract import split_wire_name
from services.common.errors import ParleyError
from services.common.incidents import AGENT_LOOP_UNKNOWN_TOOL_ALIAS


@dataclass(frozen=True)
class Route:
    """Where a wire name goes: the run's server entry and the tool's name on that server."""

    server: config_pb2.McpServer
    tool: str


def unknown(name: str, why: str, **metadata: object) -> ParleyError:
    return ParleyError(
        AGENT_LOOP_UNKNOWN_TOOL_ALIAS, f"unknown tool `{name}`: {why}", tool_name=name, **metadata
    )


def route(name: str, servers: Sequence[config_pb2.McpServer]) -> Route:
    """The server and tool for `name`; an unknown alias, a dash-free name or a tool outside the
    server's allow-list is AgentLoopUnknownToolAlias."""
    parts = split_wire_name(name)
    if parts is None:
        raise unknown(name, "it has no `{alias}-` prefix, so it is not an MCP tool")
    alias, tool = parts
    for server in servers:
        if server.alias == alias:
            allowed = [t.name for t in server.tools]
            if allowed and tool not in allowed:
                raise unknown(
                    name, f"`{tool}` is not in the allow-list of MCP server `{alias}`", alias=alias
                )
            return Route(server, tool)
    known = ", ".join(s.alias for s in servers) or "(none)"
    raise unknown(name, f"no MCP server has the alias `{alias}` (known: {known})", alias=alias)
