"""Fixtures every test folder shares: the databases the store runs on, and a clean environment."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test depends on the developer's PARLEY_*/AWS_* variables."""
    import os

    for key in list(os.environ):
        if key.startswith(("PARLEY_", "AWS_")):
            monkeypatch.delenv(key)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest_asyncio.fixture(scope="session")
async def make_database_url(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Creates fresh databases of this kind, migrated to head as `parley migrate` leaves them
    (`migrated=False`: empty); PostgreSQL ones are dropped at the end. When PostgreSQL is down
    the PostgreSQL variants skip loudly, never pass silently."""
    from services.api.db import migrate

    if database_kind == "sqlite":

        async def sqlite_url(*, migrated: bool = True) -> str:
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'parley.db'}"
            if migrated:
                await migrate.upgrade(url)
            return url

        yield sqlite_url
        return
    async with _postgres_databases("the PostgreSQL variants of these tests") as postgres_url:
        yield postgres_url


@pytest_asyncio.fixture(scope="session")
async def make_postgres_url() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Fresh PostgreSQL databases for what only PostgreSQL does (several api processes on one
    database); skips loudly when PostgreSQL is down."""
    async with _postgres_databases("these PostgreSQL-only tests") as postgres_url:
        yield postgres_url


@contextlib.asynccontextmanager
async def _postgres_databases(what: str) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    from services.api.db import migrate

    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not answering on 127.0.0.1:5432 ({exc}): {what} did NOT run")
    created: list[str] = []

    async def postgres_url(*, migrated: bool = True) -> str:
        name = f"parley_test_{uuid.uuid4().hex[:12]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        if migrated:
            await migrate.upgrade(url)
        return url

    try:
        yield postgres_url
    finally:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def database_url(make_database_url: Callable[..., Awaitable[str]]) -> str:
    """One database for a whole session's tests of this kind."""
    return await make_database_url()
