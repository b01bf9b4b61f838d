"""Conversations, runs and messages.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("company_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("system_prompt", sa.Text),
        sa.Column("defaults", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("active_run_id", sa.String(36)),
        sa.Column("latest_run_id", sa.String(36)),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )
    op.create_index(
        "ix_conversations_owner_created",
        "conversations",
        ["company_id", "user_id", "created_at", "id"],
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(36),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("company_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("client_op_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("tool_choice", sa.Text),
        sa.Column("effective_config", sa.Text, nullable=False),
        sa.Column("iterations_used", sa.Integer),
        sa.Column("prompt_tokens", sa.BigInteger),
        sa.Column("completion_tokens", sa.BigInteger),
        sa.Column("total_tokens", sa.BigInteger),
        sa.Column("submitted_inference_job_ids", sa.Text, nullable=False, server_default="[]"),
        sa.Column("pending_tool_calls", sa.Text, nullable=False, server_default="[]"),
        sa.Column("final_text", sa.Text),
        sa.Column("final_structured_output", sa.Text),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error_message", sa.Text),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", ts),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("completed_at", ts),
        sa.UniqueConstraint("conversation_id", "client_op_id", name="uq_runs_conversation_op"),
    )
    op.create_index("ix_runs_status_started", "runs", ["status", "started_at"])
    op.create_table(
        "messages",
        sa.Column(
            "conversation_id",
            sa.String(36),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sequence_no", sa.BigInteger, primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content_blocks", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_index("ix_messages_run", "messages", ["run_id"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("runs")
    op.drop_table("conversations")
