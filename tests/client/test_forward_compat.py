"""Pure parts of the client: what a newer server may send (unknown fields, event types, block
types, statuses) never breaks it; the SSE decoder; the stream cursor's resume bookkeeping; the
retry policy's decisions."""

from __future__ import annotations

import httpx
import pytest

from parley_client import (
    ConflictError,
    MessageDeltaEvent,
    ParleyConnectionError,
    Run,
    RunEvent,
    RunIdConflict,
    RunPage,
    RunStatusEvent,
    StartOutcome,
    TextBlock,
    ToolCallEvent,
    ToolResultBlock,
    UnknownBlock,
    UsageReport,
    VersionConflict,
    parse_event,
)
from parley_client._operations import start_outcome
from parley_client._retries import Replay, RetryPolicy
from parley_client._stream import EventCursor, SSEDecoder
from parley_client.errors import BadRequestError, problem_error

RUN = {"id": "r1", "conversation_id": "c1", "status": "running"}


def test_unknown_run_fields_are_kept_and_contract_fields_are_typed() -> None:
    run = Run.model_validate(
        {**RUN, "total_cost_usd": 0.0125, "duration_ms": 1200, "shiny_new": {"a": 1}}
    )
    assert run.total_cost_usd == 0.0125 and run.duration_ms == 1200
    assert run.model_extra == {"shiny_new": {"a": 1}}
    assert Run.model_validate({**RUN, "status": "paused_for_lunch"}).is_terminal is False


def test_listing_and_usage_models_keep_unknown_fields_and_default_what_is_absent() -> None:
    page = RunPage.model_validate({"runs": [{**RUN, "usage": {"prompt_tokens": 3}}], "more": 1})
    assert page.next_before is None and page.model_extra == {"more": 1}
    usage = page.runs[0].usage
    assert usage is not None and (usage.cache_read_input_tokens, usage.total_tokens) == (0, 0)
    report = UsageReport.model_validate(
        {"models": [{"model": "m", "runs": 2, "by_region": {}}], "total_cost_usd": 0.5}
    )
    (entry,) = report.models
    assert entry.total_cost_usd is None and entry.model_extra == {"by_region": {}}


@pytest.mark.parametrize(
    ("status", "header", "outcome"),
    [
        (202, "accepted", StartOutcome.ACCEPTED),
        (200, "duplicate", StartOutcome.DUPLICATE),
        (200, None, StartOutcome.DUPLICATE),  # an older server: the status says it
        (202, None, StartOutcome.ACCEPTED),
        (200, "replayed-somehow", StartOutcome.DUPLICATE),
    ],
)
def test_the_start_outcome_comes_from_the_header_else_the_status(
    status: int, header: str | None, outcome: StartOutcome
) -> None:
    headers = {} if header is None else {"Parley-Start-Outcome": header}
    assert start_outcome(httpx.Response(status, headers=headers)) is outcome


def test_run_id_conflict_is_a_conflict_by_its_type() -> None:
    error = problem_error(409, {"type": "https://x/docs/errors/run-id-conflict", "status": 409})
    assert isinstance(error, RunIdConflict) and isinstance(error, ConflictError)
    assert not isinstance(error, VersionConflict)


def test_unknown_content_blocks_parse_as_unknown_block_inside_known_ones() -> None:
    run = Run.model_validate(
        {
            **RUN,
            "live": {
                "messages": [
                    {
                        "turn_index": 0,
                        "role": "tool",
                        "content_blocks": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t1",
                                "content": [
                                    {"type": "hologram", "depth": 3},
                                    {"type": "text", "text": "ok"},
                                ],
                            }
                        ],
                    }
                ]
            },
        }
    )
    assert run.live is not None
    (result,) = run.live.messages[0].content_blocks
    assert isinstance(result, ToolResultBlock)
    hologram, text = result.content
    assert isinstance(hologram, UnknownBlock) and hologram.model_extra == {"depth": 3}
    assert isinstance(text, TextBlock) and text.text == "ok"


def test_events_of_the_next_wave_are_typed_and_unknown_ones_kept() -> None:
    delta = parse_event({"seq": 7, "type": "message.delta", "turn_index": 1, "text": "Hel"})
    assert isinstance(delta, MessageDeltaEvent) and delta.text == "Hel"
    call = parse_event(
        {"seq": 8, "type": "tool.call", "tool_use_id": "t", "name": "docs-search", "kind": "mcp"}
    )
    assert isinstance(call, ToolCallEvent) and call.arguments == {}
    unknown = parse_event({"seq": 9, "type": "run.sparkles", "glitter": True})
    assert type(unknown) is RunEvent and unknown.model_extra == {"glitter": True}
    # a known type in a shape this client does not expect is kept untyped, not an error
    odd = parse_event({"seq": 10, "type": "run.status"})
    assert type(odd) is RunEvent and odd.type == "run.status"
    # the SSE `event:` name stands in for a missing `type`
    named = parse_event({"seq": 11, "status": "running"}, "run.status")
    assert isinstance(named, RunStatusEvent)


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    decoder = SSEDecoder()
    lines = [": keep-alive", "", "id: 4", "event: turn", 'data: {"a":', "data: 1}", "", ""]
    messages = [m for m in (decoder.feed(line) for line in lines) if m is not None]
    assert len(messages) == 1
    assert (messages[0].id, messages[0].event, messages[0].data) == ("4", "turn", '{"a":\n1}')
    assert decoder.feed("data:x") is None and decoder.feed("").data == "x"  # type: ignore[union-attr]


def _feed(cursor: EventCursor, *events: str) -> list[int]:
    seqs = []
    for data in events:
        for line in (f"data: {data}", ""):
            event = cursor.feed(line)
            if event is not None:
                seqs.append(event.seq)
    return seqs


def test_cursor_resumes_after_the_last_event_and_drops_repeats() -> None:
    cursor = EventCursor("r1", 0, RetryPolicy(max_retries=2))
    assert cursor.request() == ({}, {"accept": "text/event-stream", "cache-control": "no-cache"})
    assert _feed(cursor, '{"seq":1,"type":"x"}', '{"seq":2,"type":"x"}') == [1, 2]
    params, headers = cursor.request()  # a reconnection
    assert params == {"after_seq": 2} and headers["last-event-id"] == "2"
    # a server that replays from further back: the repeats are dropped
    assert _feed(cursor, '{"seq":2,"type":"x"}', '{"seq":3,"type":"x"}') == [3]
    terminal = '{"seq":4,"type":"run.completed","run":RUN}'.replace(
        "RUN", '{"id":"r1","conversation_id":"c1","status":"completed"}'
    )
    assert _feed(cursor, terminal) == [4]
    assert cursor.done and cursor.final_run is not None and cursor.final_run.status == "completed"


def test_cursor_gives_up_after_failures_without_progress_but_not_with_it() -> None:
    cursor = EventCursor("r1", 0, RetryPolicy(max_retries=2))
    failure = httpx.ReadError("reset")
    for _ in range(5):  # a failure after new events never counts against the budget
        cursor.request()
        _feed(cursor, f'{{"seq":{cursor.last_seq + 1},"type":"x"}}')
        assert cursor.retry_delay(failure) >= 0
    cursor.request()
    cursor.retry_delay(failure)
    cursor.request()
    cursor.retry_delay(failure)
    cursor.request()
    with pytest.raises(ParleyConnectionError):
        cursor.retry_delay(failure)
    with pytest.raises(BadRequestError):  # a client error is never retried
        EventCursor("r1", 0, RetryPolicy()).retry_delay(problem_error(400, {"status": 400}))


def test_an_error_event_raises_the_problem_it_carries() -> None:
    cursor = EventCursor("r1", 0, RetryPolicy())
    problem = '{"type":"http://x/docs/errors/version-conflict","status":409}'
    cursor.feed("event: error")
    cursor.feed(f"data: {problem}")
    with pytest.raises(VersionConflict):
        cursor.feed("")


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_policy_decisions() -> None:
    policy = RetryPolicy(max_retries=2)
    sent_maybe = httpx.RemoteProtocolError("server disconnected")
    never_sent = httpx.ConnectError("refused")
    assert policy.delay(Replay.IDEMPOTENT, 0, failure=sent_maybe) is not None
    assert policy.delay(Replay.UNSENT, 0, failure=sent_maybe) is None
    assert policy.delay(Replay.UNSENT, 0, failure=never_sent) is not None
    assert policy.delay(Replay.IDEMPOTENT, 2, failure=never_sent) is None  # retries spent
    assert policy.delay(Replay.IDEMPOTENT, 0, response=_response(503)) is not None
    assert policy.delay(Replay.UNSENT, 0, response=_response(503)) is None
    assert policy.delay(Replay.UNSENT, 0, response=_response(429, **{"retry-after": "3"})) == 3
    assert policy.delay(Replay.IDEMPOTENT, 0, response=_response(409)) is None
    assert policy.delay(Replay.IDEMPOTENT, 0, response=_response(400)) is None
