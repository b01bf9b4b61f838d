"""A HotRead answers the row SQLAlchemy's execute would, column types converted alike: on SQLite
it runs on the driver's cursor (datetimes, booleans, NULLs and a join's columns), elsewhere it is
the statement."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    select,
)
from sqlalchemy.engine import Connection

from services.api.db.engine import HotRead, create_database


async def test_hot_read_answers_as_sqlalchemy_does(
    make_database_url: Callable[..., Awaitable[str]],
) -> None:
    db = create_database(await make_database_url(migrated=False))
    suffix = uuid.uuid4().hex[:8]
    meta = MetaData()
    parent, child = _tables(meta, suffix)
    statement = (
        select(child, parent.c.label)
        .join(parent, parent.c.id == child.c.parent_id)
        .where(and_(child.c.id == bindparam("id"), child.c.owner == bindparam("owner")))
    )
    hot = HotRead(statement)
    when = datetime(2026, 12, 1, 18, 30, 5, 123456, tzinfo=UTC)

    def fill(conn: Connection) -> None:
        meta.create_all(conn)
        conn.execute(parent.insert(), [{"id": 1, "label": "one"}])
        conn.execute(
            child.insert(),
            [
                {"id": "a", "owner": 7, "parent_id": 1, "at": when, "flag": True, "note": None},
                {"id": "b", "owner": 7, "parent_id": 1, "at": when, "flag": False, "note": "n"},
            ],
        )

    def both(conn: Connection, params: dict[str, Any]) -> tuple[Any, Any]:
        expected = conn.execute(statement, params).first()
        got = hot.first(conn, params)
        return (None if expected is None else tuple(expected)), (
            None if got is None else tuple(got)
        )

    try:
        await db.write(fill)
        for params in ({"id": "a", "owner": 7}, {"id": "b", "owner": 7}, {"id": "a", "owner": 8}):
            expected, got = await db.read(lambda conn, p=params: both(conn, p))
            assert got == expected
        _, first = await db.read(lambda conn: both(conn, {"id": "a", "owner": 7}))
        assert first is not None
        assert isinstance(first[3], datetime) and first[4] is True and first[5] is None
        assert first[-1] == "one"
    finally:
        await db.write(meta.drop_all)
        await db.dispose()


def _tables(meta: MetaData, suffix: str) -> tuple[Table, Table]:
    parent = Table(
        f"hot_parent_{suffix}",
        meta,
        Column("id", Integer, primary_key=True),
        Column("label", String, nullable=False),
    )
    child = Table(
        f"hot_child_{suffix}",
        meta,
        Column("id", String, primary_key=True),
        Column("owner", Integer, nullable=False),
        Column("parent_id", Integer, ForeignKey(parent.c.id), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("flag", Boolean, nullable=False),
        Column("note", String, nullable=True),
    )
    return parent, child
