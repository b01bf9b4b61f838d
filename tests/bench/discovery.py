"""Discovery latency per run against 1, 3 and 10 MCP servers that each take 200 ms to answer
tools/list, through the real tooling gRPC server (issue 3: 3 servers well under 400 ms).

    .venv/bin/python -m tests.bench.discovery [--runs 30] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.v1 import (  # noqa: E402
    config_pb2,
    tool_router_service_pb2,
    tool_router_service_pb2_grpc,
)

from services.common.config import Settings  # noqa: E402
from services.common.internal_auth import Role  # noqa: E402
from services.tooling import server as tooling_server  # noqa: E402
from tests.fakes import mcp_servers as fakes  # noqa: E402
from tests.internal import INTERNAL_SECRET, internal_channel  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(runs: int, delay: float) -> None:
    async with AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(fakes.serve(fakes.slow_server(delay)))
            for _ in range(10)
        ]
        running = await tooling_server.start(
            Settings(
                jwt_secret="bench-secret-at-least-32-bytes-long!!",
                internal_secret=INTERNAL_SECRET,
                mcp_allow_private_networks=True,
            ),
            "127.0.0.1:0",
        )
        stack.push_async_callback(running.stop)
        channel = internal_channel(f"127.0.0.1:{running.port}", Role.RUNNER)
        stack.push_async_callback(channel.close)
        stub = tool_router_service_pb2_grpc.ToolRouterServiceStub(channel)
        caller = tool_router_service_pb2.CallerIdentity(company_id=1, user_id=1)
        print(f"tools/list delay {delay * 1000:.0f} ms per server, {runs} runs per row")
        print(f"{'servers':>7} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8} {'max ms':>8}")
        for count in (1, 3, 10):
            request = tool_router_service_pb2.DiscoverToolsRequest(
                mcp_servers=[
                    config_pb2.McpServer(alias=f"s{i}", url=url)
                    for i, url in enumerate(urls[:count])
                ],
                caller=caller,
            )
            await stub.DiscoverTools(request)  # warm the connection pool
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                reply = await stub.DiscoverTools(request)
                samples.append((time.perf_counter() - started) * 1000)
                assert len(reply.tools) == 3 * count
            print(
                f"{count:>7} {statistics.median(samples):>8.1f} {_pct(samples, 0.95):>8.1f} "
                f"{min(samples):>8.1f} {max(samples):>8.1f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.delay))
