"""Parley's benchmark (issue 6): `make bench` (full), `make bench QUICK=1` (2-3 minutes);
`--smoke` is the few-turn version `make test` runs (tests/e2e/test_bench_smoke.py).

    .venv/bin/python -m tests.bench.run [--quick | --smoke] [--only sequential,profile] [--out DIR]
        [--no-postgres]

Parley runs as a user runs it (`parley up`, or `parley serve …` for scale-out), the fake Converse
and MCP servers each in their own process; Parley's CPU (whole process tree), the fakes' and this
load client's are measured apart. Writes `<out>/bench.json`, `<out>/report.md` and
`<out>/latency.png`, and prints the report. Every loop is bounded in count and in time.

The `peer` group (issue 19) runs the same `no_tool` / `one_tool` turns against `parley up` and
against LangGraph Agent Server (`langgraph dev`, in-memory, its best-case profile: see
langgraph_server.py) in the same invocation, each server pinned to one core and this client and
the fakes to the other, and the report sets every figure beside LangGraph's. Without
.venv-langgraph (`make bench` builds it) the LangGraph half is skipped, saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import calibrate, providers, report, run_listing, stack, streaming  # noqa: E402
from tests.bench.client import (  # noqa: E402
    SCENARIOS,
    WAITS,
    Client,
    LangGraphClient,
    Turn,
    http_client,
)


@dataclass(frozen=True)
class Plan:
    mode: str
    warmup: int
    seq_turns: int
    tput_ns: tuple[int, ...]
    tput_s: float
    get_burst: int
    inflight_runs: int
    inflight_delay_s: float
    inflight_deadline_s: float
    inflight_variants: tuple[tuple[str, dict[str, str]], ...]
    discovery_runs: int
    scaleout_n: int
    scaleout_s: float
    profile_s: float
    postgres_seq_turns: int
    calibration_calls: int
    scaleout_each: tuple[int, ...] = (1, 2)  # api, gateway and runner processes of each
    chaos_s: float = 0.0  # the chaos cell's length (0: not run; make test runs a shorter one)
    chaos_workers: int = 8
    # The peer group: sequential turns per scenario, GETs, and one_tool throughput cells of two
    # lengths (short, steady-state) at each N, each on a fresh server.
    peer_seq_turns: int = 200
    peer_get_burst: int = 2000
    peer_lengths: tuple[tuple[str, float, tuple[int, ...]], ...] = (
        ("short", 3.0, (1, 8, 32, 128)),
        ("steady", 20.0, (1, 8, 32, 128)),
    )
    peer_shipped_turns: int = 10  # sequential one_tool turns on LangGraph as shipped (unpatched)
    # The listing cell (run_listing.py): a page of GET /agents/runs at 10 runs and at this many.
    listing_runs: int = 1_000_000
    listing_pages: int = 300


GROUPS = (
    "calibration",
    "peer",
    "sequential",
    "throughput",
    "inflight",
    "discovery",
    "postgres",
    "scaleout",
    "chaos",
    "profile",
    "providers",
    "streaming",
    "listing",
)
AS_SHIPPED: tuple[str, dict[str, str]] = ("as shipped", {})
PLANS = {
    "full": Plan(
        "full", 20, 200, (1, 8, 32, 128), 20.0, 2000, 2000, 1.0, 30.0,
        # the old default (256 slots), and a memory budget the runs fill (back-pressure)
        (AS_SHIPPED, ("runner_concurrency=256", {"PARLEY_RUNNER_CONCURRENCY": "256"}),
         ("runner_memory_mb=256", {"PARLEY_RUNNER_MEMORY_MB": "256"})),
        30, 32, 20.0, 15.0, 100, 2000, chaos_s=60.0,
    ),
    "quick": Plan(
        "quick", 10, 50, (1, 32, 128), 6.0, 500, 200, 1.0, 30.0,
        (AS_SHIPPED, ("runner_concurrency=200", {"PARLEY_RUNNER_CONCURRENCY": "200"})),
        5, 32, 6.0, 6.0, 30, 1000, chaos_s=30.0,
        peer_seq_turns=50, peer_get_burst=500,
        peer_lengths=(("short", 3.0, (1, 8, 32, 128)), ("steady", 20.0, (32, 128))),
        peer_shipped_turns=5,
    ),
    "smoke": Plan(
        "smoke", 0, 2, (4,), 0.5, 30, 10, 0.1, 20.0, (AS_SHIPPED,), 0, 4, 0.5, 0.0, 2, 20, (2,),
        peer_seq_turns=2, peer_get_burst=16, peer_lengths=(("short", 0.5, (4,)),),
        peer_shipped_turns=0, listing_runs=1000, listing_pages=5,
    ),
}  # fmt: skip


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def dist(values_s: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 0.50),
        "p95_ms": pct(ms, 0.95),
        "p99_ms": pct(ms, 0.99),
        "mean_ms": statistics.fmean(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
    }


def merged(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell of several `run_turns` run side by side (one per gateway)."""
    latencies = [v / 1000 for c in cells for v in c["latencies_ms"]]
    pickups = [p for c in cells for p in c["pickups_ms"]]
    return {
        **cells[0],
        "quarters_turns_per_s": [
            sum(q) for q in zip(*(c["quarters_turns_per_s"] for c in cells), strict=True)
        ],
        "concurrency": sum(c["concurrency"] for c in cells),
        "turns": sum(c["turns"] for c in cells),
        "errors": sum(c["errors"] for c in cells),
        "error_samples": [e for c in cells for e in c["error_samples"]][:5],
        "turns_per_s": sum(c["turns_per_s"] for c in cells),
        "sse_incomplete": sum(c["sse_incomplete"] for c in cells),
        "sse_incomplete_runs": [r for c in cells for r in c["sse_incomplete_runs"]][:5],
        "latency": dist(latencies),
        "latencies_ms": [round(v * 1000, 3) for v in latencies],
        "pickup_ms": {"n": len(pickups), "p50": pct(pickups, 0.5), "p95": pct(pickups, 0.95)},
        "pickups_ms": pickups,
    }


