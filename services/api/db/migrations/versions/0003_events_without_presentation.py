"""Run events keep data only: a terminal event's failed run no longer carries error.title and
error.docs_url (rendered from the catalogue when the event is sent, with the docs base URL in
force then). Rewrites the events written before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PRESENTATION = ("title", "docs_url")
_BATCH = 500

_events = sa.table(
    "run_events",
    sa.column("run_id", sa.String),
    sa.column("seq", sa.BigInteger),
    sa.column("type", sa.String),
    sa.column("data", sa.Text),
)


def upgrade() -> None:
    conn = op.get_bind()
    failed = sa.select(_events.c.run_id, _events.c.seq, _events.c.data).where(
        _events.c.type == "run.failed"
    )
    rewrite = (
        sa.update(_events)
        .where(sa.and_(_events.c.run_id == sa.bindparam("r"), _events.c.seq == sa.bindparam("s")))
        .values(data=sa.bindparam("d"))
    )
    changed = []
    for run_id, seq, data in conn.execute(failed).all():
        event = json.loads(data)
        error = event.get("run", {}).get("error", {})
        if any(key in error for key in _PRESENTATION):
            for key in _PRESENTATION:
                error.pop(key, None)
            changed.append({"r": run_id, "s": seq, "d": json.dumps(event, separators=(",", ":"))})
    for start in range(0, len(changed), _BATCH):
        conn.execute(rewrite, changed[start : start + _BATCH])


def downgrade() -> None:
    """Nothing to restore: readers render the presentation either way."""
