"""Wake-ups between the api processes of one PostgreSQL database (LISTEN/NOTIFY): a run's events
committed, runs queued, a cancellation requested.

The database stays the source of truth: a notification only says where to look (a run id, a
count), so one that is missed or coalesced costs latency, never an event, and whenever the
listening connection comes back every reader looks again (`on_reconnect`). NOTIFY is sent inside
the writing transaction, so it is delivered when that commits and never for a rollback. Each
process listens on one connection of its own, outside the pool, and ignores what it sent itself
(its own readers heard it in-process). On SQLite (one process) nothing is sent or heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

import asyncpg
from sqlalchemy import ColumnElement, String, bindparam, func, literal, select
from sqlalchemy.engine import Connection

from services.api.db.engine import Database
from services.common.metrics import LISTENER_RECONNECTS

EVENTS: Final = "parley_run_events"  # "<run id> <seq>": the run's events up to seq committed
RUNS_QUEUED: Final = "parley_runs_queued"  # "<n>": n runs became runnable
CANCELS: Final = "parley_cancels"  # "<run id>": its cancellation was requested
MAX_PAYLOAD_BYTES: Final = 7999  # PostgreSQL refuses a payload of 8000 bytes or more
APPLICATION_NAME: Final = "parley-api listener"  # how the connection shows in pg_stat_activity
KEEPALIVE_S: Final = 10.0  # a quiet connection is probed this often (a dead network says nothing)
BACKOFF_S: Final = (0.05, 5.0)  # first and longest wait between reconnection attempts
log = logging.getLogger("parley.api")

Handler = Callable[[str], None]
ORIGIN_PARAM: Final = "notify_origin"  # the bind parameter `sent_by` reads the origin from
# What a lost or unreachable database raises here.
_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_NOTIFY = select(func.pg_notify(bindparam("channel"), bindparam("payload")))


def sent_by(channel: str, *payload: ColumnElement[Any]) -> ColumnElement[Any]:
    """A NOTIFY as a column of a statement (in its RETURNING: one per row, no statement of its
    own), its payload the origin (the bind parameter ORIGIN_PARAM: `Notifications.params`) then
    `payload`'s values, separated by spaces."""
    message: ColumnElement[Any] = bindparam(ORIGIN_PARAM, type_=String)
    for part in payload:
        message = message + literal(" ") + part
    return func.pg_notify(channel, message)


class Notifications:
    """This api process's side of the notifications: `notify` in a transaction, handlers for
    what the other processes committed, and the one connection that listens for them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.enabled = db.is_postgres
        self._origin = uuid.uuid4().hex[:12]  # this process's mark on what it sends
        self._handlers: dict[str, Handler] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def on(self, channel: str, handler: Handler) -> None:
        """`handler(payload)` for each notification another process sends on `channel`."""
        if self._task is not None:
            raise RuntimeError("register handlers before start(): they would not be listened to")
        self._handlers[channel] = handler

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        """`handler()` once listening again after a lost connection: what was sent meanwhile
        was not heard, so look again."""
        self._on_reconnect.append(handler)

    def params(self) -> dict[str, str]:
        """The bind parameter of a statement that notifies through `sent_by`."""
        return {ORIGIN_PARAM: self._origin}

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        """Inside a write transaction: sent to the other api processes when it commits."""
        if not self.enabled:
            return
        message = f"{self._origin} {payload}"
        if len(message.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"a notification on {channel} is too long ({len(message)} chars)")
        conn.execute(_NOTIFY, {"channel": channel, "payload": message})

    async def start(self) -> None:
        """Listening when it returns (a commit after that is heard), and kept listening."""
        if not self.enabled:
            return
        connection = await self._listen()
        self._task = asyncio.create_task(self._keep_listening(connection), name="api-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> Any:
        connection = await self._db.connect_unpooled(APPLICATION_NAME)
        try:
            for channel in self._handlers:
                await connection.add_listener(channel, self._dispatch)
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def _keep_listening(self, connection: Any) -> None:
        try:
            while True:
                await _until_lost(connection)
                connection.terminate()
                LISTENER_RECONNECTS.inc()
                log.warning("the notification listener lost its connection; reconnecting")
                connection = await self._reconnect()
                for handler in self._on_reconnect:
                    handler()
        finally:
            connection.terminate()

    async def _reconnect(self) -> Any:
        backoff = BACKOFF_S[0]
        while True:
            try:
                return await self._listen()
            except _FAILURES as exc:
                log.warning("the notification listener cannot reconnect yet: %s", exc)
            await asyncio.sleep(backoff)  # reconnection backoff, never on the hot path
            backoff = min(backoff * 2, BACKOFF_S[1])

    def _dispatch(self, _connection: Any, _pid: int, channel: str, message: str) -> None:
        origin, _, payload = message.partition(" ")
        handler = self._handlers.get(channel)
        if origin != self._origin and handler is not None:
            handler(payload)


async def _until_lost(connection: Any) -> None:
    """Returns when the connection has closed, or stopped answering a probe."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _connection: lost.set())
    while not connection.is_closed():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KEEPALIVE_S):
                await lost.wait()
                return
        try:
            await connection.execute("SELECT 1", timeout=KEEPALIVE_S)
        except _FAILURES as exc:
            log.warning("the notification listener's connection does not answer: %s", exc)
            return
