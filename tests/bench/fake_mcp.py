"""An MCP server with one tool, `echo(text)`, built with the official `mcp` SDK, in its own process
(uvicorn on a loopback port) for the benchmark. Its CPU is measured apart from Parley's.

    .venv/bin/python -m tests.bench.fake_mcp [--port 0]

It prints `listening <port>` once ready; the endpoint is http://127.0.0.1:<port>/mcp. A call
answers the text `echo:<text>`.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mcp_types as types  # noqa: E402
import uvicorn  # noqa: E402

from tests.fakes.mcp_servers import MCP_PATH, ToolSpec, tool_server  # noqa: E402

ECHO_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


async def _echo(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=f"echo:{arguments.get('text')}")])


def main(port: int) -> None:
    server = tool_server("bench", [ToolSpec("echo", ECHO_SCHEMA, "Echo the text.")], call=_echo)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", loop="auto", backlog=4096
    )
    userver = uvicorn.Server(config)

    def announce() -> None:
        while not userver.started:
            time.sleep(0.01)
        print(f"listening {sock.getsockname()[1]}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    userver.run(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    main(parser.parse_args().port)
