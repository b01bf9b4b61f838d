"""Every API operation once, for both clients: a generator that yields the HTTP calls it needs
and receives their answers (sans-IO). `Parley` drives them with blocking I/O, `AsyncParley` with
asyncio; a failed call is thrown into the generator, so an operation may recover from it."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
    InferenceJob,
    RunPage,
    StartOutcome,
    ToolOutput,
    UsageReport,
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
    run_id: str | None,
    metadata: Mapping[str, Any] | None,
    extra_body: Mapping[str, Any] | None,
) -> Op[Run]:
    if expected_version is None:
        # Read-then-start is a race: a run that commits in between makes this a VersionConflict.
        conversation = yield from get_conversation(conversation_id)
        expected_version = conversation.version
    body: dict[str, Any] = {
        # One key for every attempt: a retry of a start that did land answers the same run.
        # With a run_id it is the run_id: the server compares a replayed run_id's whole body,
        # so the same call made again (another process, a restart) must send the same key.
        "client_op_id": client_op_id or run_id or str(uuid.uuid4()),
        "expected_version": expected_version,
        "payload": _dump(payload),
    }
    if run_id is not None:
        body["run_id"] = run_id
    if metadata is not None:
        body["metadata"] = _dump(metadata)
    if tool_choice is not None:
        body["tool_choice"] = _dump(tool_choice)
    if config_override is not None:
        body["config_override"] = _dump(config_override)
    body.update(_dump(extra_body or {}))
    response = yield Call(
        "POST", _path("/agents/conversations/{}/runs", conversation_id), json=body
    )
    run = Run.model_validate(response.json())
    run._start_outcome = start_outcome(response)
    return run


def start_outcome(response: httpx.Response) -> StartOutcome:
    """The header's word; without one (an older server), the status says it: 200 replayed."""
    try:
        return StartOutcome(response.headers.get(START_OUTCOME_HEADER, ""))
    except ValueError:
        return StartOutcome.DUPLICATE if response.status_code == 200 else StartOutcome.ACCEPTED


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


@dataclass(frozen=True)
class RunFilter:
    """The query of a run listing: which runs (statuses, a time range on started_at, both
    bounds exclusive) and the page size; the cursor comes apart."""

    status: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    limit: int | None = None

    @classmethod
    def of(
        cls,
        status: str | Iterable[str] | None,
        created_after: datetime | str | None,
        created_before: datetime | str | None,
        limit: int | None,
    ) -> RunFilter:
        if isinstance(status, str) or status is None:
            statuses = status
        else:
            statuses = ",".join(status)  # RunStatus members are strs
        return cls(statuses, _instant(created_after), _instant(created_before), limit)

    def params(self, before: str | None) -> dict[str, Any]:
        fields = (
            ("status", self.status),
            ("created_after", self.created_after),
            ("created_before", self.created_before),
            ("limit", self.limit),
            ("before", before),
        )
        return {k: v for k, v in fields if v is not None}


def _instant(value: datetime | str | None) -> str | None:
    """RFC 3339 in UTC. A naive datetime is refused: local time or UTC, it cannot say."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{value!r} has no time zone: give an aware datetime, e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def list_runs(conversation_id: str | None, query: RunFilter, before: str | None) -> Op[RunPage]:
    """The caller's runs (one conversation's when `conversation_id` is given), newest first."""
    path = (
        "/agents/runs"
        if conversation_id is None
        else _path("/agents/conversations/{}/runs", conversation_id)
    )
    response = yield Call("GET", path, params=query.params(before))
    return RunPage.model_validate(response.json())


class RunPager:
    """Walks a run listing from `before` (the newest run when None) page by page, with the same
    filters on every page. Pages are keyset ranges behind the cursor: runs started meanwhile
    sort before it, so each run comes once and none is skipped."""

    def __init__(self, conversation_id: str | None, query: RunFilter, before: str | None) -> None:
        self._conversation_id = conversation_id
        self._query = query
        self._before = before
        self._done = False

    def next_op(self) -> Op[RunPage] | None:
        if self._done:
            return None
        return list_runs(self._conversation_id, self._query, self._before)

    def take(self, page: RunPage) -> list[Run]:
        self._before = page.next_before
        self._done = page.next_before is None
        return page.runs


def get_usage(
    created_after: datetime | str | None, created_before: datetime | str | None
) -> Op[UsageReport]:
    params = {
        k: v
        for k, v in (
            ("created_after", _instant(created_after)),
            ("created_before", _instant(created_before)),
        )
        if v is not None
    }
    response = yield Call("GET", "/agents/usage", params=params)
    return UsageReport.model_validate(response.json())


def get_run(run_id: str) -> Op[Run]:
    response = yield Call("GET", _path("/agents/runs/{}", run_id))
    return Run.model_validate(response.json())


def list_inference_jobs(run_id: str) -> Op[list[InferenceJob]]:
    response = yield Call("GET", _path("/agents/runs/{}/inference_jobs", run_id))
    jobs = response.json().get("inference_jobs") or []
    return [InferenceJob.model_validate(job) for job in jobs]


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
