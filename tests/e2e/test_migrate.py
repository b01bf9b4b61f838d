"""`parley migrate` and `parley serve api` as a deployment runs them: real processes on a fresh
database of each kind. Several migrators started together all succeed and the schema is
migrated once; the api refuses a database behind head, in one line."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services.api.db import migrate
from services.api.db.engine import create_database
from tests.ports import free_port
from tests.internal import INTERNAL_SECRET

PARLEY = str(Path(sys.executable).with_name("parley"))
MIGRATORS = 4
SECRET = "migrate-test-secret-0123456789abcdef"


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    return {**env, "PARLEY_DATABASE_URL": database_url, **extra}


def _serve_env(database_url: str, **extra: str) -> dict[str, str]:
    """What `parley serve api` needs besides its database: both secrets, and ports of its own
    for its public and its store listener (and its metrics)."""
    return _env(
        database_url,
        PARLEY_JWT_SECRET=SECRET,
        PARLEY_INTERNAL_SECRET=INTERNAL_SECRET,
        PARLEY_API_ADDR=f"127.0.0.1:{free_port()}",
        PARLEY_STORE_ADDR=f"127.0.0.1:{free_port()}",
        PARLEY_METRICS_PORT=str(free_port()),
        **extra,
    )


async def _parley(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        PARLEY,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 60.0
) -> None:
    until = time.monotonic() + deadline_s
    while not await condition():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _migration_lock_held(url: str) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Holds the lock `parley migrate` takes, and yields a count of the migrators waiting on it,
    so the test starts them all against one held lock instead of hoping they collide."""
    if make_url(url).get_backend_name() == "postgresql":
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", migrate.LOCK_KEY)

            async def pg_waiting() -> int:
                return await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )

            yield pg_waiting
            await conn.execute("SELECT pg_advisory_unlock($1)", migrate.LOCK_KEY)
        finally:
            await conn.close()
        return
    path = migrate.lock_path(url)
    assert path is not None
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # free now: nothing else has started
        inode = os.fstat(lock.fileno()).st_ino

        async def flock_waiting() -> int:  # blocked requests show in /proc/locks as "-> FLOCK"
            lines = Path("/proc/locks").read_text().splitlines()
            return sum(1 for line in lines if "->" in line and f":{inode} " in line)

        yield flock_waiting
        fcntl.flock(lock, fcntl.LOCK_UN)


async def test_concurrent_migrators_all_succeed_and_migrate_once(
    make_database_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    url = await make_database_url(migrated=False)
    env = _env(url)
    async with _migration_lock_held(url) as waiting:
        migrators = [
            asyncio.ensure_future(_parley("migrate", env=env, cwd=tmp_path))
            for _ in range(MIGRATORS)
        ]
        await _until(lambda: _all_waiting(waiting), f"{MIGRATORS} migrators queued on the lock")
    results = await asyncio.gather(*migrators)

    assert [code for code, _, _ in results] == [0] * MIGRATORS, results
    outputs = sorted(out.strip() for _, out, _ in results)
    head = "+".join(migrate.head())
    assert sum(f"upgraded from none to {head}" in out for out in outputs) == 1, outputs
    assert sum(f"already at head {head}" in out for out in outputs) == MIGRATORS - 1, outputs
    assert await _versions(url) == [head]


async def _all_waiting(waiting: Callable[[], Awaitable[int]]) -> bool:
    return await waiting() >= MIGRATORS


async def _versions(url: str) -> list[str]:
    db = create_database(url)
    try:
        sql = "SELECT version_num FROM alembic_version"
        return await db.read(lambda conn: [row[0] for row in conn.exec_driver_sql(sql)])
    finally:
        await db.dispose()


async def test_serve_api_refuses_an_unmigrated_database_in_one_line(
    make_database_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    url = await make_database_url(migrated=False)
    env = _serve_env(url)
    code, out, err = await _parley("serve", "api", env=env, cwd=tmp_path)
    assert code != 0 and "is serving" not in out
    assert len(err.strip().splitlines()) == 1, err
    assert "has not been migrated" in err and "`parley migrate`" in err, err

    await migrate.upgrade(url, "0001")  # a database one revision behind
    code, out, err = await _parley("serve", "api", env=env, cwd=tmp_path)
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    head = re.escape("+".join(migrate.head()))
    assert re.search(rf"is at revision 0001, behind .* revision {head}", err), err
    assert "`parley migrate`" in err and "Traceback" not in err


async def test_migrate_then_serve_api_then_probe_it(
    make_database_url: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    url = await make_database_url(migrated=False)
    env = _serve_env(
        url,
        PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
        PARLEY_TOOLING_ADDR=f"127.0.0.1:{free_port()}",
        PARLEY_HTTP_PORT=str(free_port()),
    )
    api, store = env["PARLEY_API_ADDR"], env["PARLEY_STORE_ADDR"]
    code, out, _ = await _parley("migrate", env=env, cwd=tmp_path)
    assert code == 0 and "upgraded from none to" in out

    code, out, _ = await _parley("health", env=env, cwd=tmp_path)  # nothing runs yet
    assert code == 1 and out.startswith("nothing serves"), out

    server = await asyncio.create_subprocess_exec(
        PARLEY,
        "serve",
        "api",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(server.stdout.readline(), timeout=60)
        assert b"parley api is serving" in line, line
        code, out, _ = await _parley("health", "api", "store", env=env, cwd=tmp_path)
        both = f"api {api}: SERVING; store {store}: SERVING"
        assert (code, out.strip()) == (0, both)
        # No service named: whatever listens here (the api's two listeners), as the image's
        # HEALTHCHECK asks.
        code, out, _ = await _parley("health", env=env, cwd=tmp_path)
        assert (code, out.strip()) == (0, both)
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), timeout=30) == 0


async def test_a_database_a_newer_parley_migrated_is_served_with_a_warning(
    make_database_url: Callable[..., Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """A rolling update migrates first: older api pods restarting meanwhile keep serving."""
    url = await make_database_url()
    db = create_database(url)
    try:
        await db.write(
            lambda conn: conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        )
        with caplog.at_level(logging.WARNING, logger="parley.migrate"):
            await migrate.require_head(db, url)
    finally:
        await db.dispose()
    assert "revision 9999, which this Parley does not know" in caplog.text
