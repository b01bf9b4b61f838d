"""`Parley`: the blocking client. Each method drives one operation of `_operations` over one
kept `httpx.Client` (connections are pooled and reused)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from datetime import datetime

import httpx

from parley_client import _operations as ops
from parley_client._http import DEFAULT_TIMEOUT_S, Options
from parley_client._retries import Deadline
from parley_client._stream import EventCursor
from parley_client.errors import (
    ParleyAPIError,
    ParleyError,
    WaitTimeout,
    connection_error,
    error_from_response,
)
from parley_client.events import RunEvent
from parley_client.models import (
    AgentConfig,
    Approval,
    Conversation,
    ConversationPage,
    Message,
    MessagePage,
    InferenceJob,
    Run,
    RunPage,
    ToolChoice,
    ToolOutput,
    UsageReport,
)

T = TypeVar("T")


class Parley:
    """A client of one Parley gateway with one bearer token.

        with Parley("http://127.0.0.1:8080", token) as parley:
            conversation = parley.conversations.create(defaults=...)
            run = parley.runs.start(conversation.id, "What is 2 + 2?")
            print(parley.runs.wait(run.id).final_text)

    Requests that fail transiently (network errors, 429, 5xx) are sent again up to `max_retries`
    times where that is safe; see `runs.start` for how starting a run stays exactly-once.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        max_retries: int = 2,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._options = Options.build(base_url, token, timeout, max_retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self._options.timeout)
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.runs = Runs(self)
        self.usage = UsageReports(self)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Parley:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- driving operations -------------------------------------------------------------------

    def _run(self, op: ops.Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    response = self._send(call)
                except ParleyError as exc:
                    call = op.throw(exc)
                else:
                    call = op.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, call: ops.Call) -> httpx.Response:
        options = self._options
        attempt = 0
        while True:
            failure: httpx.TransportError | None = None
            response: httpx.Response | None = None
            try:
                response = self._http.request(
                    call.method,
                    options.url(call.path),
                    params=call.params,
                    json=call.json,
                    headers=options.headers(),
                )
            except httpx.TransportError as exc:
                failure = exc
            else:
                if response.is_success:
                    return response
            delay = options.policy.delay(call.replay, attempt, failure=failure, response=response)
            if delay is None:
                if failure is not None:
                    raise connection_error(failure) from failure
                assert response is not None
                raise error_from_response(response)
            attempt += 1
            time.sleep(delay)

    def _events(
        self, cursor: EventCursor, deadline: Deadline | None
    ) -> Generator[RunEvent, None, None]:
        options = self._options
        while not cursor.done:
            failure: Exception | None = None
            params, headers = cursor.request()
            try:
                with self._http.stream(
                    "GET",
                    options.url(cursor.path),
                    params=params,
                    headers=options.headers(headers),
                    timeout=options.stream_timeout(deadline),
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise error_from_response(response)
                    for line in response.iter_lines():
                        event = cursor.feed(line)
                        if event is not None:
                            yield event
                            if cursor.done:
                                return
                if cursor.ended():
                    cursor.checked(self._run(ops.get_run(cursor.run_id)))
                    if cursor.done:
                        return
            except (httpx.TransportError, ParleyAPIError) as exc:
                failure = exc
            if deadline is not None and deadline.expired:
                raise WaitTimeout(cursor.run_id, deadline.timeout or 0.0) from failure
            delay = cursor.retry_delay(failure)
            remaining = deadline.remaining() if deadline is not None else None
            time.sleep(delay if remaining is None else min(delay, remaining))


class Conversations:
    def __init__(self, client: Parley) -> None:
        self._client = client

    def create(
        self,
        *,
        defaults: AgentConfig | Mapping[str, Any],
        name: str | None = None,
        system_prompt: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """A new conversation. `system_prompt` is pinned for its life; `defaults` apply to every
        run unless a run overrides them."""
        return self._client._run(ops.create_conversation(defaults, name, system_prompt, extra_body))

    def get(self, conversation_id: str) -> Conversation:
        return self._client._run(ops.get_conversation(conversation_id))

    def list(self, *, page: int | None = None, per_page: int | None = None) -> ConversationPage:
        """One page of your conversations, newest first (the server's default: 50 a page)."""
        return self._client._run(ops.list_conversations(page, per_page))

    def iter_all(self, *, per_page: int | None = None) -> Iterator[Conversation]:
        """Every conversation, newest first, page after page; each once."""
        pager = ops.ConversationPager(per_page)
        while (op := pager.next_op()) is not None:
            yield from pager.take(self._client._run(op))

    def list_runs(
        self,
        conversation_id: str,
        *,
        status: str | Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> RunPage:
        """One page of the conversation's runs, newest first; see `runs.list`."""
        query = ops.RunFilter.of(status, created_after, created_before, limit)
        return self._client._run(ops.list_runs(conversation_id, query, before))

    def iter_runs(
        self,
        conversation_id: str,
        *,
        status: str | Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
        before: str | None = None,
    ) -> Iterator[Run]:
        """Every run of the conversation that matches, newest first, following the cursors;
        each once (see `runs.iter_all`)."""
        query = ops.RunFilter.of(status, created_after, created_before, page_size)
        pager = ops.RunPager(conversation_id, query, before)
        while (op := pager.next_op()) is not None:
            yield from pager.take(self._client._run(op))


class Messages:
    def __init__(self, client: Parley) -> None:
        self._client = client

    def list(
        self, conversation_id: str, *, since: int = 0, per_page: int | None = None
    ) -> MessagePage:
        """Messages with sequence_no > `since` (one page; `next_since` reads the next)."""
        return self._client._run(ops.list_messages(conversation_id, since, per_page))

    def iter_all(
        self, conversation_id: str, *, since: int = 0, per_page: int | None = None
    ) -> Iterator[Message]:
        """Every message after `since`, in order, page after page."""
        pager = ops.MessagePager(conversation_id, since, per_page)
        while (op := pager.next_op()) is not None:
            yield from pager.take(self._client._run(op))


class Runs:
    def __init__(self, client: Parley) -> None:
        self._client = client

    def start(
        self,
        conversation_id: str,
        text: str | None = None,
        *,
        payload: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        tool_choice: ToolChoice | Mapping[str, Any] | None = None,
        config_override: Mapping[str, Any] | None = None,
        client_op_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Run:
        """Start a run with a user message (`text`) or any `payload`.

        A `client_op_id` is generated when not given and kept for every retry, so a start
        whose answer was lost is answered by the original run (200, `start_outcome`
        "duplicate"), never started twice. Without `expected_version` the conversation's
        current version is read first; a run committed between that read and the start makes
        it a `VersionConflict`, which is not retried: look at what changed, then decide.

        `run_id` (a UUID you choose) becomes the new run's id, and `client_op_id` when you give
        none: the same start sent again, from anywhere, answers the original run
        (`run.duplicate`); the same run_id with another conversation or other arguments
        (`expected_version` included: pass it when you replay) raises `RunIdConflict`.
        `metadata` (an object, at most 16 KB as JSON) is kept with the run and returned on it.
        """
        if payload is None:
            if text is None:
                raise ValueError("give the user message as `text`, or a `payload`")
            payload = ops.user_message(text)
        elif text is not None:
            raise ValueError("give either `text` or `payload`, not both")
        return self._client._run(
            ops.start_run(
                conversation_id,
                payload,
                expected_version=expected_version,
                tool_choice=tool_choice,
                config_override=config_override,
                client_op_id=client_op_id,
                run_id=run_id,
                metadata=metadata,
                extra_body=extra_body,
            )
        )

    def get(self, run_id: str) -> Run:
        return self._client._run(ops.get_run(run_id))

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> RunPage:
        """One page of your runs on every conversation, newest first (listed runs have no
        `live`). `status`: one or several statuses ("completed", or
        [RunStatus.COMPLETED, RunStatus.FAILED]); `created_after` / `created_before`: bounds on
        `started_at`, both exclusive (aware datetimes, or RFC 3339 strings); `limit`: the page
        size (1-100, default 20). `before` is the previous page's `next_before`, with the same
        filters (a cursor belongs to its listing)."""
        query = ops.RunFilter.of(status, created_after, created_before, limit)
        return self._client._run(ops.list_runs(None, query, before))

    def iter_all(
        self,
        *,
        status: str | Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
        before: str | None = None,
    ) -> Iterator[Run]:
        """Every run that matches, newest first, page after page (`page_size` a page). Each
        comes once and none is skipped: runs started while it walks sort before its cursor
        (they are not yielded; list again for them)."""
        query = ops.RunFilter.of(status, created_after, created_before, page_size)
        pager = ops.RunPager(None, query, before)
        while (op := pager.next_op()) is not None:
            yield from pager.take(self._client._run(op))

    def inference_jobs(self, run_id: str) -> builtins.list[InferenceJob]:
        """The run's model calls, by iteration (none before its first call): each request as
        sent and response as received, with its usage or failure."""
        return self._client._run(ops.list_inference_jobs(run_id))

    def cancel(self, run_id: str) -> Run:
        """Cancel a pending or running run: it ends failed with AgentLoopCancelled. Cancelling a
        run already cancelled answers it; any other terminal run raises ConflictError."""
        return self._client._run(ops.cancel_run(run_id))

    def submit_tool_outputs(
        self,
        run: Run,
        outputs: Mapping[str, str | ToolOutput] | Iterable[ToolOutput],
        *,
        approvals: Mapping[str, str | Approval] | Iterable[Approval] | None = None,
        expected_version: int | None = None,
        client_op_id: str | None = None,
        tool_choice: ToolChoice | Mapping[str, Any] | None = None,
        config_override: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Run:
        """Answer a requires_action run: a new run whose payload carries `outputs`
        ({tool_use_id: answer}; a ToolOutput with is_error=True tells the model the tool
        failed). Every pending call must be answered. `run_id` and `metadata` as for `start`."""
        return self._client._run(
            ops.start_run(
                run.conversation_id,
                ops.tool_outputs_payload(outputs, approvals),
                expected_version=expected_version,
                tool_choice=tool_choice,
                config_override=config_override,
                client_op_id=client_op_id,
                run_id=run_id,
                metadata=metadata,
                extra_body=None,
            )
        )

    def submit_approvals(
        self,
        run: Run,
        *,
        approve: Iterable[str] = (),
        deny: Mapping[str, str | None] | Iterable[str] = (),
        outputs: Mapping[str, str | ToolOutput] | Iterable[ToolOutput] | None = None,
        expected_version: int | None = None,
        client_op_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Run:
        """Decide on a run's approval requests (`run.approval_requests`): approve some tool_use
        ids, deny others ({tool_use_id: reason}); caller tools pending beside them are answered
        with `outputs`. An approved call runs in the resuming run; a denied one reaches the
        model as a failed call carrying the reason."""
        return self.submit_tool_outputs(
            run,
            outputs or {},
            approvals=ops.approvals_of(approve, deny),
            expected_version=expected_version,
            client_op_id=client_op_id,
            run_id=run_id,
            metadata=metadata,
        )

    def stream(self, run_id: str, *, after_seq: int = 0) -> EventStream:
        """The run's events, from after `after_seq`, until its terminal event. A dropped
        connection is resumed from the last event received: none is lost or repeated."""
        cursor = EventCursor(run_id, after_seq, self._client._options.policy)
        return EventStream(self._client._events(cursor, None))

    def wait(self, run_id: str, *, timeout: float | None = None) -> Run:
        """The run once terminal (completed, requires_action or failed), following its event
        stream; raises WaitTimeout after `timeout` seconds."""
        deadline = Deadline(timeout)
        run = self.get(run_id)
        if run.is_terminal:
            return run
        cursor = EventCursor(run_id, run.latest_event_seq or 0, self._client._options.policy)
        events = self._client._events(cursor, deadline)
        try:
            for _ in events:
                if deadline.expired and not cursor.done:
                    raise WaitTimeout(run_id, timeout or 0.0)
        finally:
            events.close()
        return cursor.final_run if cursor.final_run is not None else self.get(run_id)


class UsageReports:
    def __init__(self, client: Parley) -> None:
        self._client = client

    def get(
        self,
        *,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
    ) -> UsageReport:
        """Your token and cost totals per model over the runs started in the range (both
        bounds exclusive; aware datetimes or RFC 3339 strings); all your runs without one."""
        return self._client._run(ops.get_usage(created_after, created_before))


class EventStream(Iterator[RunEvent]):
    """An iterator of RunEvents that can be closed early (`with` closes it too)."""

    def __init__(self, events: Generator[RunEvent, None, None]) -> None:
        self._events = events

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> RunEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
