"""The streaming cells (issue 18), on one `parley up` against the fake Converse process:

- `streaming/cpu`: Parley's CPU per no_tool turn (SSE) with the answer streamed (ConverseStream,
  one chunk) and not (Converse), in alternating rounds so that drift hits both alike;
- `streaming/long/…`: one 1,000-token answer, streamed all at once and paced: the store writes
  its deltas cost (AppendRunEvents calls, read from Parley's /metrics) beside the delta events
  the client saw, and time to first token (the runner's histogram, and the client's first
  message.delta after it started the run, which adds the coalescing wait).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from services.runner import outbox
from tests.bench import stack
from tests.bench.client import Client, TurnError, check, defaults, http_client

LONG_TOKENS = 1000
PACE_PER_S = 250  # a fast model's pace (Claude: tens to a few hundred tokens a second)


async def cells(bench: Any) -> None:
    plan = bench.plan
    parley = bench.up(name="parley-up-streaming")
    try:
        async with http_client(parley.url) as http:
            client = Client(http, parley.token, bench.mcp_url)
            per_round = max(2, plan.seq_turns // 4)
            rounds = 1 if plan.mode == "smoke" else 3
            for stream in (False, True):  # warm both paths
                await _turns(client, stream, max(2, plan.warmup))
            cpu = {False: 0.0, True: 0.0}
            turns = {False: 0, True: 0}
            errors = 0
            for _ in range(rounds):
                for stream in (False, True):
                    data = await bench.measured(
                        parley, lambda s=stream: _turns(client, s, per_round)
                    )
                    cpu[stream] += data["parley_cpu_s"]
                    turns[stream] += data["turns"]
                    errors += data["errors"]
            off = cpu[False] * 1000 / max(1, turns[False])
            on = cpu[True] * 1000 / max(1, turns[True])
            bench.cell(
                "streaming/cpu",
                {
                    "scenario": "no_tool",
                    "turns_each": turns[True],
                    "rounds": rounds,
                    "parley_cpu_ms_per_turn_stream_off": off,
                    "parley_cpu_ms_per_turn_stream_on": on,
                    "stream_on_over_off": on / off if off else None,
                    "flush_after_ms": outbox.FLUSH_AFTER_S * 1000,
                    "flush_chars": outbox.FLUSH_CHARS,
                    "errors": errors,
                },
            )
            paces = (0,) if plan.mode == "smoke" else (0, PACE_PER_S)
            for pace in paces:
                name = "unpaced" if not pace else f"{pace}_tokens_per_s"
                bench.cell(f"streaming/long/{name}", await _long(client, parley, pace))
    finally:
        parley.stop()


async def _turns(client: Client, stream: bool, count: int) -> dict[str, Any]:
    done, errors = 0, []
    for _ in range(count):
        try:
            body = {"defaults": {**defaults("no_tool", client.mcp_url), "stream": stream}}
            conversation = await client._post("/agents/conversations", body, 200)
            user = {"kind": "user_message", "text": "What is 2 + 2?"}
            run = await client.start_run(conversation["id"], user, 0)
            finished, _ = await client.wait(run["id"], "sse")
            check(finished, "completed", "4", 1)
            done += 1
        except Exception as exc:  # noqa: BLE001 - every failure is a counted error
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    return {"turns": done, "errors": len(errors), "error_samples": errors[:3]}


async def _long(client: Client, parley: stack.Parley, pace: int) -> dict[str, Any]:
    """One streamed answer of LONG_TOKENS tokens: what it cost the store, what a client saw."""
    before = await _metrics(client, parley)
    body = {"defaults": {**defaults("no_tool", client.mcp_url), "max_tokens": 4096}}
    conversation = await client._post("/agents/conversations", body, 200)
    text = f"Write {LONG_TOKENS} tokens" + (f" at {pace} per second" if pace else "")
    started = time.perf_counter()
    run = await client.start_run(conversation["id"], {"kind": "user_message", "text": text}, 0)
    first_delta: float | None = None
    events: list[dict[str, Any]] = []
    async with client.http.get(f"/agents/runs/{run['id']}/events", headers=client.headers) as r:
        data: list[str] = []
        async for raw in r.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and data:
                event = orjson.loads("\n".join(data))
                data = []
                events.append(event)
                if event["type"] == "message.delta" and first_delta is None:
                    first_delta = time.perf_counter() - started
                if event["type"].startswith("run.") and event["type"] != "run.status":
                    break
    after = await _metrics(client, parley)
    final = events[-1].get("run") or {}
    deltas = [e for e in events if e["type"] == "message.delta"]
    joined = "".join(e["text"] for e in deltas)
    errors = 0 if final.get("final_text") == joined and len(joined) == 4 * LONG_TOKENS else 1
    ttft_n = after["ttft_count"] - before["ttft_count"]
    return {
        "tokens": LONG_TOKENS,
        "tokens_per_s": pace or None,
        "delta_events": len(deltas),
        "store_writes_for_deltas": int(after["appends"] - before["appends"]),  # + the commit
        "store_writes_for_the_turn": int(after["appends"] - before["appends"]) + 1,
        "ttft_runner_ms": (after["ttft_sum"] - before["ttft_sum"]) * 1000 / ttft_n
        if ttft_n
        else None,
        "first_delta_at_client_ms": first_delta * 1000 if first_delta is not None else None,
        "errors": errors,
    }


_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? ([0-9.e+-]+)$", re.M)


async def _metrics(client: Client, parley: stack.Parley) -> dict[str, float]:
    async with client.http.get("/metrics") as r:
        text = await r.text()
    out = {"appends": 0.0, "ttft_sum": 0.0, "ttft_count": 0.0}
    for name, labels, value in _SAMPLE.findall(text):
        if name == "grpc_server_handled_total" and 'grpc_method="AppendRunEvents"' in labels:
            out["appends"] += float(value)
        elif name == "parley_runner_time_to_first_token_seconds_sum":
            out["ttft_sum"] += float(value)
        elif name == "parley_runner_time_to_first_token_seconds_count":
            out["ttft_count"] += float(value)
    if not text:
        raise TurnError("no /metrics")
    return out
