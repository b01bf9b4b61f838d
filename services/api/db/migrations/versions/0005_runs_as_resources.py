"""Runs as resources (issue 17): listing indexes, the run's model, first pick-up, cache tokens,
cost, metadata and the StartRun body's hash (for client-chosen run ids); inference jobs keep
their cache tokens (a run's trace id comes from its traceparent, migration 0006). Existing runs
get their model from their effective_config; their cost stays null (it is fixed only at a
terminal commit, with the price in force then).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 500
_runs = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("effective_config", sa.Text),
    sa.column("model", sa.String),
)
_INDEXES = {
    "ix_runs_owner_started": ["company_id", "user_id", "started_at", "id"],
    "ix_runs_owner_status_started": ["company_id", "user_id", "status", "started_at", "id"],
    "ix_runs_conversation_started": ["conversation_id", "started_at", "id"],
    "ix_runs_conversation_status_started": ["conversation_id", "status", "started_at", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("model", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("execution_started_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("cache_read_tokens", sa.BigInteger))
        batch.add_column(sa.Column("cache_write_tokens", sa.BigInteger))
        batch.add_column(sa.Column("cost_nano_usd", sa.BigInteger))
        batch.add_column(sa.Column("run_metadata", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("request_hash", sa.String(64), nullable=False, server_default="")
        )
    with op.batch_alter_table("inference_jobs") as batch:
        batch.add_column(
            sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0")
        )
    conn = op.get_bind()
    rewrite = (
        sa.update(_runs).where(_runs.c.id == sa.bindparam("i")).values(model=sa.bindparam("m"))
    )
    found = [
        {"i": run_id, "m": json.loads(config).get("model") or ""}
        for run_id, config in conn.execute(sa.select(_runs.c.id, _runs.c.effective_config)).all()
    ]
    for start in range(0, len(found), _BATCH):
        conn.execute(rewrite, found[start : start + _BATCH])
    for name, columns in _INDEXES.items():
        op.create_index(name, "runs", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, "runs")
    with op.batch_alter_table("inference_jobs") as batch:
        batch.drop_column("cache_write_tokens")
        batch.drop_column("cache_read_tokens")
    with op.batch_alter_table("runs") as batch:
        for column in (
            "request_hash",
            "run_metadata",
            "cost_nano_usd",
            "cache_write_tokens",
            "cache_read_tokens",
            "execution_started_at",
            "model",
        ):
            batch.drop_column(column)
