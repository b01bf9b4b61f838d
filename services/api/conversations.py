"""Conversations and their messages: create, list, get, page through messages, and the generated
name. Every read is scoped to the caller's (company_id, user_id); anything else looks exactly like
a missing id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from agents.v1 import conversation_service_pb2
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from services.api import effective_config, mapping, validation
from services.api.db.engine import Database
from services.api.db.models import conversations, messages
from services.api.db.rows import ConversationPage, ConversationRow, MessagePage, MessageRow, values
from services.common.auth import Principal
from services.common.errors import ParleyError

DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 200
DEFAULT_MESSAGES_PER_PAGE: Final = 100
MAX_MESSAGES_PER_PAGE: Final = 1000


def not_found(conversation_id: str) -> ParleyError:
    return ParleyError(
        "ConversationNotFound",
        f"conversation {conversation_id} was not found",
        conversation_id=conversation_id,
    )


_OWNER = and_(
    conversations.c.company_id == bindparam("company_id"),
    conversations.c.user_id == bindparam("user_id"),
)
_OWNED = select(conversations).where(and_(conversations.c.id == bindparam("id"), _OWNER))
_INSERT = insert(conversations)
_COUNT = select(func.count()).select_from(conversations).where(_OWNER)
_PAGE = (
    select(conversations)
    .where(_OWNER)
    .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_MESSAGES = (
    select(messages)
    .where(
        and_(
            messages.c.conversation_id == bindparam("id"),
            messages.c.sequence_no > bindparam("since"),
            messages.c.sequence_no <= bindparam("version"),
        )
    )
    .order_by(messages.c.sequence_no)
    .limit(bindparam("limit"))
)
_NAME_IF_UNSET = (
    update(conversations)
    .where(and_(conversations.c.id == bindparam("conversation_id"), conversations.c.name.is_(None)))
    .values(name=bindparam("name"), updated_at=bindparam("now"))
)


def owned_conversation(
    conn: Connection, principal: Principal, conversation_id: str
) -> ConversationRow:
    """The caller's conversation, or ConversationNotFound (also for malformed ids)."""
    canonical = validation.check_uuid(conversation_id)
    if canonical is None:
        raise not_found(conversation_id)
    params = {"id": canonical, "company_id": principal.company_id, "user_id": principal.user_id}
    row = conn.execute(_OWNED, params).first()
    if row is None:
        raise not_found(conversation_id)
    return ConversationRow(*row)


async def create_conversation(
    db: Database,
    rules: validation.ConfigRules,
    principal: Principal,
    request: conversation_service_pb2.CreateConversationRequest,
) -> ConversationRow:
    if not request.HasField("defaults"):
        raise ParleyError(
            "InvalidRequest",
            "defaults is required (with model and data_plane_id)",
            field="defaults",
        )
    defaults = effective_config.with_defaults(request.defaults)
    validation.validate_config(defaults, rules, "defaults", principal.company_id)
    await validation.check_mcp_hosts(
        defaults.mcp_servers, "defaults.mcp_servers", rules.allow_private_networks
    )
    now = datetime.now(UTC)
    row = ConversationRow(
        id=str(uuid.uuid4()),
        company_id=principal.company_id,
        user_id=principal.user_id,
        name=request.name if request.HasField("name") else None,
        system_prompt=request.system_prompt if request.HasField("system_prompt") else None,
        defaults=mapping.to_json(defaults),
        version=0,
        active_run_id=None,
        latest_run_id=None,
        created_at=now,
        updated_at=now,
    )
    await db.write(lambda conn: conn.execute(_INSERT, values(row)))
    return row


async def list_conversations(
    db: Database, principal: Principal, request: conversation_service_pb2.ListConversationsRequest
) -> ConversationPage:
    page = request.page if request.HasField("page") else 1
    validation.at_least(page, 1, "page")
    per_page = validation.page_size(request, DEFAULT_PER_PAGE, MAX_PER_PAGE)
    owner = {"company_id": principal.company_id, "user_id": principal.user_id}

    def read(conn: Connection) -> ConversationPage:
        total: int = conn.execute(_COUNT, owner).scalar_one()
        params = {**owner, "limit": per_page, "offset": (page - 1) * per_page}
        rows = [ConversationRow(*row) for row in conn.execute(_PAGE, params)]
        return ConversationPage(rows, page, per_page, total)

    return await db.read(read)


async def get_conversation(
    db: Database, principal: Principal, conversation_id: str
) -> ConversationRow:
    return await db.read(lambda conn: owned_conversation(conn, principal, conversation_id))


async def list_messages(
    db: Database, principal: Principal, request: conversation_service_pb2.ListMessagesRequest
) -> MessagePage:
    since = request.since if request.HasField("since") else 0
    validation.at_least(since, 0, "since")
    per_page = validation.page_size(request, DEFAULT_MESSAGES_PER_PAGE, MAX_MESSAGES_PER_PAGE)

    def read(conn: Connection) -> MessagePage:
        conversation = owned_conversation(conn, principal, request.id)
        params = {
            "id": conversation.id,
            "since": since,
            "version": conversation.version,
            "limit": per_page + 1,
        }
        rows = [MessageRow(*row) for row in conn.execute(_MESSAGES, params)]
        more = len(rows) > per_page
        rows = rows[:per_page]
        return MessagePage(conversation.version, rows, rows[-1].sequence_no if more else None)

    return await db.read(read)


async def set_generated_name(db: Database, conversation_id: str, name: str) -> bool:
    """Write a generated name only while the conversation has none: a user-set name wins."""
    name = name.strip()
    if not name:
        return False
    params = {"conversation_id": conversation_id, "name": name, "now": datetime.now(UTC)}
    updated: int = await db.write(lambda conn: conn.execute(_NAME_IF_UNSET, params).rowcount)
    return updated == 1
