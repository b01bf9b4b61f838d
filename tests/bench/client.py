"""The load client: one turn of each scenario through the public REST API, waiting by SSE or by a
10 ms GET poll loop, and checking every finished turn (wrong results are errors). `LangGraphClient`
drives LangGraph Agent Server the same way, for the side-by-side cells.

It shares the machine's two cores with Parley, so it is written on aiohttp, the cheapest async
HTTP client at hand: httpx costs ~4x the CPU per request, and its connection pool's per-request
scans made the client take ~60 ms of CPU per turn with 128 clients (measured in one bench run),
which starved Parley of the cores the cell is meant to measure."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson

DATA_PLANE = "f79cbdae-4848-47ca-95e8-69588364d185"
SCENARIOS = ("no_tool", "one_tool", "caller_tool")
WAITS = ("sse", "poll")
TERMINAL_EVENTS = {"run.completed", "run.requires_action", "run.failed"}
TERMINAL = {"completed", "requires_action", "failed"}
POLL_S = 0.010
CALLER_TOOL = {
    "name": "confirm",
    "description": "Ask the user to confirm.",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}
MCP_ALIAS = "bench"  # the fake MCP server's tool `echo` is offered as `bench-echo`


class TurnError(Exception):
    pass


@dataclass
class Turn:
    seconds: float
    run_ids: list[str]
    iterations: int
    pickup_ms: list[float] = field(default_factory=list)  # accepted -> running, from events
    thread_id: str = ""  # LangGraph's runs are addressed by thread and run


def defaults(scenario: str, mcp_url: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "anthropic.claude-opus-4.6",
        "data_plane_id": DATA_PLANE,
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 256,
        "temperature": 0.0,
    }
    if scenario == "one_tool":
        base["mcp_servers"] = [{"alias": MCP_ALIAS, "url": mcp_url}]
    elif scenario == "caller_tool":
        base["tools"] = [CALLER_TOOL]
    return base


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Client:
    def __init__(
        self, http: aiohttp.ClientSession, token: str, mcp_url: str, deadline_s: float = 60
    ):
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}
        self.mcp_url = mcp_url
        self.deadline_s = deadline_s
        # Event streams that ended without their terminal event: a Parley bug, counted apart
        # (and each one is also an error of its turn).
        self.sse_incomplete: list[str] = []

    async def _post(self, path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        async with self.http.post(path, data=orjson.dumps(body), headers=self._json_headers) as r:
            content = await r.read()
        if r.status != expect:
            raise TurnError(f"POST {path}: {r.status} {content[:300]!r}")
        return orjson.loads(content)

    @property
    def _json_headers(self) -> dict[str, str]:
        return {**self.headers, "content-type": "application/json"}

    async def create_conversation(self, scenario: str) -> dict[str, Any]:
        body = {"name": f"bench {scenario}", "defaults": defaults(scenario, self.mcp_url)}
        return await self._post("/agents/conversations", body, 200)

    async def start_run(
        self, conversation_id: str, payload: dict[str, Any], expected_version: int
    ) -> dict[str, Any]:
        body = {
            "client_op_id": str(uuid.uuid4()),
            "expected_version": expected_version,
            "payload": payload,
        }
        return await self._post(f"/agents/conversations/{conversation_id}/runs", body, 202)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        async with self.http.get(f"/agents/runs/{run_id}", headers=self.headers) as r:
            content = await r.read()
        if r.status != 200:
            raise TurnError(f"GET run: {r.status} {content[:300]!r}")
        return orjson.loads(content)

    async def wait(self, run_id: str, mode: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The terminal run (and, for SSE, every event of the run)."""
        if mode == "sse":
            return await asyncio.wait_for(self._wait_sse(run_id), self.deadline_s)
        until = time.monotonic() + self.deadline_s
        while True:
            run = await self.get_run(run_id)
            if run["status"] in TERMINAL:
                return run, []
            if time.monotonic() > until:
                raise TurnError(f"run {run_id} not terminal after {self.deadline_s}s")
            await asyncio.sleep(POLL_S)

    async def _wait_sse(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        async with self.http.get(f"/agents/runs/{run_id}/events", headers=self.headers) as response:
            if response.status != 200:
                raise TurnError(f"events: {response.status} {(await response.read())[:300]!r}")
            data: list[str] = []
            async for raw in response.content:  # one line at a time
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        event = orjson.loads("\n".join(data))
                        events.append(event)
                        if event.get("type") in TERMINAL_EVENTS:
                            return event["run"], events
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line.startswith("event: error"):
                    raise TurnError(f"event stream error for run {run_id}")
        self.sse_incomplete.append(run_id)
        raise TurnError(f"event stream of run {run_id} ended without its terminal event")

    async def turn(self, scenario: str, mode: str) -> Turn:
        started = time.perf_counter()
        conversation = await self.create_conversation(scenario)
        cid = conversation["id"]
        user = {"kind": "user_message", "text": "What is 2 + 2?"}
        run = await self.start_run(cid, user, 0)
        done, events = await self.wait(run["id"], mode)
        run_ids = [run["id"]]
        pickups = [_pickup_ms(events)] if events else []
        if scenario == "caller_tool":
            check(done, "requires_action", None, 1)
            calls = done["pending_tool_calls"]
            if len(calls) != 1 or calls[0]["name"] != "confirm":
                raise TurnError(f"unexpected pending_tool_calls {calls}")
            outputs = {
                "kind": "tool_outputs",
                "outputs": [
                    {
                        "tool_use_id": calls[0]["tool_use_id"],
                        "content": "confirmed",
                        "is_error": False,
                    }
                ],
            }
            resumed = await self.start_run(cid, outputs, 2)
            done, events = await self.wait(resumed["id"], mode)
            run_ids.append(resumed["id"])
            if events:
                pickups.append(_pickup_ms(events))
            check(done, "completed", "done: confirmed", 1)
            iterations = 2
        elif scenario == "one_tool":
            check(done, "completed", "done: echo:ping", 2)
            iterations = 2
        else:
            check(done, "completed", "4", 1)
            iterations = 1
        return Turn(
            time.perf_counter() - started, run_ids, iterations, [p for p in pickups if p >= 0]
        )


def check(run: dict[str, Any], status: str, final_text: str | None, iterations: int) -> None:
    got = (run.get("status"), run.get("final_text"), run.get("iterations_used"))
    if got != (status, final_text, iterations):
        raise TurnError(
            f"run {run.get('id')}: expected {(status, final_text, iterations)}, got {got}"
            f" error={run.get('error')}"
        )


def _pickup_ms(events: list[dict[str, Any]]) -> float:
    """accepted (the `pending` status event) -> `running` status event, server timestamps."""
    pending = running = None
    for event in events:
        if event.get("type") == "run.status":
            if event.get("status") == "pending" and pending is None:
                pending = _ts(event["created_at"])
            elif event.get("status") == "running" and running is None:
                running = _ts(event["created_at"])
    if pending is None or running is None:
        return -1.0
    return (running - pending).total_seconds() * 1000


class LangGraphClient:
    """The same turns against LangGraph Agent Server (tests/bench/langgraph_server.py), through its
    REST API as its SDK calls it (`langgraph_sdk`: `threads.create`, `runs.create`,
    `runs.join_stream`, `runs.get`), three requests a turn like Parley's:

    1. `POST /threads` (Parley: `POST /agents/conversations`);
    2. `POST /threads/{t}/runs` with `assistant_id` = the graph (`no_tool` | `one_tool`), the
       user message, `stream_mode: ["updates"]` (one event per node's new messages, as Parley
       streams each new message) and `stream_resumable: true` (a background run: Parley's
       `POST …/runs`);
    3. `GET /threads/{t}/runs/{r}/stream` with `Last-Event-ID: -1`, the SDK's way to join a run's
       stream from its first event (Parley: `GET /agents/runs/{id}/events`). Without a resumable
       stream, a join that arrives after the run ended (a zero-latency model can finish first)
       replays nothing and waits out the server's 0.5 s join poll. An event published while the
       join subscribes can come both replayed and live (the in-memory runtime's event ids are
       per millisecond, not unique): messages are counted once by their own `id`.
       The stream ends after the run's last event; the turn is checked from its `updates` events
       (the final answer and one model call per iteration), and an `error` event is an error.

    `GET /threads/{t}/runs/{r}` is the run read the GET-cost cell compares with Parley's."""

    def __init__(self, http: aiohttp.ClientSession, deadline_s: float = 60) -> None:
        self.http = http
        self.deadline_s = deadline_s
        self.sse_incomplete: list[str] = []  # run_turns counts these for either client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        async with self.http.post(path, data=orjson.dumps(body), headers=headers) as r:
            content = await r.read()
        if r.status != 200:
            raise TurnError(f"POST {path}: {r.status} {content[:300]!r}")
        return orjson.loads(content)

    async def create_thread(self) -> dict[str, Any]:
        return await self._post("/threads", {})

    async def start_run(self, thread_id: str, scenario: str) -> dict[str, Any]:
        body = {
            "assistant_id": scenario,
            "input": {"messages": [{"role": "user", "content": "What is 2 + 2?"}]},
            "stream_mode": ["updates"],
            "stream_resumable": True,
        }
        return await self._post(f"/threads/{thread_id}/runs", body)

    async def get_run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        async with self.http.get(f"/threads/{thread_id}/runs/{run_id}") as r:
            content = await r.read()
        if r.status != 200:
            raise TurnError(f"GET run: {r.status} {content[:300]!r}")
        return orjson.loads(content)

    async def join(self, thread_id: str, run_id: str) -> list[tuple[str, Any]]:
        """Every (event, data) of the run's stream, to its end."""
        return await asyncio.wait_for(self._join(thread_id, run_id), self.deadline_s)

    async def _join(self, thread_id: str, run_id: str) -> list[tuple[str, Any]]:
        events: list[tuple[str, Any]] = []
        path = f"/threads/{thread_id}/runs/{run_id}/stream"
        async with self.http.get(path, headers={"Last-Event-ID": "-1"}) as response:
            if response.status != 200:
                raise TurnError(f"join: {response.status} {(await response.read())[:300]!r}")
            name, data = "message", []
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        events.append((name, orjson.loads("\n".join(data))))
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        return events

    async def turn(self, scenario: str, mode: str = "sse") -> Turn:
        if mode != "sse":
            raise ValueError("the LangGraph cells wait by joining the run's stream only")
        started = time.perf_counter()
        thread = await self.create_thread()
        run = await self.start_run(thread["thread_id"], scenario)
        events = await self.join(thread["thread_id"], run["run_id"])
        iterations = 2 if scenario == "one_tool" else 1
        check_langgraph(run["run_id"], events, "done: echo:ping" if iterations == 2 else "4",
                        iterations)  # fmt: skip
        return Turn(
            time.perf_counter() - started, [run["run_id"]], iterations, thread_id=run["thread_id"]
        )


def check_langgraph(
    run_id: str, events: list[tuple[str, Any]], final_text: str, iterations: int
) -> None:
    """The run's stream holds `iterations` model updates, the last one answering `final_text`."""
    errors = [data for name, data in events if name == "error"]
    answers = {
        message["id"]: message
        for name, data in events
        if name == "updates" and "model" in data
        for message in data["model"]["messages"][-1:]
    }
    last = list(answers.values())[-1] if answers else {}
    got = (last.get("content"), len(answers))
    if errors or got != (final_text, iterations):
        raise TurnError(
            f"run {run_id}: expected {(final_text, iterations)}, got {got} errors={errors[:1]}"
        )


def http_client(
    base_url: str, connections: int = 256, timeout: float = 60
) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )
