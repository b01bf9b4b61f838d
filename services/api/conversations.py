"""Conversation operations: create, list, get, and page through messages. Every read is scoped to
the caller's (company_id, user_id); anything else looks exactly like a missing id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.v1 import conversation_service_pb2
from sqlalchemy import and_, bindparam, func, insert, select
from sqlalchemy.engine import Connection, RowMapping

from services.api import effective_config, mapping, validation
from services.api.db.engine import Database
from services.api.db.models import conversations, messages
from services.common.auth import Principal
from services.common.errors import ParleyError

DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 200
DEFAULT_MESSAGES_PER_PAGE, MAX_MESSAGES_PER_PAGE = 100, 1000


def not_found(conversation_id: str) -> ParleyError:
    return ParleyError(
        "ConversationNotFound",
        f"conversation {conversation_id} was not found",
        conversation_id=conversation_id,
    )


_OWNED = select(conversations).where(
    and_(
        conversations.c.id == bindparam("id"),
        conversations.c.company_id == bindparam("company_id"),
        conversations.c.user_id == bindparam("user_id"),
    )
)
_INSERT = insert(conversations)


def owned_conversation(conn: Connection, principal: Principal, conversation_id: str) -> RowMapping:
    """The caller's conversation, or ConversationNotFound (also for malformed ids)."""
    canonical = validation.check_uuid(conversation_id)
    if canonical is None:
        raise not_found(conversation_id)
    row = (
        conn.execute(
            _OWNED,
            {"id": canonical, "company_id": principal.company_id, "user_id": principal.user_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(conversation_id)
    return row


async def create_conversation(
    db: Database,
    rules: validation.ConfigRules,
    principal: Principal,
    request: conversation_service_pb2.CreateConversationRequest,
) -> dict[str, Any]:
    if not request.HasField("defaults"):
        raise ParleyError(
            "InvalidRequest",
            "defaults is required (with model and data_plane_id)",
            field="defaults",
        )
    defaults = effective_config.with_defaults(request.defaults)
    validation.validate_config(defaults, rules, "defaults")
    await validation.check_mcp_hosts(
        defaults.mcp_servers, "defaults.mcp_servers", rules.allow_private_networks
    )
    now = datetime.now(UTC)
    values = {
        "id": str(uuid.uuid4()),
        "company_id": principal.company_id,
        "user_id": principal.user_id,
        "name": mapping.field_or(request, "name"),
        "system_prompt": mapping.field_or(request, "system_prompt"),
        "defaults": mapping.to_json(defaults),
        "version": 0,
        "active_run_id": None,
        "latest_run_id": None,
        "created_at": now,
        "updated_at": now,
    }
    await db.write(lambda conn: conn.execute(_INSERT, values))
    return values


@dataclass(frozen=True)
class ConversationPage:
    rows: list[RowMapping]
    page: int
    per_page: int
    total_records: int

    @property
    def total_pages(self) -> int:
        return -(-self.total_records // self.per_page)


async def list_conversations(
    db: Database, principal: Principal, request: conversation_service_pb2.ListConversationsRequest
) -> ConversationPage:
    page = mapping.field_or(request, "page", 1)
    validation.at_least(page, 1, "page")
    per_page = validation.page_size(request, DEFAULT_PER_PAGE, MAX_PER_PAGE)
    owner = and_(
        conversations.c.company_id == principal.company_id,
        conversations.c.user_id == principal.user_id,
    )

    def read(conn: Connection) -> ConversationPage:
        total = conn.execute(
            select(func.count()).select_from(conversations).where(owner)
        ).scalar_one()
        rows = list(
            conn.execute(
                select(conversations)
                .where(owner)
                .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            .mappings()
            .all()
        )
        return ConversationPage(rows, page, per_page, total)

    return await db.read(read)


async def get_conversation(db: Database, principal: Principal, conversation_id: str) -> RowMapping:
    return await db.read(lambda conn: owned_conversation(conn, principal, conversation_id))


@dataclass(frozen=True)
class MessagePage:
    current_version: int
    rows: list[RowMapping]
    next_since: int | None


async def list_messages(
    db: Database, principal: Principal, request: conversation_service_pb2.ListMessagesRequest
) -> MessagePage:
    since = mapping.field_or(request, "since", 0)
    validation.at_least(since, 0, "since")
    per_page = validation.page_size(request, DEFAULT_MESSAGES_PER_PAGE, MAX_MESSAGES_PER_PAGE)

    def read(conn: Connection) -> tuple[RowMapping, list[RowMapping]]:
        conversation = owned_conversation(conn, principal, request.id)
        rows = (
            conn.execute(
                select(messages)
                .where(
                    and_(
                        messages.c.conversation_id == conversation["id"],
                        messages.c.sequence_no > since,
                        messages.c.sequence_no <= conversation["version"],
                    )
                )
                .order_by(messages.c.sequence_no)
                .limit(per_page + 1)
            )
            .mappings()
            .all()
        )
        return conversation, list(rows)

    conversation, rows = await db.read(read)
    more = len(rows) > per_page
    rows = rows[:per_page]
    return MessagePage(conversation["version"], rows, rows[-1]["sequence_no"] if more else None)
