"""Discovery of a run's MCP tools: every server at once, every tools/list page, no cache.

A run with three servers pays about one server's latency. Any failure (unreachable, timeout,
protocol error, a refused URL, a named tool the server lacks, a wire name over 64 characters)
fails the whole discovery with McpDiscoveryFailed naming the alias and the cause.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agents.v1 import config_pb2

from services.common.contract import MAX_WIRE_NAME, wire_name
from services.common.errors import ParleyError
from services.common.incidents import MCP_DISCOVERY_FAILED
from services.common.metrics import (
    TOOLING_DISCOVERY_SECONDS,
    TOOLING_FAILURES,
    TOOLING_TOOLS_DISCOVERED,
)
from services.tooling import schema
from services.tooling.failures import McpFailure
from services.tooling.mcp_connect import (
    Caller,
    ListedTool,
    McpConnector,
    log_failure,
    list_all_tools,
)

DISCOVERY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Tool:
    """A tool as the model will see it (always offered with strict: false)."""

    wire_name: str
    description: str
    input_schema_json: str


class _Failed(Exception):
    def __init__(self, alias: str, failure: McpFailure) -> None:
        self.alias, self.failure = alias, failure


async def discover_tools(
    connector: McpConnector,
    servers: Sequence[config_pb2.McpServer],
    caller: Caller,
    timeout: float = DISCOVERY_TIMEOUT_SECONDS,
) -> list[Tool]:
    """The run's MCP catalogue, in server order then each server's listing order."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_discover_one(connector, server, caller, timeout))
                for server in servers
            ]
    except* _Failed as failed:
        first = failed.exceptions[0]
        assert isinstance(first, _Failed)
        raise ParleyError(
            MCP_DISCOVERY_FAILED,
            f"{first.alias}: {first.failure.message}",
            alias=first.alias,
            cause=first.failure.cause,
        ) from None
    return [tool for task in tasks for tool in task.result()]


async def _discover_one(
    connector: McpConnector, server: config_pb2.McpServer, caller: Caller, timeout: float
) -> list[Tool]:
    started = time.perf_counter()
    try:
        try:
            async with asyncio.timeout(timeout):
                listed = await connector.using(server.url, caller, list_all_tools)
        except TimeoutError:
            raise McpFailure("timeout", f"tools/list timed out after {timeout:g} s") from None
        tools = _catalogue(server, listed)
    except McpFailure as failure:
        TOOLING_FAILURES.labels("discover", failure.cause).inc()
        log_failure("discovery", server.alias, caller, failure)
        TOOLING_DISCOVERY_SECONDS.labels("failed").observe(time.perf_counter() - started)
        raise _Failed(server.alias, failure) from None
    TOOLING_DISCOVERY_SECONDS.labels("ok").observe(time.perf_counter() - started)
    TOOLING_TOOLS_DISCOVERED.observe(len(tools))
    return tools


def _catalogue(server: config_pb2.McpServer, listed: Sequence[ListedTool]) -> list[Tool]:
    """Apply the allow-list, build wire names, normalise schemas."""
    by_name = {t.name: t for t in listed}
    allowed = [t.name for t in server.tools]
    if allowed:
        missing = [name for name in allowed if name not in by_name]
        if missing:
            raise McpFailure(
                "unknown_tool",
                f"the allow-list names tools the server does not have: {', '.join(missing)}",
            )
        chosen = [by_name[name] for name in dict.fromkeys(allowed)]
    else:
        chosen = list(by_name.values())
    tools = []
    for listed_tool in chosen:
        name = wire_name(server.alias, listed_tool.name)
        if len(name) > MAX_WIRE_NAME:
            raise McpFailure(
                "name_too_long",
                f"the wire name `{name}` is {len(name)} characters; at most {MAX_WIRE_NAME} "
                "are allowed (shorten the alias or use the server's allow-list)",
            )
        normalized = schema.normalize(listed_tool.input_schema)
        tools.append(Tool(name, listed_tool.description, json.dumps(normalized)))
    return tools
