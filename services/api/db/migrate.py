"""The schema's version: `parley migrate` upgrades a database to head exactly once however many
migrators start together, and `serve api` refuses a database that is behind head.

The upgrade runs under an exclusive lock held until its transaction has committed: on PostgreSQL
a transaction-level advisory lock (released by COMMIT, or by the server when a migrator dies), on
SQLite a lock file beside the database (Python's driver runs DDL outside SQLite's own locks),
released once the commit returned. A migrator that waited reads the version afresh and finds
nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from services.api.db.engine import Database, create_database

log = logging.getLogger("parley.migrate")

_HERE = Path(__file__).resolve().parent
# pg_advisory_xact_lock's key: one bigint every Parley migrator agrees on (b"parley-m").
LOCK_KEY = int.from_bytes(b"parley-m", "big", signed=True)


@dataclass(frozen=True)
class Upgrade:
    before: tuple[str, ...]  # the revisions found (empty: a database never migrated)
    after: tuple[str, ...]

    def describe(self) -> str:
        if self.before == self.after:
            return f"already at head {_revisions(self.after)}"
        return f"upgraded from {_revisions(self.before)} to {_revisions(self.after)}"


def alembic_config() -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    return config


def head() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def lock_path(url: str) -> Path | None:
    """The SQLite lock file (None for an in-memory database, which no one else can open)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.migrate-lock")


async def upgrade(url: str, revision: str = "head") -> Upgrade:
    """Upgrade the database at `url` under the migration lock; `revision` is for tests."""
    db = create_database(url)
    try:
        with _reachable(url):
            await db.read(_current)  # connects: an unreachable database is one line, not a trace
        async with _lock_file(url):  # SQLite; PostgreSQL's lock is taken inside the transaction
            return await db.write(lambda conn: _upgrade(conn, revision))
    finally:
        await db.dispose()


async def require_head(db: Database, url: str) -> None:
    """Refuse (SystemExit, one line) a database behind this code's head; a newer one (migrated by
    a newer Parley during a rolling update) is served with a warning."""
    with _reachable(url):
        current = await db.read(_current)
    wanted = head()
    if current == wanted:
        return
    shown = make_url(url).render_as_string(hide_password=True)
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = all(script.get_revision(rev) is not None for rev in current)
    except CommandError:
        known = False
    if current and not known:
        log.warning(
            "the database is at revision %s, which this Parley does not know (its head is %s): "
            "a newer Parley migrated it",
            _revisions(current),
            _revisions(wanted),
        )
        return
    state = (
        f"is at revision {_revisions(current)}, behind" if current else "has not been migrated to"
    )
    raise SystemExit(
        f"the database {shown} {state} this Parley's revision {_revisions(wanted)}: run "
        "`parley migrate` first (with the same PARLEY_DATABASE_URL)"
    )


def _upgrade(connection: Connection, revision: str) -> Upgrade:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: COMMIT, ROLLBACK, or the connection dropping.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    before = _current(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return Upgrade(before, _current(connection))


@contextlib.asynccontextmanager
async def _lock_file(url: str) -> AsyncIterator[None]:
    """SQLite's migration lock: an flock on a file beside the database, waited for on a thread
    and held until the migration's commit has returned (the kernel drops it if we die)."""
    path = lock_path(url) if make_url(url).get_backend_name() == "sqlite" else None
    if path is None:
        yield
        return
    with open(path, "a") as lock:  # never removed: unlinking a lock file races its next user
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _current(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def _revisions(revisions: tuple[str, ...]) -> str:
    return "+".join(revisions) or "none"


@contextlib.contextmanager
def _reachable(url: str) -> Iterator[None]:
    """A database that cannot be reached is one line naming it, not a driver traceback."""
    try:
        yield
    except (OSError, DBAPIError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise SystemExit(f"cannot reach the database {shown}: {reason}") from None
