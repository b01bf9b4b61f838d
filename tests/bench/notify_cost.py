"""What LISTEN/NOTIFY costs per run event on PostgreSQL (services/api/notifications.py), in one
run so the figures compare:

    .venv/bin/python -m tests.bench.notify_cost [--n 3000] [--rounds 6]

One run's events are appended one transaction each through the store's EventLog (the path a live
turn or a delta takes), three ways: with the NOTIFY left out (a one-process deployment's cost),
with it and no other api process listening, and with a second api process (a second EventLog on
its own pool and listener, in this process) following the run, where a notification makes its
subscriber read the log (coalesced: one read may take several events). The variants take turns
in rounds; medians are shown. This process's CPU covers both api processes; PostgreSQL's own CPU
is not counted. Then, one event at a time, commit → the other process's reader holding it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from agents.v1 import run_pb2
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from services.api import event_log
from services.api.db import migrate
from services.api.db.engine import create_database
from services.api.db.models import conversations, runs

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _rows(conn: Connection, run_id: str) -> None:
    now = datetime.now(UTC)
    conn.execute(
        insert(conversations).values(
            id=run_id, company_id=1, user_id=1, defaults="{}", version=0, created_at=now,
            updated_at=now,
        )
    )  # fmt: skip
    conn.execute(
        insert(runs).values(
            id=run_id, conversation_id=run_id, company_id=1, user_id=1, client_op_id=run_id,
            status="running", payload="{}", effective_config="{}", started_at=now,
        )
    )  # fmt: skip


def _turn(run_id: str, i: int) -> event_log.Work[run_pb2.RunEvent]:
    def append(conn: Connection) -> run_pb2.RunEvent:
        event = run_pb2.RunEvent(type=event_log.TURN, turn=run_pb2.LiveTurn(turn_index=i))
        return event_log.append(conn, run_id, event)  # its seq is set by the time it commits

    return append


WARMUP = 100
LAG_EVENTS = 300
VARIANTS = (
    ("no NOTIFY (one api process)", False, False),
    ("NOTIFY, nobody follows the run", True, False),
    ("NOTIFY, another api process follows it", True, True),
)


@dataclass
class Variant:
    label: str
    notify: bool
    run_id: str
    cpu_ms: list[float] = field(default_factory=list)  # per event, one figure per round
    seen: int = 0  # the last seq the other process's reader holds
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def _append(log: event_log.EventLog, variant: Variant, n: int) -> float:
    """CPU ms per event over `n` appends to the variant's run."""
    log.notifications.enabled = variant.notify  # off: what a one-process store would do
    cpu = time.process_time()
    for i in range(n):
        await log.write(_turn(variant.run_id, i))
    return (time.process_time() - cpu) / n * 1000


async def _lags(log: event_log.EventLog, variant: Variant, n: int) -> list[float]:
    """ms from each commit to the other process's reader holding the event, one at a time."""
    lags = []
    for i in range(n):
        event = await log.write(_turn(variant.run_id, i))
        committed = time.perf_counter()
        while variant.seen < event.seq:
            variant.arrived.clear()
            await asyncio.wait_for(variant.arrived.wait(), 10)
        lags.append((time.perf_counter() - committed) * 1000)
    return lags


async def _follow(log: event_log.EventLog, variant: Variant) -> None:
    """The other api process's reader: the log, read after each notification."""
    with log.subscribe(variant.run_id) as subscription:
        while True:
            if not (await subscription.next()).read_log:
                continue
            after = variant.seen
            got = await log.db.read(lambda conn, x=after: event_log.read(conn, variant.run_id, x))
            if got:
                variant.seen = got[-1].seq
                variant.arrived.set()


async def main(n: int, rounds: int) -> None:
    name = f"parley_notify_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await migrate.upgrade(url)
        a, b = (event_log.EventLog(create_database(url)) for _ in range(2))
        await a.notifications.start()
        await b.notifications.start()
        variants = [Variant(label, notify, str(uuid.uuid4())) for label, notify, _ in VARIANTS]
        readers = []
        for variant, (_, _, followed) in zip(variants, VARIANTS, strict=True):
            await a.db.write(lambda conn, r=variant.run_id: _rows(conn, r))
            if followed:
                readers.append(asyncio.create_task(_follow(b, variant)))
            await _append(a, variant, WARMUP)
        for _ in range(rounds):  # the variants take turns: the machine's drift touches each
            for variant in variants:
                variant.cpu_ms.append(await _append(a, variant, n // rounds))
        lags = sorted(await _lags(a, variants[-1], LAG_EVENTS))
        for reader in readers:
            reader.cancel()
        base = statistics.median(variants[0].cpu_ms)
        for variant in variants:
            cpu = statistics.median(variant.cpu_ms)
            print(f"{variant.label:<40} {cpu:6.3f} ms CPU per event ({cpu - base:+.3f})")
        print(
            f"commit → the other api process's reader holding the event, one at a time: p50 "
            f"{statistics.median(lags):.2f} ms, p95 {lags[int(len(lags) * 0.95)]:.2f} ms "
            f"({len(lags)} events)",
            flush=True,
        )
        for log in (a, b):
            await log.notifications.stop()
            await log.db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="events per variant")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
