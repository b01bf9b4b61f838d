"""A run's event stream as a client reads it through the gateway, for the streaming tests:
every event (its `event:` and `id:` lines checked), and a turn's text from its deltas."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .runner_suite import RunnerSuite


async def read_events(
    rs: RunnerSuite,
    run_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The stream's events (each `event:` line checked against its type) until it ends, or
    until one satisfies `until` (then the connection is dropped)."""
    events: list[dict[str, Any]] = []
    async with rs.http.stream(
        "GET", f"/agents/runs/{run_id}/events", headers={**rs.headers(), **(headers or {})}
    ) as response:
        assert response.status_code == 200
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in frame:
                    event = json.loads(frame["data"])
                    assert frame["event"] == event["type"] and frame["id"] == str(event["seq"])
                    events.append(event)
                    if until is not None and until(event):
                        break
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.removeprefix(" ")
    return events


def deltas_text(
    events: list[dict[str, Any]], turn_index: int = 0, kind: str = "message.delta"
) -> str:
    """What a client shows for a turn: the deltas of its latest attempt, concatenated."""
    latest = max((e["attempt"] for e in events if e["type"] in (kind, "turn.restarted")), default=0)
    return "".join(
        e["text"]
        for e in events
        if e["type"] == kind and e["turn_index"] == turn_index and e["attempt"] == latest
    )
