"""Runs as a collection: pages of the caller's runs (all of them, or one conversation's), newest
first, and their usage totals per model.

A page is keyset-paginated on (started_at, id), descending: each page is one range of an index
that leads with the owner (or the conversation), optionally the status, then (started_at, id)
(db/models.py), so a page costs the same at 10 runs and at millions, and runs created while a
client pages through do not shift later pages (they sort before the cursor). A status filter of
several statuses is one such range per status, merged (UNION ALL of the per-status pages).

The cursor (`next_before`) is opaque: the last row's (started_at, id) with the listing's scope,
signed with an HMAC key derived from the installation's secret, so a client cannot forge one or
replay one on another user's or conversation's listing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from agents.v1 import conversation_service_pb2
from google.protobuf import timestamp_pb2
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Connection

from services.api import mapping
from services.api.conversations import owned_conversation
from services.api.db.engine import Database
from services.api.db.models import runs
from services.api.db.rows import RunRow
from services.common.auth import Principal
from services.common.errors import ParleyError

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100  # larger limits are reduced to this
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_KEY_LABEL: Final = b"parley run-listing cursor v1"

ListRequest = (
    conversation_service_pb2.ListRunsRequest | conversation_service_pb2.ListConversationRunsRequest
)


@dataclass(frozen=True, slots=True)
class RunPage:
    rows: list[RunRow]
    next_before: str | None


class Cursors:
    """Signs and checks `next_before` cursors with a key derived from `secret`."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _CURSOR_KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, scope: str, started_at: datetime, run_id: str) -> str:
        body = orjson.dumps([scope, _micros(started_at), run_id])
        return _b64(body) + "." + _b64(self._mac(body))

    def decode(self, scope: str, cursor: str) -> tuple[datetime, str]:
        """(started_at, id) of the row the previous page ended on; InvalidRequest when the
        cursor is malformed, forged, or from another listing."""
        try:
            body_text, mac_text = cursor.split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
            if hmac.compare_digest(mac, self._mac(body)):
                got_scope, micros, run_id = orjson.loads(body)
                if got_scope == scope and isinstance(micros, int) and isinstance(run_id, str):
                    return _EPOCH + timedelta(microseconds=micros), run_id
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            pass
        raise ParleyError(
            "InvalidRequest",
            "`before` is not a cursor this listing gave out: pass a page's next_before unchanged",
            field="before",
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _micros(value: datetime) -> int:
    if value.tzinfo is None:  # SQLite hands back naive datetimes; everything stored is UTC
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def _statuses(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in mapping.STATUS_FROM_DB]
    if unknown or not names:
        raise ParleyError(
            "InvalidRequest",
            f"status `{text}` must list run statuses, comma-separated: "
            + ", ".join(mapping.STATUS_FROM_DB),
            field="status",
        )
    return sorted(set(names))


def _limit(request: ListRequest) -> int:
    if not request.HasField("limit"):
        return DEFAULT_LIMIT
    if request.limit < 1:
        raise ParleyError(
            "InvalidRequest", f"limit must be >= 1, got {request.limit}", field="limit"
        )
    return min(request.limit, MAX_LIMIT)


def _time(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _range(request: Any) -> list[ColumnElement[bool]]:
    where = []
    if request.HasField("created_after"):
        where.append(runs.c.started_at > _time(request.created_after))
    if request.HasField("created_before"):
        where.append(runs.c.started_at < _time(request.created_before))
    return where


def _newest_first(query: Select[Any], n: int) -> Select[Any]:
    return query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(n)


def _page_statement(
    scope: list[ColumnElement[bool]], statuses: list[str] | None, n: int
) -> Select[Any]:
    """The `n` newest runs matching `scope` (and one of `statuses`): one index range per status."""
    if statuses is None or len(statuses) == 1:
        where = scope if statuses is None else [*scope, runs.c.status == statuses[0]]
        return _newest_first(select(runs).where(and_(*where)), n)
    parts = [
        select(_newest_first(select(runs).where(and_(*scope, runs.c.status == s)), n).subquery())
        for s in statuses
    ]
    merged = union_all(*parts).subquery()
    return select(merged).order_by(merged.c.started_at.desc(), merged.c.id.desc()).limit(n)


async def list_runs(
    db: Database,
    cursors: Cursors,
    principal: Principal,
    request: ListRequest,
    conversation_id: str | None = None,
) -> RunPage:
    """A page of the caller's runs (on `conversation_id`'s conversation when given: a
    conversation that is not the caller's is ConversationNotFound)."""
    limit = _limit(request)
    statuses = _statuses(request.status) if request.HasField("status") else None
    if conversation_id is None:
        scope_key = f"u:{principal.company_id}:{principal.user_id}"
    else:
        scope_key = f"c:{principal.company_id}:{principal.user_id}:{conversation_id}"
    after = cursors.decode(scope_key, request.before) if request.HasField("before") else None

    def read(conn: Connection) -> list[RunRow]:
        if conversation_id is None:
            scope = [
                runs.c.company_id == principal.company_id,
                runs.c.user_id == principal.user_id,
            ]
        else:
            conversation = owned_conversation(conn, principal, conversation_id)
            scope = [runs.c.conversation_id == conversation.id]
        scope += _range(request)
        if after is not None:
            scope.append(
                tuple_(runs.c.started_at, runs.c.id)
                < tuple_(
                    literal(after[0], runs.c.started_at.type), literal(after[1], runs.c.id.type)
                )
            )
        statement = _page_statement(scope, statuses, limit + 1)
        return [RunRow(*row) for row in conn.execute(statement)]

    rows = await db.read(read)
    if len(rows) <= limit:
        return RunPage(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return RunPage(rows, cursors.encode(scope_key, last.started_at, last.id))


def page_to_proto(page: RunPage) -> conversation_service_pb2.ListRunsResponse:
    response = conversation_service_pb2.ListRunsResponse(
        runs=[mapping.listed_run_to_proto(row) for row in page.rows]
    )
    if page.next_before is not None:
        response.next_before = page.next_before
    return response


# --- usage --------------------------------------------------------------------------------------

_priced = func.count(runs.c.cost_nano_usd)


async def usage(
    db: Database, principal: Principal, request: conversation_service_pb2.GetUsageRequest
) -> conversation_service_pb2.GetUsageResponse:
    """The caller's totals per model over the runs started in the range (one range of the
    owner's index, grouped)."""
    statement = (
        select(
            runs.c.model,
            func.count(),
            *(
                func.coalesce(func.sum(column), 0)
                for column in (
                    runs.c.prompt_tokens,
                    runs.c.completion_tokens,
                    runs.c.cache_read_tokens,
                    runs.c.cache_write_tokens,
                )
            ),
            case((_priced > 0, func.sum(runs.c.cost_nano_usd)), else_=None),
        )
        .where(
            and_(
                runs.c.company_id == principal.company_id,
                runs.c.user_id == principal.user_id,
                *_range(request),
            )
        )
        .group_by(runs.c.model)
        .order_by(runs.c.model)
    )
    rows = await db.read(lambda conn: conn.execute(statement).all())
    response = conversation_service_pb2.GetUsageResponse()
    total = 0
    for model, count, prompt, completion, read, write, cost in rows:
        entry = response.models.add(
            model=model,
            runs=count,
            input_tokens=int(prompt),
            output_tokens=int(completion),
            cache_read_input_tokens=int(read),
            cache_write_input_tokens=int(write),
        )
        if cost is not None:
            entry.total_cost_usd = mapping.usd(int(cost))
            total += int(cost)
    response.total_cost_usd = mapping.usd(total)
    return response
