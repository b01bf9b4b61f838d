"""The store's database: every transaction is one synchronous function run in one step.

`await db.write(fn)` runs `fn(connection)` inside BEGIN … COMMIT, `await db.read(fn)` for work
that writes nothing; `fn` uses SQLAlchemy Core on a plain `Connection`, so each store operation is
written once for both databases:

- SQLite (the embedded default): one connection, kept open, on one dedicated thread, through the
  standard library's driver; reads are transactions on it too. The whole transaction is a single
  hop to that thread; an async driver such as aiosqlite hops to its thread for every statement,
  fetch and commit, which costs several times the CPU (`python -m tests.bench.store_tx` measures
  both). One connection also means writers never collide: they queue in Python instead of
  sleeping in SQLite's busy handler.
- PostgreSQL: the asyncpg pool, `fn` run through `AsyncConnection.run_sync` (no threads); a
  connection of its own, outside the pool, listens for notifications (api/notifications.py).

Hot statements are built once, at import, with bind parameters: building a Core statement and its
cache key on every call costs more than executing it.

The URL is the contract's SQLAlchemy async URL (`sqlite+aiosqlite:///…`,
`postgresql+asyncpg://…`); for SQLite only the path matters.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

T = TypeVar("T")
Work = Callable[[Connection], T]

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


# What the URL may say to asyncpg.connect (the rest are SQLAlchemy's own options).
_ASYNCPG_CONNECT_PARAMS = frozenset(
    {"host", "port", "user", "password", "passfile", "database", "ssl", "direct_tls"}
)
_CONNECT_TIMEOUT_S = 10.0


class Database(Protocol):
    is_postgres: bool  # row locks (FOR UPDATE [SKIP LOCKED]) only mean something there

    async def write(self, fn: Work[T]) -> T:
        """`fn(conn)` in one transaction, committed when it returns, rolled back if it raises."""
        ...

    async def read(self, fn: Work[T]) -> T:
        """`fn(conn)` for reads only (nothing it does is committed)."""
        ...

    async def dispose(self) -> None: ...

    async def connect_unpooled(self, application_name: str) -> Any:
        """PostgreSQL: an asyncpg connection of its own, outside the pool (held for LISTEN),
        named `application_name` in pg_stat_activity."""
        ...


class _Sqlite:
    is_postgres = False

    def __init__(self, url: str) -> None:
        sync_url = make_url(url).set(drivername="sqlite")  # the standard library's driver
        # check_same_thread=False: the connection is created on the store thread and only ever
        # used there, but SQLAlchemy's pool may close it from another one at shutdown.
        self._engine: Engine = create_engine(
            sync_url,
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
        event.listen(self._engine, "connect", sqlite_pragmas)
        # The store thread takes transactions in order from a queue and settles each caller's
        # future on its loop: a hop is a queue put and a call_soon_threadsafe (an executor's
        # submit and future chaining cost ~8 % of a GET run's CPU).
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="parley-sqlite", daemon=True)
        self._thread.start()
        self._closed = False
        # The store thread's one connection, kept open: a pool checkout and checkin per
        # transaction cost more than a primary-key read.
        self._conn: Connection | None = None

    def _serve(self) -> None:
        while (job := self._queue.get()) is not None:
            work, future, loop = job
            if future.cancelled():  # its caller went away before it started: it never runs
                continue
            try:
                result, error = work(), None
            except BaseException as exc:  # noqa: BLE001 - the caller's to handle
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop has closed: nobody waits for it any more
                pass

    async def _hop(self, work: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("the store's database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((work, future, loop))
        return await future

    def _transaction(self, fn: Work[T]) -> T:
        if self._conn is None:
            self._conn = self._engine.connect()
        # Reads too. pysqlite opens no SQLite transaction for a SELECT, so a read of several
        # statements is kept consistent by this thread, not by a snapshot: every read and
        # write of the (one) process runs here in turn, so none sees a write half-way.
        with self._conn.begin():
            return fn(self._conn)

    async def write(self, fn: Work[T]) -> T:
        return await self._hop(lambda: self._transaction(fn))

    read = write  # one connection, one thread: a read is a transaction that writes nothing

    async def connect_unpooled(self, application_name: str) -> Any:
        raise RuntimeError("SQLite has one process: nothing listens for notifications")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._engine.dispose()

    async def dispose(self) -> None:
        await self._hop(self._close)
        self._closed = True
        self._queue.put(None)  # the thread ends at once: it must not outlive the store


_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Postgres:
    is_postgres = True

    def __init__(self, url: str) -> None:
        self._engine: AsyncEngine = create_async_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True
        )

    async def write(self, fn: Work[T]) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Work[T]) -> T:
        async with self._engine.connect() as conn:
            return await conn.run_sync(fn)

    async def dispose(self) -> None:
        await self._engine.dispose()

    async def connect_unpooled(self, application_name: str) -> Any:
        import asyncpg

        _, params = self._engine.dialect.create_connect_args(self._engine.url)
        kept = {k: v for k, v in params.items() if k in _ASYNCPG_CONNECT_PARAMS}
        return await asyncpg.connect(
            **kept,
            timeout=_CONNECT_TIMEOUT_S,
            server_settings={"application_name": application_name},
        )


class HotRead:
    """A hot single-row SELECT: on SQLite its compiled SQL runs on the driver's own cursor, on the
    store thread as ever and in the same transaction (SQLAlchemy's execute cost ~21 µs of a
    primary-key read where sqlite3's is ~11), its columns converted by their types' own result
    processors, so the row reads as SQLAlchemy's would. On PostgreSQL it is executed as any
    other statement."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._sqlite: tuple[str, tuple[str, ...], list[Any]] | None = None

    def first(self, conn: Connection, params: dict[str, Any]) -> Sequence[Any] | None:
        if conn.dialect.name != "sqlite":
            return conn.execute(self.statement, params).first()
        if self._sqlite is None:
            self._sqlite = self._compile(conn.dialect)
        sql, order, processors = self._sqlite
        driver: Any = conn.connection.driver_connection  # the sqlite3.Connection
        cursor = driver.execute(sql, [params[k] for k in order])
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        return [v if p is None or v is None else p(v) for v, p in zip(row, processors, strict=True)]

    def _compile(self, dialect: Any) -> tuple[str, tuple[str, ...], list[Any]]:
        compiled = self.statement.compile(dialect=dialect)
        assert compiled.positiontup is not None  # sqlite's paramstyle is positional (qmark)
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        ]
        return str(compiled), tuple(compiled.positiontup), processors


def create_database(url: str) -> Database:
    if make_url(url).get_backend_name() == "sqlite":
        return _Sqlite(url)
    return _Postgres(url)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL, synchronous=NORMAL, foreign keys, a busy timeout: on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
