"""Every API operation once, for both clients: a generator that yields the HTTP calls it needs
and receives their answers (sans-IO). `Parley` drives them with blocking I/O, `AsyncParley` with
asyncio; a failed call is thrown into the generator, so an operation may recover from it."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from parley_client._retries import Replay
from parley_client.errors import ConflictError
from parley_client.models import (
    Approval,
    Conversation,
    ConversationPage,
    Message,
    MessagePage,
    Run,
    ToolOutput,
)

T = TypeVar("T")
START_OUTCOME_HEADER = "parley-start-outcome"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    replay: Replay = Replay.IDEMPOTENT


Op = Generator[Call, httpx.Response, T]


def _path(template: str, *ids: str) -> str:
    return template.format(*(quote(str(i), safe="") for i in ids))


def _dump(value: Any) -> Any:
    """A request value as JSON: models without the fields the caller did not set."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


# --- conversations ------------------------------------------------------------------------------


def create_conversation(
    defaults: Any,
    name: str | None,
    system_prompt: str | None,
    extra_body: Mapping[str, Any] | None,
) -> Op[Conversation]:
    body: dict[str, Any] = {"defaults": _dump(defaults)}
    if name is not None:
        body["name"] = name
    if system_prompt is not None:
        body["system_prompt"] = system_prompt
    body.update(_dump(extra_body or {}))
    # No idempotency key: sent again only when it surely never arrived.
    response = yield Call("POST", "/agents/conversations", json=body, replay=Replay.UNSENT)
    return Conversation.model_validate(response.json())


def get_conversation(conversation_id: str) -> Op[Conversation]:
    response = yield Call("GET", _path("/agents/conversations/{}", conversation_id))
    return Conversation.model_validate(response.json())


def list_conversations(page: int | None, per_page: int | None) -> Op[ConversationPage]:
    params = {k: v for k, v in (("page", page), ("per_page", per_page)) if v is not None}
    response = yield Call("GET", "/agents/conversations", params=params)
    return ConversationPage.model_validate(response.json())


def list_messages(conversation_id: str, since: int, per_page: int | None) -> Op[MessagePage]:
    params: dict[str, Any] = {"since": since}
    if per_page is not None:
        params["per_page"] = per_page
    response = yield Call(
        "GET", _path("/agents/conversations/{}/messages", conversation_id), params=params
    )
    return MessagePage.model_validate(response.json())


class ConversationPager:
    """Walks every page of the conversation list. Pages are offsets into a newest-first list:
    a conversation created meanwhile shifts the rest down a place, so ids already yielded are
    skipped (nothing is lost: items only move to later pages)."""

    def __init__(self, per_page: int | None) -> None:
        self._per_page = per_page
        self._page: int | None = 1
        self._seen: set[str] = set()

    def next_op(self) -> Op[ConversationPage] | None:
        return None if self._page is None else list_conversations(self._page, self._per_page)

    def take(self, page: ConversationPage) -> list[Conversation]:
        self._page = page.next_page
        fresh = [c for c in page.records if c.id not in self._seen]
        self._seen.update(c.id for c in fresh)
        return fresh


class MessagePager:
    """Walks a conversation's messages after `since`, page by page (`next_since`)."""

    def __init__(self, conversation_id: str, since: int, per_page: int | None) -> None:
        self._conversation_id = conversation_id
        self._since: int | None = since
        self._per_page = per_page

    def next_op(self) -> Op[MessagePage] | None:
        if self._since is None:
            return None
        return list_messages(self._conversation_id, self._since, self._per_page)

    def take(self, page: MessagePage) -> list[Message]:
        self._since = page.next_since
        return page.messages


# --- runs ---------------------------------------------------------------------------------------


def start_run(
    conversation_id: str,
    payload: Any,
    *,
    expected_version: int | None,
    tool_choice: Any,
    config_override: Any,
    client_op_id: str | None,
    extra_body: Mapping[str, Any] | None,
) -> Op[Run]:
    if expected_version is None:
        # Read-then-start is a race: a run that commits in between makes this a VersionConflict.
        conversation = yield from get_conversation(conversation_id)
        expected_version = conversation.version
    body: dict[str, Any] = {
        # One key for every attempt: a retry of a start that did land answers the same run.
        "client_op_id": client_op_id or str(uuid.uuid4()),
        "expected_version": expected_version,
        "payload": _dump(payload),
    }
    if tool_choice is not None:
        body["tool_choice"] = _dump(tool_choice)
    if config_override is not None:
        body["config_override"] = _dump(config_override)
    body.update(_dump(extra_body or {}))
    response = yield Call(
        "POST", _path("/agents/conversations/{}/runs", conversation_id), json=body
    )
    run = Run.model_validate(response.json())
    outcome = response.headers.get(START_OUTCOME_HEADER)
    run._start_outcome = outcome or ("duplicate" if response.status_code == 200 else "accepted")
    return run


def user_message(text: str) -> dict[str, Any]:
    return {"kind": "user_message", "text": text}


def tool_outputs_payload(
    outputs: Mapping[str, str | ToolOutput] | Iterable[ToolOutput] | None,
    approvals: Mapping[str, str | Approval] | Iterable[Approval] | None,
) -> dict[str, Any]:
    """`tool_outputs` answering a paused run: `outputs` maps tool_use_id to the answer (or a
    ToolOutput, for is_error); `approvals` maps tool_use_id to "approve"/"deny" (or an
    Approval, with a reason)."""
    answers: list[ToolOutput] = []
    if isinstance(outputs, Mapping):
        for tool_use_id, answer in outputs.items():
            if isinstance(answer, ToolOutput):
                answers.append(answer.model_copy(update={"tool_use_id": tool_use_id}))
            else:
                answers.append(ToolOutput(tool_use_id=tool_use_id, content=answer))
    elif outputs is not None:
        answers.extend(outputs)
    payload: dict[str, Any] = {"kind": "tool_outputs", "outputs": _dump(answers)}
    decisions: list[Approval] = []
    if isinstance(approvals, Mapping):
        for tool_use_id, decision in approvals.items():
            if isinstance(decision, Approval):
                decisions.append(decision.model_copy(update={"tool_use_id": tool_use_id}))
            else:
                decisions.append(Approval(tool_use_id=tool_use_id, decision=decision))  # type: ignore[arg-type]
    elif approvals is not None:
        decisions.extend(approvals)
    if decisions:
        payload["approvals"] = [d.model_dump(mode="json", exclude_none=True) for d in decisions]
    return payload


def approvals_of(
    approve: Iterable[str], deny: Mapping[str, str | None] | Iterable[str]
) -> list[Approval]:
    decisions = [Approval(tool_use_id=i, decision="approve") for i in approve]
    denied: Iterable[tuple[str, str | None]] = (
        deny.items() if isinstance(deny, Mapping) else ((i, None) for i in deny)
    )
    decisions += [Approval(tool_use_id=i, decision="deny", reason=why) for i, why in denied]
    return decisions


def get_run(run_id: str) -> Op[Run]:
    response = yield Call("GET", _path("/agents/runs/{}", run_id))
    return Run.model_validate(response.json())


def cancel_run(run_id: str) -> Op[Run]:
    try:
        response = yield Call("POST", _path("/agents/runs/{}/cancel", run_id))
    except ConflictError:
        # Already terminal. When a retried cancel finds its own earlier attempt's result (or
        # someone else's cancel), the run is cancelled as asked: answer it.
        run = yield from get_run(run_id)
        if run.cancelled:
            return run
        raise
    return Run.model_validate(response.json())
