"""Alembic environment: runs on the connection engine.py hands over (config.attributes), or, from
the command line, on `-x url=...` (sync or async driver)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.api.db.engine import create_database
from services.api.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    db = create_database(url)
    try:
        await db.write(_run)
    finally:
        await db.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_url(context.get_x_argument(as_dictionary=True)["url"]))
