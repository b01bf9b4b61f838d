"""The client against a real `parley up --fake-model`: its own process on free loopback ports,
its own SQLite database in a temporary folder; an MCP server whose `hold` tool answers only when
the test opens its gate (for runs that must stay in flight); a TCP proxy to cut connections."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio

from parley_client import AgentConfig, McpServer, Parley, Tool
from services.common.auth import DEFAULT_SCOPE, mint_token
from tests import spec_examples
from tests.ports import free_ports
from tests.fakes.mcp_servers import ToolSpec, serve, tool_server
from tests.fakes.tcp_proxy import Proxy
from tests.spec_examples import DATA_PLANE

PARLEY = str(Path(sys.executable).with_name("parley"))
SECRET = "client-tests-secret-0123456789abcdef0123"
HOLD_SCHEMA = {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}
BOOKING_TOOL = Tool(**spec_examples.BOOKING_TOOL)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    _users: list[int] = field(default_factory=lambda: [100])

    def token(self, user_id: int = 1, scope: str = DEFAULT_SCOPE) -> str:
        return mint_token(SECRET, 1, user_id, scope)

    def new_user(self) -> int:
        """A user of its own for each test: its lists hold only what the test made."""
        self._users[0] += 1
        return self._users[0]


@pytest.fixture(scope="session")
def parley_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("parley-up")
    http, api, runner, tooling, store = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    env.update(
        PARLEY_HTTP_PORT=str(http),
        PARLEY_API_ADDR=f"127.0.0.1:{api}",
        PARLEY_STORE_ADDR=f"127.0.0.1:{store}",
        PARLEY_RUNNER_ADDR=f"127.0.0.1:{runner}",
        PARLEY_TOOLING_ADDR=f"127.0.0.1:{tooling}",
        PARLEY_JWT_SECRET=SECRET,
    )
    process = subprocess.Popen(
        [PARLEY, "up", "--fake-model"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "try:" in line:
            break
    assert any("built-in echo model" in line for line in output), "".join(output)
    # keep reading its output, so a chatty server never blocks on a full pipe
    threading.Thread(target=process.stdout.read, daemon=True).start()
    try:
        yield Server(f"http://127.0.0.1:{http}", process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def user(parley_server: Server) -> int:
    return parley_server.new_user()


@pytest.fixture
def client(parley_server: Server, user: int) -> Iterator[Parley]:
    with Parley(parley_server.url, parley_server.token(user)) as parley:
        yield parley


@pytest.fixture
def proxy(parley_server: Server) -> Iterator[Proxy]:
    running = Proxy(int(parley_server.url.rpartition(":")[2]))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def proxied(parley_server: Server, proxy: Proxy, user: int) -> Iterator[Parley]:
    """A client whose every connection goes through the proxy."""
    with Parley(proxy.url, parley_server.token(user), max_retries=3) as parley:
        yield parley


# --- the MCP server with gated calls ------------------------------------------------------------


class Gates:
    """`hold` tool calls wait for their key's gate (the run's user text) to open."""

    def __init__(self) -> None:
        self._gates: dict[str, threading.Event] = {}
        self._arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def key(self) -> str:
        key = f"gate-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._gates[key] = threading.Event()
            self._arrived[key] = threading.Event()
        return key

    def open(self, key: str) -> None:
        self._gates[key].set()

    def wait_arrived(self, key: str, timeout: float = 20) -> None:
        assert self._arrived[key].wait(timeout), f"the hold call for {key} never arrived"

    def open_all(self) -> None:
        for gate in self._gates.values():
            gate.set()

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        key = str(arguments.get("key", ""))
        gate, arrived = self._gates.get(key), self._arrived.get(key)
        if gate is None or arrived is None:
            return types.CallToolResult(content=[types.TextContent(text=f"no gate {key}")])
        arrived.set()
        await asyncio.to_thread(gate.wait, 60)
        return types.CallToolResult(content=[types.TextContent(text=f"released {key}")])


@dataclass
class Holding:
    url: str
    gates: Gates

    def config(self, **changes: Any) -> AgentConfig:
        """Defaults with the `hold` MCP tool (alias "gate") and the booking caller tool."""
        return example_config(
            mcp_servers=[McpServer(alias="gate", url=self.url)], tools=[BOOKING_TOOL], **changes
        )


@pytest_asyncio.fixture(scope="session")
async def holding() -> AsyncIterator[Holding]:
    gates = Gates()
    app = tool_server(
        "gated", [ToolSpec("hold", HOLD_SCHEMA, "Waits for its gate.")], call=gates.call
    )
    async with serve(app) as url:
        try:
            yield Holding(url, gates)
        finally:
            gates.open_all()


def example_config(**changes: Any) -> AgentConfig:
    """The defaults of the spec's Example 1."""
    fields: dict[str, Any] = {
        "model": "anthropic.claude-opus-4.6",
        "data_plane_id": DATA_PLANE,
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 1024,
        "temperature": 0.0,
    }
    return AgentConfig(**{**fields, **changes})
