"""The store's tables. Rows stay private to services/api; mapping.py turns them into protos.

JSON columns are TEXT (portable across SQLite and PostgreSQL): protos serialised with
MessageToDict(preserving_proto_field_name=True) + orjson. Timestamps are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    company_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    defaults: Mapped[str] = mapped_column(Text)  # AgentConfig, documented defaults filled in
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # last committed sequence_no
    active_run_id: Mapped[str | None] = mapped_column(String(36))  # a pending/running run
    latest_run_id: Mapped[str | None] = mapped_column(String(36))  # the newest run started
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_conversations_owner_created", "company_id", "user_id", "created_at", "id"),
    )


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    company_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    client_op_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(
        String(16)
    )  # pending|running|completed|requires_action|failed
    payload: Mapped[str] = mapped_column(Text)  # RunPayload
    tool_choice: Mapped[str | None] = mapped_column(Text)  # ToolChoice, null when not given
    effective_config: Mapped[str] = mapped_column(Text)  # AgentConfig, fully merged
    iterations_used: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(BigInteger)
    completion_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_tokens: Mapped[int | None] = mapped_column(BigInteger)
    submitted_inference_job_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    pending_tool_calls: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    final_text: Mapped[str | None] = mapped_column(Text)
    final_structured_output: Mapped[str | None] = mapped_column(Text)  # JSON value
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # last run_events.seq
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    execution_cluster: Mapped[str] = mapped_column(String(64))  # effective_config's, for claims
    model: Mapped[str] = mapped_column(String(128))  # effective_config's, for usage per model
    execution_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cache_read_tokens: Mapped[int | None] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int | None] = mapped_column(BigInteger)
    cost_nano_usd: Mapped[int | None] = mapped_column(BigInteger)  # fixed at the terminal commit
    run_metadata: Mapped[str] = mapped_column(Text)  # StartRun's metadata, JSON
    request_hash: Mapped[str] = mapped_column(String(64))  # tells run_id replays
    # W3C traceparent of the StartRun that created it (tracing.py): every claim's spans join it,
    # and Run.trace_id is its trace id (null only for runs from before migration 0006)
    traceparent: Mapped[str | None] = mapped_column(String(55))

    __table_args__ = (
        UniqueConstraint("conversation_id", "client_op_id", name="uq_runs_conversation_op"),
        Index("ix_runs_status_started", "status", "started_at"),
        Index("ix_runs_status_cluster_started", "status", "execution_cluster", "started_at"),
        # Listing pages (run_listing.py): newest first by (started_at, id), per owner or
        # conversation, with and without a status filter; each page is one index range.
        Index("ix_runs_owner_started", "company_id", "user_id", "started_at", "id"),
        Index(
            "ix_runs_owner_status_started", "company_id", "user_id", "status", "started_at", "id"
        ),
        Index("ix_runs_conversation_started", "conversation_id", "started_at", "id"),
        Index(
            "ix_runs_conversation_status_started", "conversation_id", "status", "started_at", "id"
        ),
    )


class Message(Base):
    __tablename__ = "messages"

    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    sequence_no: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # user|assistant|tool
    content_blocks: Mapped[str] = mapped_column(Text)  # JSON list of ContentBlock
    run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_messages_run", "run_id"),)


class RunEvent(Base):
    __tablename__ = "run_events"

    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)  # RunEvent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InferenceJob(Base):
    __tablename__ = "inference_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), ForeignKey("runs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    provider_model_id: Mapped[str] = mapped_column(Text)
    request_json: Mapped[str] = mapped_column(Text)
    response_json: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_inference_jobs_run", "run_id"),)


# The tables, for SQLAlchemy Core statements (declarative classes type them as FromClause).
conversations = cast(Table, Conversation.__table__)
runs = cast(Table, Run.__table__)
messages = cast(Table, Message.__table__)
run_events = cast(Table, RunEvent.__table__)
inference_jobs = cast(Table, InferenceJob.__table__)
