"""Each run's execution cluster in a column of its own, indexed with its status, so that a runner
pool's claims (`parley serve runner --cluster NAME`) and the per-cluster pending count filter on
it instead of reading effective_config. Existing runs get theirs from their effective_config.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 500
_runs = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("effective_config", sa.Text),
    sa.column("execution_cluster", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("execution_cluster", sa.String(64), nullable=False, server_default="shared")
        )
    conn = op.get_bind()
    rewrite = (
        sa.update(_runs)
        .where(_runs.c.id == sa.bindparam("i"))
        .values(execution_cluster=sa.bindparam("c"))
    )
    changed = []
    for run_id, config in conn.execute(sa.select(_runs.c.id, _runs.c.effective_config)).all():
        cluster = json.loads(config).get("execution_cluster") or "shared"
        if cluster != "shared":
            changed.append({"i": run_id, "c": cluster})
    for start in range(0, len(changed), _BATCH):
        conn.execute(rewrite, changed[start : start + _BATCH])
    op.create_index(
        "ix_runs_status_cluster_started", "runs", ["status", "execution_cluster", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_runs_status_cluster_started", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("execution_cluster")
