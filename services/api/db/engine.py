"""The async engine and Alembic `upgrade head`, for SQLite (one connection: writers never collide)
and PostgreSQL (asyncpg, pooled)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

_HERE = Path(__file__).resolve().parent
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    is_postgres: bool  # row locks (FOR UPDATE [SKIP LOCKED]) only mean something there


def create_database(url: str) -> Database:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # One connection for everything: SQLite has one writer anyway, and a pool of one makes
        # concurrent requests queue in Python instead of sleeping in SQLite's busy handler.
        engine = create_async_engine(
            url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, pool_timeout=60
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return Database(engine, is_postgres=False)
    engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return Database(engine, is_postgres=backend == "postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def alembic_config() -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    return config


async def upgrade_head(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
