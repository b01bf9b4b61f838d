"""What one MCP discovery + call costs the caller, by the HTTP transport under the `mcp` SDK (the
choice behind services/tooling/mcp_connect.py), measured in one run so the figures compare as
ratios:

    .venv/bin/python -m tests.bench.mcp_call [--n 500]

Against the benchmark's fake MCP server in its own process: one connected SDK `Client` kept
across iterations (as Parley keeps them), each iteration a `tools/list` and a `tools/call`, one at
a time and 16 at once, over httpx2's own pool (what the SDK brings) and over aiohttp (Parley's
`services/tooling/http_pool.py`); then Parley's connector itself (discovery and a call through
`McpConnector.using`, as the tool router does them). CPU is this process's only.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from services.common.config import Settings
from services.tooling import mcp_connect
from services.tooling.http_pool import AiohttpPool
from tests.bench import cpu_per_call

CONCURRENCY = (1, 16)


async def measure(name: str, call: Callable[[], Awaitable[Any]], n: int) -> dict[int, float]:
    return await cpu_per_call.measure(name, call, n, CONCURRENCY)


async def kept_clients(
    stack: AsyncExitStack, url: str, transport: httpx2.AsyncBaseTransport
) -> list[Client]:
    """One connected client per concurrent caller, all on one transport."""
    return [
        await stack.enter_async_context(
            Client(
                streamable_http_client(url, http_client=httpx2.AsyncClient(transport=transport)),
                cache=None,
            )
        )
        for _ in range(max(CONCURRENCY))
    ]


def list_and_call(clients: list[Client]) -> Callable[[], Awaitable[Any]]:
    async def once() -> Any:
        client = clients.pop()
        try:
            await client.list_tools(cache_mode="bypass")
            return await client.call_tool("echo", {"text": "hi"})
        finally:
            clients.append(client)

    return once


async def main(url: str, n: int) -> None:
    results = {}
    for name, transport in (
        ("httpx2", httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_connections=64))),
        ("aiohttp", AiohttpPool(max_connections=64, policy=lambda address: None)),
    ):
        async with AsyncExitStack() as stack:
            clients = await kept_clients(stack, url, transport)
            results[name] = await measure(
                f"SDK client kept, over {name}", list_and_call(clients), n
            )
        await transport.aclose()

    connector = mcp_connect.McpConnector(Settings(mcp_allow_private_networks=True))
    caller = mcp_connect.Caller(1, 1)

    async def parley() -> Any:
        await connector.using(url, caller, mcp_connect.list_all_tools)
        return await connector.using(
            url, caller, lambda s: mcp_connect.call_tool(s, "echo", {"text": "hi"})
        )

    results["parley"] = await measure("Parley's connector (discovery + call)", parley, n)
    await connector.aclose()
    cpu_per_call.print_ratios(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    with cpu_per_call.fake_server("tests.bench.fake_mcp") as port:
        import uvloop

        uvloop.run(main(f"http://127.0.0.1:{port}/mcp", parser.parse_args().n))
