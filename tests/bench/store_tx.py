"""What one store transaction costs on SQLite, by how it is run (the choice behind
services/api/db/engine.py), measured in one run so the figures compare as ratios:

    .venv/bin/python -m tests.bench.store_tx [--n 2000]

The transaction reads a conversation by key and bumps its version (two statements), as five ways:
SQLAlchemy's async engine on aiosqlite (a thread hop per statement, fetch and commit), the sync
engine in one hop to a store thread with statements built per call, the same with prebuilt
statements and a pool checkout per transaction, Parley's store itself (`Database.write`: prebuilt
statements on the store thread's one kept connection), and the stdlib driver with hand-written
SQL (the floor).
aiosqlite is not a Parley dependency; that row is skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, bindparam, create_engine, event, insert, select, update
from sqlalchemy.pool import QueuePool

from services.api.db.engine import create_database, sqlite_pragmas
from services.api.db.models import Base, conversations

SELECT = select(conversations).where(conversations.c.id == bindparam("cid"))
BUMP = (
    update(conversations)
    .where(conversations.c.id == bindparam("cid"))
    .values(version=conversations.c.version + 1)
)


async def measure(name: str, tx: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(min(200, n)):
        await tx()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await tx()
    cpu_ms = (time.process_time() - cpu) / n * 1000
    wall_ms = (time.perf_counter() - wall) / n * 1000
    print(f"{name:<50} {cpu_ms:6.3f} ms CPU  {wall_ms:6.3f} ms wall", flush=True)
    return cpu_ms


async def main(n: int) -> None:
    path = Path(tempfile.mkdtemp(prefix="parley-store-tx-")) / "store.db"
    engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=1, max_overflow=0)
    event.listen(engine, "connect", sqlite_pragmas)
    Base.metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(conversations).values(
                id="c1", company_id=1, user_id=1, defaults="{}", version=0,
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    thread = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()

    def built_per_call() -> None:
        with engine.begin() as conn:
            conn.execute(select(conversations).where(conversations.c.id == "c1")).mappings().one()
            conn.execute(
                update(conversations)
                .where(conversations.c.id == "c1")
                .values(version=conversations.c.version + 1)
            )

    def read_and_bump(conn: Connection) -> None:
        conn.execute(SELECT, {"cid": "c1"}).mappings().one()
        conn.execute(BUMP, {"cid": "c1"})

    def prebuilt() -> None:
        with engine.begin() as conn:
            read_and_bump(conn)

    store = create_database(f"sqlite:///{path}")

    raw = sqlite3.connect(path, check_same_thread=False)  # its own connection, same pragmas
    sqlite_pragmas(raw, None)

    def stdlib() -> None:
        cursor = raw.cursor()
        cursor.execute("SELECT * FROM conversations WHERE id = ?", ("c1",)).fetchone()
        cursor.execute("UPDATE conversations SET version = version + 1 WHERE id = ?", ("c1",))
        raw.commit()

    results: dict[str, float] = {}
    if importlib.util.find_spec("aiosqlite") is not None:
        from sqlalchemy.ext.asyncio import create_async_engine

        async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1)
        event.listen(async_engine.sync_engine, "connect", sqlite_pragmas)  # same settings

        async def per_statement_hops() -> None:
            async with async_engine.begin() as conn:
                (await conn.execute(SELECT, {"cid": "c1"})).mappings().one()
                await conn.execute(BUMP, {"cid": "c1"})

        results["async engine, aiosqlite"] = await measure(
            "async engine + aiosqlite (prebuilt)", per_statement_hops, n
        )
        await async_engine.dispose()
    else:
        print("aiosqlite not installed: its row is skipped", flush=True)
    results["one hop, built per call"] = await measure(
        "sync engine, one hop, statements built per call",
        lambda: loop.run_in_executor(thread, built_per_call), n,
    )  # fmt: skip
    results["one hop, prebuilt, pool checkout"] = await measure(
        "sync engine, one hop, prebuilt, pool checkout",
        lambda: loop.run_in_executor(thread, prebuilt), n,
    )  # fmt: skip
    results["Parley's store"] = await measure(
        "Parley's store (prebuilt, one kept connection)", lambda: store.write(read_and_bump), n
    )
    results["stdlib, one hop"] = await measure(
        "stdlib sqlite3, one hop (floor)", lambda: loop.run_in_executor(thread, stdlib), n
    )
    base = results["Parley's store"]
    print("CPU relative to Parley's way:")
    for name, value in results.items():
        print(f"  {name:<32} {value / base:5.2f}x")
    thread.shutdown()
    await store.dispose()
    raw.close()
    engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
