"""Parley at scale, driven by a client that lives with failures: several api, gateway and runner
processes on one PostgreSQL (processes.Deployment), the scripted fake Bedrock, requests retried
through whichever gateway answers (a StartRun with the same client_op_id), event streams resumed
with Last-Event-ID. `chaos` kills api, gateway and runner processes with SIGKILL under that load
(the model streaming its answers) and starts them again, then checks that nothing was lost or
doubled, in the database and in what each stream showed. Used by
tests/e2e/test_many_processes.py (bounded) and the bench's chaos cell (longer)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.fakes import bedrock as fb
from tests.spec_examples import example_defaults

from .conftest import GatewayClient
from .processes import Deployment, Process, deployment
from .runner_suite import unique

TERMINAL_EVENTS = {"run.completed", "run.failed", "run.requires_action"}
DELTA, RESTARTED, TURN = "message.delta", "turn.restarted", "turn"


@asynccontextmanager
async def running(
    database_url: str, cwd: Path, **options: Any
) -> AsyncIterator[tuple[Deployment, fb.FakeBedrock, list[GatewayClient]]]:
    """A deployment (processes.deployment's options) on `database_url`, which `parley migrate`
    brings to head, with a client per gateway."""
    async with fb.serve_fake_bedrock() as bedrock, AsyncExitStack() as stack:
        parley = deployment(cwd, bedrock.url, database_url, **options)
        try:
            await parley.start()
            clients = []
            for base in parley.gateways:
                http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
                clients.append(GatewayClient(http))
            yield parley, bedrock, clients
        finally:
            await parley.stop()


@dataclass
class Followed:
    events: list[dict[str, Any]] = field(default_factory=list)  # as received, in order
    connections: int = 0

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def gap_free(self) -> bool:
        """Every seq from 1, once, in order, to a terminal event."""
        seqs = [e["seq"] for e in self.events]
        ended = bool(self.events) and self.events[-1]["type"] in TERMINAL_EVENTS
        return ended and seqs == list(range(1, len(seqs) + 1))

    def faults(self, claims: int) -> tuple[list[str], list[str]]:
        """What a client reading these events would get wrong, for a run claimed `claims`
        times, as (lost, doubled): a turn whose latest attempt's deltas spell less than its
        text, or more; a turn published twice; a delta of another attempt with no turn.restarted
        between (the superseded deltas could not be told apart); an attempt or a restart the
        run's claims cannot explain. A turn.restarted itself is no gap: the turn is written
        again."""
        lost: list[str] = []
        doubled: list[str] = []
        shown: dict[int, tuple[int, str]] = {}  # turn_index: (attempt, text) a client keeps
        published: Counter[int] = Counter()
        for e in self.events:
            kind, index = e["type"], e.get("turn_index", 0)
            if kind in (DELTA, RESTARTED) and not 1 <= e["attempt"] <= claims:
                doubled.append(f"seq {e['seq']}: attempt {e['attempt']} of {claims} claims")
            if kind == RESTARTED:
                if claims == 1:
                    doubled.append(f"seq {e['seq']}: a turn restarted in a run claimed once")
                shown[index] = (e["attempt"], "")
            elif kind == DELTA:
                attempt, text = shown.get(index, (e["attempt"], ""))
                if e["attempt"] != attempt:
                    doubled.append(f"seq {e['seq']}: attempt {e['attempt']} among {attempt}'s")
                shown[index] = (attempt, text + e["text"])
            elif kind == TURN:
                turn = e["turn"]
                index = turn.get("turn_index", 0)
                published[index] += 1
                text = "".join(b["text"] for b in turn["content_blocks"] if b["type"] == "text")
                _, streamed = shown.pop(index, (0, ""))
                if streamed != text and published[index] == 1:
                    where = lost if len(streamed) < len(text) else doubled
                    where.append(f"turn {index}: deltas show {streamed!r}, the turn {text!r}")
        doubled += [f"turn {i} published {n} times" for i, n in published.items() if n > 1]
        return lost, doubled


async def follow(
    pick: Callable[[], GatewayClient],
    run_id: str,
    deadline_s: float = 60.0,
    into: Followed | None = None,
) -> Followed:
    """The run's SSE stream to its terminal event, through the gateway `pick()` names, resumed
    with Last-Event-ID after anything that cuts it (a gateway or api process killed); its events
    land in `into` as they come, when given."""
    followed = into if into is not None else Followed()
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        client = pick()
        headers = client.headers()
        if followed.events:
            headers["Last-Event-ID"] = str(followed.events[-1]["seq"])
        followed.connections += 1
        try:
            async with client.http.stream(
                "GET", f"/agents/runs/{run_id}/events", headers=headers, timeout=None
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise httpx.TransportError(f"HTTP {response.status_code}")
                frame: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line:
                        key, _, value = line.partition(":")
                        frame[key] = value.lstrip(" ")
                        continue
                    if "id" in frame and "data" in frame:
                        event = json.loads(frame["data"])
                        assert event["seq"] == int(frame["id"]), frame
                        followed.events.append(event)
                        if event["type"] in TERMINAL_EVENTS:
                            return followed
                    frame = {}
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)  # then through whichever gateway answers
    raise AssertionError(f"run {run_id}: no terminal event in {deadline_s} s: {followed}")


async def request(
    gw: list[GatewayClient], method: str, path: str, deadline_s: float = 60.0, **kw: Any
) -> httpx.Response:
    """Through a random gateway, again (through another, maybe) while the answer is a 5xx or the
    connection failed: a killed process is started again meanwhile."""
    until = time.monotonic() + deadline_s
    while True:
        client = random.choice(gw)
        try:
            r = await client.http.request(method, path, headers=client.headers(), **kw)
            if r.status_code < 500:
                return r
        except httpx.HTTPError:
            pass
        assert time.monotonic() < until, f"{method} {path}: no answer in {deadline_s} s"
        await asyncio.sleep(0.1)


# --- chaos ----------------------------------------------------------------------------------------

MODEL_S = 0.2  # each model call's latency: kills land while runs wait on their model
TURNS = 2  # runs per conversation, one after the other
# Streamed over MODEL_S in 8 deltas: some are written before the answer ends (the outbox flushes
# after 100 ms), so a kill mid-stream leaves a partial turn that the next claim writes again.
ANSWER = replace(fb.slow(fb.text("All good: nothing lost, nothing doubled."), MODEL_S), pieces=8)


@dataclass
class Conversation:
    id: str
    question: str  # its first user message: the fake's key for every model call of it
    runs: list[str] = field(default_factory=list)
    streams: list[Followed] = field(default_factory=list)


@dataclass
class ChaosReport:
    kills: list[str]  # process names, in order
    conversations: int
    runs: int
    resumed: int  # runs claimed more than once (their runner died, or its store)
    stream_resumptions: int  # reconnections with Last-Event-ID
    deltas: int  # message.delta events the streams showed
    restarted_turns: int  # turn.restarted events they showed (a turn lost mid-stream, redone)
    seconds: float
    lost: list[str] = field(default_factory=list)  # what is missing, one line each
    duplicated: list[str] = field(default_factory=list)  # what is there twice (or more)

    def line(self) -> str:
        return (
            f"chaos: {len(self.kills)} kills ({', '.join(self.kills)}) in {self.seconds:.0f} s; "
            f"{self.runs} runs in {self.conversations} conversations, {self.resumed} resumed "
            f"after a kill, {self.stream_resumptions} streams resumed with Last-Event-ID, "
            f"{self.deltas} deltas and {self.restarted_turns} restarted turns streamed; "
            f"{len(self.lost)} lost, {len(self.duplicated)} duplicated"
        )


async def _conversation(gw: list[GatewayClient], bedrock: fb.FakeBedrock, w: int) -> Conversation:
    question = unique(f"Chaos worker {w} asks.")
    bedrock.on(question, *[ANSWER] * 6 * TURNS)  # redone calls take more
    r = await request(gw, "POST", "/agents/conversations", json={"defaults": example_defaults()})
    assert r.status_code == 200, r.text
    conversation = Conversation(r.json()["id"], question)
    for turn in range(TURNS):
        body = {
            "client_op_id": str(uuid.uuid4()),  # the same on every retry: one run, however often
            "expected_version": 2 * turn,
            "payload": {"kind": "user_message", "text": question if turn == 0 else "And again?"},
        }
        r = await request(gw, "POST", f"/agents/conversations/{conversation.id}/runs", json=body)
        assert r.status_code in (200, 202), r.text
        conversation.runs.append(r.json()["id"])
        conversation.streams.append(await follow(lambda: random.choice(gw), r.json()["id"]))
    return conversation


async def _kill_and_restart(parley: Deployment, until: float, min_kills: int = 0) -> list[str]:
    """SIGKILL an api, a gateway, a runner, … at random moments, each started again at once (its
    ports, name and settings kept) while the next kill comes; one of each kind always serves.
    Until `until`, and on until `min_kills` were made (a loaded machine restarts slowly, and a
    kind whose twin is still starting is not killed)."""
    killed: list[str] = []
    kinds = ["api", "gateway", "runner"]
    restarts: list[asyncio.Task[None]] = []

    async def kill_and_restart(victim: Process) -> None:
        await victim.kill()
        await asyncio.sleep(random.uniform(0.05, 0.5))
        await victim.start()

    while time.monotonic() < until or len(killed) < min_kills:
        await asyncio.sleep(random.uniform(0.4, 1.2))
        serving = [p for p in parley.of(kinds[len(killed) % len(kinds)]) if p.serving]
        if len(serving) < 2:
            continue  # its twin is still starting again
        victim = random.choice(serving)
        victim.serving = False
        killed.append(victim.name)
        restarts.append(asyncio.create_task(kill_and_restart(victim)))
    await asyncio.gather(*restarts)
    return killed


async def chaos(
    database_url: str,
    cwd: Path,
    seconds: float,
    workers: int,
    lease_s: int = 3,
    min_kills: int = 0,
) -> ChaosReport:
    """`workers` clients run two-turn conversations for `seconds` (and on until `min_kills`
    kills were made) on 2 api + 2 gateway + 2 runner + 1 tooling processes (balanced address
    lists) while api, gateway and runner processes are killed and started again; then every
    run, message, inference job, model call and stream is checked. A run whose runner died
    mid-write resumes when its lease (`lease_s`) expires."""
    options = {"PARLEY_RUNNER_LEASE_SECONDS": str(lease_s)}
    started = time.monotonic()
    async with running(database_url, cwd, **options) as (parley, bedrock, gw):
        until = time.monotonic() + seconds
        done: list[Conversation] = []
        killing = asyncio.create_task(_kill_and_restart(parley, until, min_kills))

        async def load(w: int) -> None:
            while not killing.done():  # the load lasts as long as the kills
                done.append(await _conversation(gw, bedrock, w))

        await asyncio.wait_for(asyncio.gather(*(load(w) for w in range(workers))), seconds + 90)
        kills = await killing
        runs = {}
        for run_id in (run_id for c in done for run_id in c.runs):
            runs[run_id] = (await request(gw, "GET", f"/agents/runs/{run_id}")).json()
        pages = []
        for c in done:
            pages.append(
                (await request(gw, "GET", f"/agents/conversations/{c.id}/messages")).json()
            )
        rows = await _runs_in_database(database_url)
    report = ChaosReport(
        kills=kills,
        conversations=len(done),
        runs=len(runs),
        resumed=sum(1 for run_id in runs if rows[run_id]["attempts"] > 1),
        stream_resumptions=sum(f.connections - 1 for c in done for f in c.streams),
        deltas=sum(f.types.count(DELTA) for c in done for f in c.streams),
        restarted_turns=sum(f.types.count(RESTARTED) for c in done for f in c.streams),
        seconds=time.monotonic() - started,
    )
    _check(report, done, runs, pages, rows, bedrock)
    return report


def _check(
    report: ChaosReport,
    done: list[Conversation],
    runs: dict[str, Any],
    pages: list[Any],
    rows: dict[str, asyncpg.Record],
    bedrock: fb.FakeBedrock,
) -> None:
    """Fills the report's `lost` and `duplicated`: every run completed, once (its conversation's
    runs and messages), each iteration recorded once and executed once, plus once per claim
    whose runner died with it (the fake's received calls), every stream gap-free and showing
    each turn once, its deltas (of its latest attempt) spelling it."""
    expected_messages = [(i + 1, ("user", "assistant")[i % 2]) for i in range(2 * TURNS)]
    per_conversation = Counter(str(row["conversation_id"]) for row in rows.values())
    for conversation, page in zip(done, pages, strict=True):
        if per_conversation[conversation.id] != TURNS:
            report.duplicated.append(f"{conversation.id}: {per_conversation[conversation.id]} runs")
        messages = [(m["sequence_no"], m["role"]) for m in page["messages"]]
        if messages != expected_messages:
            where = report.lost if len(messages) < len(expected_messages) else report.duplicated
            where.append(f"{conversation.id}: messages {messages}")
        calls = bedrock.requests_for(conversation.question)
        for turn, run_id in enumerate(conversation.runs):
            run, row = runs[run_id], rows[run_id]
            if run["status"] != "completed":
                report.lost.append(f"run {run_id}: {run['status']} {run.get('error')}")
            if not row["jobs"] == row["iterations_used"] == 1:
                report.duplicated.append(f"run {run_id}: {row['jobs']} jobs recorded")
            made = sum(1 for c in calls if len(c.body["messages"]) == 2 * turn + 1)
            if not 1 <= made <= row["attempts"] or (row["attempts"] == 1 and made != 1):
                report.duplicated.append(
                    f"run {run_id}: {made} model calls in {row['attempts']} claims"
                )
        for run_id, followed in zip(conversation.runs, conversation.streams, strict=True):
            if not followed.gap_free:
                seqs = [(e["seq"], e["type"]) for e in followed.events]
                report.lost.append(f"run {run_id}: stream {seqs}")
            lost, doubled = followed.faults(rows[run_id]["attempts"])
            report.lost += [f"run {run_id}: stream: {fault}" for fault in lost]
            report.duplicated += [f"run {run_id}: stream: {fault}" for fault in doubled]


async def _runs_in_database(url: str) -> dict[str, asyncpg.Record]:
    """Every run with its claims (attempts) and recorded inference jobs, read from PostgreSQL."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    database = await asyncpg.connect(dsn)
    try:
        rows = await database.fetch(
            "SELECT r.id, r.conversation_id, r.status, r.attempts, r.iterations_used,"
            " (SELECT count(*) FROM inference_jobs j WHERE j.run_id = r.id) AS jobs FROM runs r"
        )
    finally:
        await database.close()
    return {str(row["id"]): row for row in rows}