class Bench:
    def __init__(
        self, plan: Plan, out: Path, postgres: bool, only: frozenset[str] = frozenset()
    ) -> None:
        self.plan = plan
        self.only = only
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres = postgres
        self.parley_env: dict[str, str] = {}  # --parley-env: settings every `parley up` gets
        self.result: dict[str, Any] = {
            "mode": plan.mode,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cells": {},
            "errors": 0,
        }
        self.converse: stack.Proc | None = None
        self.mcp: stack.Proc | None = None
        self.cores: tuple[int, ...] = ()  # (servers' core, client's core) while the peer group runs
        self.affinity: set[int] = set()

    # --- shared fakes ---------------------------------------------------------------------------

    @property
    def converse_url(self) -> str:
        assert self.converse is not None
        return f"http://127.0.0.1:{stack.listening_port(self.converse)}"

    @property
    def mcp_url(self) -> str:
        assert self.mcp is not None
        return f"http://127.0.0.1:{stack.listening_port(self.mcp)}/mcp"

    def fakes_cpu(self) -> dict[str, float]:
        assert self.converse and self.mcp
        return {"converse": self.converse.cpu_seconds(), "mcp": self.mcp.cpu_seconds()}

    def cell(self, name: str, data: dict[str, Any]) -> None:
        self.result["cells"][name] = data
        self.result["errors"] += int(data.get("errors", 0))
        self.result["sse_incomplete"] = self.result.get("sse_incomplete", 0) + int(
            data.get("sse_incomplete", 0)
        )
        brief = {k: v for k, v in data.items() if not isinstance(v, list | dict)}
        print(f"[bench] {name}: {json.dumps(brief, default=str)}", flush=True)
        if data.get("error_samples"):
            print(f"[bench]   first errors: {data['error_samples']}", flush=True)

    # --- measuring a stretch of load ------------------------------------------------------------

    async def measured(
        self,
        parley: stack.Parley | stack.LangGraph,
        work: Callable[[], Awaitable[dict[str, Any]]],
        label: str = "parley",
    ) -> dict[str, Any]:
        """Runs `work`, adding the CPU seconds of the server (`<label>_cpu_s`: Parley, or in the
        peer cells either server), the fakes and this client over it, and the server's RSS
        before (idle) and at its peak."""
        idle_rss = parley.rss_bytes()
        cpu0, fakes0, own0 = parley.cpu_seconds(), self.fakes_cpu(), stack.own_cpu_seconds()
        wall0 = time.perf_counter()
        with stack.RssSampler(parley) as rss:
            data = await work()
        wall = time.perf_counter() - wall0
        fakes1 = self.fakes_cpu()
        data.update(
            wall_s=wall,
            **{f"{label}_cpu_s": parley.cpu_seconds() - cpu0},
            fake_converse_cpu_s=fakes1["converse"] - fakes0["converse"],
            fake_mcp_cpu_s=fakes1["mcp"] - fakes0["mcp"],
            client_cpu_s=stack.own_cpu_seconds() - own0,
            rss_idle_mb=idle_rss / 2**20,
            rss_peak_mb=rss.peak / 2**20,
        )
        turns = data.get("turns") or 0
        if turns:
            for key in (f"{label}_cpu_s", "fake_converse_cpu_s", "fake_mcp_cpu_s", "client_cpu_s"):
                data[key.replace("_cpu_s", "_cpu_ms_per_turn")] = data[key] * 1000 / turns
        return data

    async def run_turns(
        self, client: Client, scenario: str, mode: str, count: int, concurrency: int = 1,
        seconds: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """`count` turns (or as many as fit in `seconds`) by `concurrency` clients."""
        latencies: list[float] = []
        ends: list[float] = []
        pickups: list[float] = []
        iterations: list[int] = []
        errors: list[str] = []
        remaining = [count]
        until = time.perf_counter() + seconds if seconds else None
        incomplete0 = len(client.sse_incomplete)
        started = time.perf_counter()

        async def one_client() -> None:
            while remaining[0] > 0 and (until is None or time.perf_counter() < until):
                remaining[0] -= 1
                try:
                    turn: Turn = await client.turn(scenario, mode)
                except Exception as exc:  # noqa: BLE001 - every failure is a counted error
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                latencies.append(turn.seconds)
                ends.append(time.perf_counter() - started)
                pickups.extend(turn.pickup_ms)
                iterations.append(turn.iterations)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        quarter = elapsed / 4
        return {
            # Turns finished in each quarter of the cell, per second: flat, or slowing down.
            "quarters_turns_per_s": [
                sum(1 for t in ends if i * quarter <= t < (i + 1) * quarter) / quarter
                if quarter
                else 0.0
                for i in range(4)
            ],
            "scenario": scenario,
            "wait": mode,
            "concurrency": concurrency,
            "turns": len(latencies),
            "errors": len(errors),
            "error_samples": errors[:5],
            "turns_per_s": len(latencies) / elapsed if elapsed else 0.0,
            "sse_incomplete": len(client.sse_incomplete) - incomplete0,
            "sse_incomplete_runs": client.sse_incomplete[incomplete0:][:5],
            "latency": dist(latencies),
            "latencies_ms": [round(v * 1000, 3) for v in latencies],
            "pickup_ms": {"n": len(pickups), "p50": pct(pickups, 0.5), "p95": pct(pickups, 0.95)},
            "pickups_ms": pickups,
        }

    def up(self, **kw: Any) -> stack.Parley:
        if self.parley_env:
            kw["extra_env"] = {**self.parley_env, **kw.get("extra_env", {})}
        return stack.parley_up(self.converse_url, self.logs, **kw)

    # --- cells ----------------------------------------------------------------------------------

    async def sequential(self, db: str = "sqlite", turns: int | None = None) -> None:
        """Warm-up, then `turns` sequential turns per scenario x wait mode, on one server."""
        pg = await stack.create_pg_database() if db == "postgres" else None
        parley = self.up(
            db=db, database_url=stack.pg_url(pg) if pg else None, name=f"parley-up-seq-{db}"
        )
        try:
            async with http_client(parley.url) as http:
                client = Client(http, parley.token, self.mcp_url)
                for scenario in SCENARIOS:
                    for mode in WAITS:
                        if db == "postgres" and mode == "poll":
                            continue
                        if self.plan.warmup:
                            await self.run_turns(client, scenario, mode, self.plan.warmup)
                        n = turns or self.plan.seq_turns
                        data = await self.measured(
                            parley, lambda s=scenario, m=mode, n=n: self.run_turns(client, s, m, n)
                        )
                        self.cell(f"sequential/{db}/{scenario}/{mode}", {"db": db, **data})
                if db == "sqlite":
                    await self.get_cost(parley, client)
        finally:
            parley.stop()
            if pg:
                await stack.drop_pg_database(pg)

    async def get_cost(self, parley: stack.Parley, client: Client) -> None:
        """CPU per `GET /agents/runs/{id}` on a finished one_tool run, 8 pollers at once."""
        turn = await client.turn("one_tool", "sse")
        run_id = turn.run_ids[-1]
        data = await self.get_burst(
            parley,
            lambda: client.get_run(run_id),
            lambda run: run["status"] == "completed",
            self.plan.get_burst,
        )
        self.cell("get_run_cpu", data)

    async def get_burst(
        self,
        server: stack.Parley | stack.LangGraph,
        get: Callable[[], Awaitable[dict[str, Any]]],
        ok: Callable[[dict[str, Any]], bool],
        count: int,
        label: str = "parley",
    ) -> dict[str, Any]:
        """`count` GETs of one finished run by 8 pollers at once: the server's CPU per GET."""
        latencies: list[float] = []
        errors = [0]

        async def poller(share: int) -> None:
            for _ in range(share):
                t0 = time.perf_counter()
                try:
                    if not ok(await get()):
                        errors[0] += 1
                except Exception:  # noqa: BLE001
                    errors[0] += 1
                latencies.append(time.perf_counter() - t0)

        async def work() -> dict[str, Any]:
            await asyncio.gather(*(poller(count // 8) for _ in range(8)))
            return {"gets": len(latencies), "errors": errors[0], "latency": dist(latencies)}

        data = await self.measured(server, work, label)
        data[f"{label}_cpu_ms_per_get"] = data[f"{label}_cpu_s"] * 1000 / max(1, data["gets"])
        data["client_cpu_ms_per_get"] = data["client_cpu_s"] * 1000 / max(1, data["gets"])
        return data

    async def throughput(self, n: int, db: str = "sqlite", scenario: str = "one_tool") -> None:
        pg = await stack.create_pg_database() if db == "postgres" else None
        parley = self.up(
            db=db, database_url=stack.pg_url(pg) if pg else None, name=f"parley-up-tput-{db}-{n}"
        )
        try:
            async with http_client(parley.url, connections=max(64, 2 * n + 8)) as http:
                client = Client(http, parley.token, self.mcp_url)
                await self.run_turns(client, scenario, "sse", max(2, min(n, 16)), min(n, 16))
                data = await self.measured(
                    parley,
                    lambda: self.run_turns(
                        client, scenario, "sse", 10**9, n, seconds=self.plan.tput_s
                    ),
                )
            data.pop("latencies_ms", None)
            self.cell(f"throughput/{db}/{scenario}/n={n}", {"db": db, **data})
        finally:
            parley.stop()
            if pg:
                await stack.drop_pg_database(pg)

    async def inflight(self, label: str, env: dict[str, str]) -> None:
        """`inflight_runs` runs started at once against a model that takes `delay` per call:
        wall time until all are terminal (SSE), peak RSS, errors."""
        plan = self.plan
        slow = stack.start_fake_converse(
            self.logs, plan.inflight_delay_s, name="fake-converse-slow"
        )
        parley = stack.parley_up(
            f"http://127.0.0.1:{stack.listening_port(slow)}", self.logs,
            extra_env={**self.parley_env, **env},
            name=f"parley-up-inflight-{label.split('=')[0].replace(' ', '-')}",
        )  # fmt: skip
        try:
            count = plan.inflight_runs
            async with http_client(parley.url, connections=count + 16, timeout=120) as http:
                client = Client(
                    http, parley.token, self.mcp_url, deadline_s=plan.inflight_deadline_s
                )
                sem = asyncio.Semaphore(64)

                async def create() -> str:
                    async with sem:
                        return (await client.create_conversation("no_tool"))["id"]

                conversations = await asyncio.gather(*(create() for _ in range(count)))
                results: dict[str, Any] = {"done": 0, "errors": [], "last": 0.0, "late": 0}

                async def one(cid: str, t0: float) -> None:
                    try:
                        run = await client.start_run(
                            cid, {"kind": "user_message", "text": "What is 2 + 2?"}, 0
                        )
                        done, _ = await client.wait(run["id"], "sse")
                        if (done["status"], done["final_text"]) != ("completed", "4"):
                            raise RuntimeError(f"{done['status']} {done.get('error')}")
                        results["done"] += 1
                        results["last"] = time.perf_counter() - t0
                    except TimeoutError:  # not terminal by the deadline: a miss, not an error
                        results["late"] += 1
                    except Exception as exc:  # noqa: BLE001
                        results["errors"].append(f"{type(exc).__name__}: {exc}"[:200])

                async def work() -> dict[str, Any]:
                    t0 = time.perf_counter()
                    await asyncio.gather(*(one(cid, t0) for cid in conversations))
                    return {
                        "variant": label,
                        "runs": count,
                        "model_delay_s": plan.inflight_delay_s,
                        "terminal": results["done"],
                        "all_terminal_s": results["last"] if results["done"] == count else None,
                        "not_terminal_at_deadline": results["late"],
                        "deadline_s": plan.inflight_deadline_s,
                        "errors": len(results["errors"]),
                        "error_samples": sorted(set(results["errors"]))[:5],
                    }

                data = await self.measured(parley, work)
            self.cell(f"inflight/{label}", data)
        finally:
            parley.stop()
            slow.stop()

    async def discovery(self) -> None:
        """tests/bench/discovery.py: 1, 3, 10 MCP servers x 200 ms, through the tooling server."""
        proc = await asyncio.to_thread(
            subprocess.run,
            stack.python("tests.bench.discovery", "--runs", str(self.plan.discovery_runs)),
            cwd=stack.REPO, env=stack.base_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        rows = {}
        for line in proc.stdout.splitlines():
            m = re.match(r"\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
            if m:
                rows[m.group(1)] = {
                    "p50_ms": float(m.group(2)),
                    "p95_ms": float(m.group(3)),
                    "min_ms": float(m.group(4)),
                    "max_ms": float(m.group(5)),
                }
        errors = 0 if proc.returncode == 0 and len(rows) == 3 else 1
        self.cell(
            "discovery",
            {
                "servers": rows,
                "errors": errors,
                "stderr_tail": proc.stderr[-500:] if errors else "",
            },
        )

    async def scaleout(self, each: int) -> None:
        """`parley serve`: `each` api, gateway and runner processes and one tooling, on one
        PostgreSQL; one_tool throughput with the clients spread over the gateways, and inference
        calls per run (= iterations: nothing ran twice)."""
        pg = await stack.create_pg_database()
        parley = stack.parley_serve(
            self.converse_url, stack.pg_url(pg), each, self.logs, f"scaleout{each}",
            apis=each, gateways=each,
        )  # fmt: skip
        try:
            n = self.plan.scaleout_n
            async with contextlib.AsyncExitStack() as sessions:
                clients = []
                for url in parley.urls:
                    http = await sessions.enter_async_context(
                        http_client(url, connections=2 * n + 8)
                    )
                    clients.append(Client(http, parley.token, self.mcp_url))
                for client in clients:
                    await self.run_turns(client, "one_tool", "sse", 4, 4)
                calls0 = await self.converse_calls()
                per_process0 = {p.name: p.cpu_seconds() for p in parley.procs}

                async def spread() -> dict[str, Any]:
                    cells = await asyncio.gather(
                        *(
                            self.run_turns(
                                client, "one_tool", "sse", 10**9, n // len(clients),
                                seconds=self.plan.scaleout_s,
                            )
                            for client in clients
                        )
                    )  # fmt: skip
                    return merged(cells)

                data = await self.measured(parley, spread)
                calls = await self.converse_calls() - calls0
                # Which process saturates: CPU seconds per wall second (1.0 = one core).
                data["cores_by_process"] = {
                    p.name.split("-", 1)[1]: (p.cpu_seconds() - per_process0[p.name])
                    / data["wall_s"]
                    for p in parley.procs
                }
            data.pop("latencies_ms", None)
            data.update(await self.exactly_once(pg, calls))
            data["each"] = each
            data["errors"] += data["exactly_once_violations"]
            self.cell(f"scaleout/postgres/each={each}", data)
        finally:
            parley.stop()
            await stack.drop_pg_database(pg)

    async def chaos(self) -> None:
        """tests/e2e/scale.py's chaos, for `chaos_s`: 2 api + 2 gateway + 2 runner + 1 tooling
        processes under load while api, gateway and runner processes are killed (SIGKILL) and
        started again; then every run, message, inference job, model call and stream checked."""
        from tests.e2e import scale

        pg = await stack.create_pg_database()
        workdir = self.logs / "chaos"
        workdir.mkdir(exist_ok=True)
        try:
            got = await scale.chaos(
                stack.pg_url(pg), workdir, self.plan.chaos_s, self.plan.chaos_workers
            )
        finally:
            await stack.drop_pg_database(pg)
        print(f"[bench] {got.line()}", flush=True)
        self.cell(
            "chaos/postgres",
            {
                "seconds": got.seconds,
                "kills": len(got.kills),
                "killed": got.kills,
                "conversations": got.conversations,
                "runs": got.runs,
                "resumed_runs": got.resumed,
                "stream_resumptions": got.stream_resumptions,
                "deltas": got.deltas,
                "restarted_turns": got.restarted_turns,
                "lost": len(got.lost),
                "duplicated": len(got.duplicated),
                "errors": len(got.lost) + len(got.duplicated),
                "error_samples": (got.lost + got.duplicated)[:5],
                "summary": got.line(),
            },
        )

    async def converse_calls(self) -> int:
        async with http_client(self.converse_url) as direct, direct.get("/stats") as response:
            return int((await response.json(content_type=None))["calls"])

    async def exactly_once(self, pg: str, converse_calls: int) -> dict[str, Any]:
        import asyncpg

        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{pg}", timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT r.id, r.status, r.iterations_used, r.attempts, "
                "(SELECT count(*) FROM inference_jobs j WHERE j.run_id = r.id) AS jobs "
                "FROM runs r"
            )
        finally:
            await conn.close()
        bad = [
            dict(r)
            for r in rows
            if r["status"] != "completed" or r["jobs"] != r["iterations_used"] or r["attempts"] != 1
        ]
        jobs = sum(r["jobs"] for r in rows)
        iterations = sum(r["iterations_used"] or 0 for r in rows)
        return {
            "runs_in_db": len(rows),
            "inference_jobs": jobs,
            "iterations": iterations,
            "inference_jobs_per_run": jobs / max(1, len(rows)),
            "converse_calls_in_window": converse_calls,
            "exactly_once_violations": len(bad),
            "violation_samples": [{k: str(v) for k, v in b.items()} for b in bad[:5]],
        }

    async def profile(self) -> None:
        """py-spy on the `parley up` process while 4 clients run one_tool turns (SSE). Only
        samples of the thread holding the GIL are kept (`--gil`), so idle threads (aiosqlite's
        worker waiting on its queue, the event loop in epoll) do not count as work; CPU spent in
        C with the GIL released (sqlite itself, gRPC's core) is not in the profile."""
        parley = self.up(name="parley-up-profile")
        raw = self.out / "profile-one_tool.txt"
        try:
            async with http_client(parley.url) as http:
                client = Client(http, parley.token, self.mcp_url)
                await self.run_turns(client, "one_tool", "sse", 8, 4)
                spy = subprocess.Popen(
                    [
                        str(stack.BIN / "py-spy"), "record", "--pid", str(parley.procs[0].pid),
                        "--rate", "500", "--format", "raw", "--output", str(raw), "--gil",
                        "--duration", str(int(self.plan.profile_s)), "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                await asyncio.sleep(0.5)
                data = await self.run_turns(
                    client, "one_tool", "sse", 10**9, 4, seconds=self.plan.profile_s - 0.5
                )
                _, err = await asyncio.to_thread(spy.communicate, timeout=60)
            if spy.returncode != 0 or not raw.exists():
                self.cell("profile", {"errors": 0, "skipped": f"py-spy failed: {err[-300:]}"})
                return
            summary = report.summarize_profile(raw.read_text())
            summary.update(turns=data["turns"], errors=data["errors"], raw=str(raw.name))
            self.cell("profile", summary)
        finally:
            parley.stop()

    # --- side by side with LangGraph Agent Server (issue 19) ------------------------------------

    def peer_up(self, server: str, name: str) -> stack.Parley | stack.LangGraph:
        """A fresh `parley up` (SQLite, as shipped) or LangGraph Agent Server (best case, or
        `langgraph-shipped`: as installed), on the servers' core."""
        up: stack.Parley | stack.LangGraph
        if server == "parley":
            up = self.up(name=f"parley-up-{name}")
        elif server == "langgraph-shipped":
            up = stack.langgraph_up(self.logs, profile="shipped", name=f"langgraph-shipped-{name}")
        else:
            up = stack.langgraph_up(self.logs, name=f"langgraph-{name}")
            if "langgraph_profile" not in self.result:
                self.result["langgraph_profile"] = up.settings
                for line in up.settings:
                    print(f"[bench] LangGraph best case: {line}", flush=True)
        if self.cores:
            for proc in up.procs:
                proc.pin({self.cores[0]})
        return up

    def peer_client(
        self, up: stack.Parley | stack.LangGraph, http: Any
    ) -> Client | LangGraphClient:
        if isinstance(up, stack.Parley):
            return Client(http, up.token, self.mcp_url)
        return LangGraphClient(http)

    def peer_cell(self, server: str, name: str, data: dict[str, Any]) -> None:
        """Adds how busy each core was (the servers' core: the server alone; the other: this
        client and the fakes) and records the cell as `peer/<server>/<name>`."""
        wall = data.get("wall_s") or 0
        if wall:
            data["server_core_busy"] = data["server_cpu_s"] / wall
            others = data["client_cpu_s"] + data["fake_converse_cpu_s"] + data["fake_mcp_cpu_s"]
            data["client_core_busy"] = others / wall
        data.pop("latencies_ms", None)
        data.pop("pickups_ms", None)
        self.cell(f"peer/{server}/{name}", {"server": server, **data})

    async def peer_sequential(self, server: str) -> None:
        """Sequential no_tool and one_tool turns, then GETs of a finished one_tool run."""
        plan = self.plan
        up = self.peer_up(server, "seq")
        try:
            async with http_client(up.url) as http:
                client = self.peer_client(up, http)
                for scenario in ("no_tool", "one_tool"):
                    if plan.warmup:
                        await self.run_turns(client, scenario, "sse", plan.warmup)
                    data = await self.measured(
                        up,
                        lambda s=scenario: self.run_turns(client, s, "sse", plan.peer_seq_turns),
                        "server",
                    )
                    self.peer_cell(server, f"sequential/{scenario}", data)
                turn = await client.turn("one_tool", "sse")
                if isinstance(client, LangGraphClient):
                    data = await self.get_burst(
                        up,
                        lambda: client.get_run(turn.thread_id, turn.run_ids[-1]),
                        lambda run: run["status"] == "success",
                        plan.peer_get_burst,
                        "server",
                    )
                else:
                    data = await self.get_burst(
                        up,
                        lambda: client.get_run(turn.run_ids[-1]),
                        lambda run: run["status"] == "completed",
                        plan.peer_get_burst,
                        "server",
                    )
                self.peer_cell(server, "get_run", data)
        finally:
            up.stop()

    async def peer_shipped(self) -> None:
        """A few sequential one_tool turns on LangGraph as installed: what the best-case patch
        takes away (the queue poll's idle sleep)."""
        up = self.peer_up("langgraph-shipped", "seq")
        try:
            async with http_client(up.url) as http:
                client = self.peer_client(up, http)
                await self.run_turns(client, "one_tool", "sse", 1)
                data = await self.measured(
                    up,
                    lambda: self.run_turns(client, "one_tool", "sse", self.plan.peer_shipped_turns),
                    "server",
                )
            self.peer_cell("langgraph-shipped", "sequential/one_tool", data)
        finally:
            up.stop()

    async def peer_throughput(self, server: str, length: str, seconds: float, n: int) -> None:
        """`n` clients running one_tool turns for `seconds` against a fresh server."""
        up = self.peer_up(server, f"{length}-n{n}")
        try:
            async with http_client(up.url, connections=max(64, 2 * n + 8)) as http:
                client = self.peer_client(up, http)
                await self.run_turns(client, "one_tool", "sse", max(2, min(n, 16)), min(n, 16))
                data = await self.measured(
                    up,
                    lambda: self.run_turns(client, "one_tool", "sse", 10**9, n, seconds=seconds),
                    "server",
                )
            data.update(length=length, seconds=seconds)
            self.peer_cell(server, f"one_tool/{length}/n={n}", data)
        finally:
            up.stop()

    async def peer(self) -> None:
        missing = stack.langgraph_missing()
        servers = ["parley"]
        if missing:
            self.result["langgraph"] = f"LangGraph Agent Server NOT run: {missing}"
            print(f"[bench] {self.result['langgraph']}", flush=True)
        else:
            servers.append("langgraph")
        self.result["peer_pinning"] = self.pin_peer()
        print(f"[bench] peer pinning: {self.result['peer_pinning']}", flush=True)
        try:
            for server in servers:
                await self.peer_sequential(server)
            if not missing and self.plan.peer_shipped_turns:
                await self.peer_shipped()
            # The servers take turns cell by cell, so that the machine's drift touches both alike.
            for length, seconds, ns in self.plan.peer_lengths:
                for n in ns:
                    for server in servers:
                        await self.peer_throughput(server, length, seconds, n)
        finally:
            self.unpin_peer()

    def pin_peer(self) -> str:
        """The servers on one core, this client and the fakes on another (when there are two)."""
        self.affinity = os.sched_getaffinity(0)
        usable = sorted(self.affinity)
        if len(usable) < 2:
            self.cores = ()
            return f"not pinned: only cores {usable} usable"
        self.cores = (usable[0], usable[1])
        client_core = {usable[1]}
        stack.pin_self(client_core)
        assert self.converse and self.mcp
        self.converse.pin(client_core)
        self.mcp.pin(client_core)
        return (
            f"server (parley up / langgraph dev, whole process tree) on core {usable[0]}; "
            f"load client, fake Converse and fake MCP on core {usable[1]}"
        )

    def unpin_peer(self) -> None:
        if not self.cores:
            return
        everywhere = self.affinity  # as the bench started
        stack.pin_self(everywhere)
        assert self.converse and self.mcp
        self.converse.pin(everywhere)
        self.mcp.pin(everywhere)
        self.cores = ()

    # --- the whole plan -------------------------------------------------------------------------

    def wanted(self, group: str) -> bool:
        return not self.only or group in self.only

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        self.converse = stack.start_fake_converse(self.logs)
        self.mcp = stack.start_fake_mcp(self.logs)
        pg = self.postgres and await stack.pg_available()
        wanted = self.wanted
        try:
            if wanted("calibration"):  # first, while nothing else runs
                self.cell("calibration", await calibrate.measure(self.logs, plan.calibration_calls))
            if wanted("sequential"):
                await self.sequential("sqlite")
            if wanted("throughput"):
                for n in plan.tput_ns:
                    await self.throughput(n)
            if wanted("inflight"):
                for label, env in plan.inflight_variants:
                    await self.inflight(label, env)
            if plan.discovery_runs and wanted("discovery"):
                await self.discovery()
            if pg:
                if plan.mode != "smoke" and wanted("postgres"):
                    await self.sequential("postgres", plan.postgres_seq_turns)
                    await self.throughput(32, db="postgres")
                if wanted("scaleout"):
                    for each in plan.scaleout_each:
                        await self.scaleout(each)
                if plan.chaos_s and wanted("chaos"):
                    await self.chaos()
                if wanted("listing"):
                    self.cell(
                        "listing/postgres",
                        await run_listing.measure(self.logs, plan.listing_runs, plan.listing_pages),
                    )
            else:
                self.result["postgres"] = "PostgreSQL not available: postgres cells NOT run"
                print(f"[bench] {self.result['postgres']}", flush=True)
            if wanted("streaming"):
                await streaming.cells(self)
            if wanted("peer"):
                await self.peer()
            if plan.profile_s and wanted("profile"):
                await self.profile()
            if wanted("providers"):
                await providers.cells(self)
        finally:
            self.converse.stop()
            self.mcp.stop()
        self.result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return self.result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true")
    group.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated cell groups to run (default: all): {', '.join(GROUPS)}",
    )
    parser.add_argument(
        "--parley-env",
        action="append",
        default=[],
        metavar="PARLEY_X=VALUE",
        help="a setting for every `parley up` (e.g. PARLEY_IN_PROCESS=false: an A/B of a knob)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from <out>/bench.json"
    )
    args = parser.parse_args()
    if args.report_only:
        out = Path(args.out)
        result = json.loads((out / "bench.json").read_text())
        raw = out / "profile-one_tool.txt"
        if raw.exists() and "profile" in result["cells"]:
            result["cells"]["profile"].update(report.summarize_profile(raw.read_text()))
            (out / "bench.json").write_text(json.dumps(result, indent=1, default=str))
        text = report.markdown(result)
        (out / "report.md").write_text(text)
        report.plot(result, out / "latency.png")
        print(text)
        return
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    out = Path(args.out).resolve()  # children run in directories of their own: no relative paths
    out.mkdir(parents=True, exist_ok=True)
    only = frozenset(filter(None, args.only.split(",")))
    if only - set(GROUPS):
        parser.error(f"unknown cell groups: {', '.join(sorted(only - set(GROUPS)))}")
    bench = Bench(plan, out, postgres=not args.no_postgres, only=only)
    bench.parley_env = dict(item.split("=", 1) for item in args.parley_env)
    bench.result["parley_env"] = bench.parley_env
    started = time.perf_counter()
    try:
        import uvloop

        result = uvloop.run(bench.run())
    except ImportError:
        result = asyncio.run(bench.run())
    result["bench_wall_s"] = time.perf_counter() - started
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str))
    text = report.markdown(result)
    (out / "report.md").write_text(text)
    with contextlib.suppress(Exception):
        report.plot(result, out / "latency.png")
    print(text, flush=True)
    print(f"[bench] wrote {out / 'bench.json'}, {out / 'report.md'}, {out / 'latency.png'}")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
