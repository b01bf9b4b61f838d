"""What the run executor needs: inference jobs, the per-run event log, lease attempts and
cancellation requests on runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("event_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "run_events",
        sa.Column(
            "run_id",
            sa.String(36),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "inference_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_model_id", sa.Text, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("response_json", sa.Text, nullable=False),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error_message", sa.Text),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("completed_at", ts, nullable=False),
    )
    op.create_index("ix_inference_jobs_run", "inference_jobs", ["run_id"])


def downgrade() -> None:
    op.drop_table("inference_jobs")
    op.drop_table("run_events")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cancel_requested")
        batch.drop_column("attempts")
        batch.drop_column("event_seq")
