"""The built-in echo model's answers (pure): what it says, which tool it calls with which
arguments, the smallest value an output schema accepts, and its usage counts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from agents.v1 import message_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from services.runner.providers.base import ForcedTool, ModelRequest, ReplyDelta, ToolSpec
from services.runner.providers.bedrock import parse_reply
from services.runner.providers.echo import STREAM_PIECES, EchoProvider, answer, example
from tests.spec_examples import BOOKING_TOOL, EXAMPLE_4_SCHEMA

U, A, T = message_pb2.ROLE_USER, message_pb2.ROLE_ASSISTANT, message_pb2.ROLE_TOOL
BOOKING = BOOKING_TOOL["input_schema"]


def text(value: str) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(text=message_pb2.TextBlock(text=value))


def msg(role: int, *blocks: message_pb2.ContentBlock) -> message_pb2.Message:
    return message_pb2.Message(role=role, content_blocks=list(blocks))


def request(
    *messages: message_pb2.Message,
    tools: tuple[ToolSpec, ...] = (),
    forced: ForcedTool | None = None,
    schema: dict[str, Any] | None = None,
    max_tokens: int = 1024,
) -> dict[str, Any]:
    """The Converse body the echo model answers, prepared as the runner prepares it."""
    model_request = ModelRequest(
        provider_model_id="us.anthropic.claude-opus-4-6-v1",
        system_prompt="Be brief.",
        messages=messages,
        tools=tools,
        tool_choice=forced,
        max_tokens=max_tokens,
        temperature=0.0,
        output_schema=schema,
    )
    prepared = EchoProvider().prepare("dp", model_request)
    assert orjson.loads(prepared.request_json)["modelId"] == "us.anthropic.claude-opus-4-6-v1"
    return prepared.body


def test_text_mode_echoes_the_last_user_message() -> None:
    reply = parse_reply(answer(request(msg(U, text("What is 2 + 2?")))))
    assert [b.text.text for b in reply.content] == ["You said: What is 2 + 2?"]
    assert reply.stop_reason == "end_turn"
    history = request(
        msg(U, text("first")), msg(A, text("You said: first")), msg(U, text("second"))
    )
    assert parse_reply(answer(history)).content[0].text.text == "You said: second"


def test_a_forced_tool_is_called_with_arguments_from_its_schema() -> None:
    booking = ToolSpec("confirm_booking", "Confirm a slot.", BOOKING)
    other = ToolSpec("docs-search", "Search.", {"type": "object", "properties": {}})
    said = msg(U, text("tomorrow afternoon"))
    body = request(said, tools=(other, booking), forced=ForcedTool("tool", "confirm_booking"))
    raw = answer(body)
    assert raw["stopReason"] == "tool_use"
    (use,) = raw["output"]["message"]["content"]
    assert use["toolUse"]["name"] == "confirm_booking"
    assert use["toolUse"]["input"] == {"proposed_slot": "tomorrow afternoon"}
    assert use["toolUse"]["toolUseId"].startswith("tooluse_")
    assert answer(body) == raw  # deterministic
    anything = answer(request(said, tools=(other, booking), forced=ForcedTool("any")))
    assert anything["output"]["message"]["content"][0]["toolUse"]["name"] == "docs-search"
    unforced = answer(request(said, tools=(other, booking), forced=ForcedTool("auto")))
    assert unforced["output"]["message"]["content"] == [{"text": "You said: tomorrow afternoon"}]


def test_tool_use_ids_differ_as_the_history_grows() -> None:
    tool = (ToolSpec("confirm_booking", "", BOOKING),)
    forced = ForcedTool("any")
    once = answer(request(msg(U, text("a")), tools=tool, forced=forced))
    later = answer(
        request(
            msg(U, text("a")),
            msg(A, text("You said: a")),
            msg(U, text("a")),
            tools=tool,
            forced=forced,
        )
    )
    ids = [r["output"]["message"]["content"][0]["toolUse"]["toolUseId"] for r in (once, later)]
    assert ids[0] != ids[1]


def test_after_tool_results_it_summarises_them() -> None:
    use = message_pb2.ContentBlock(
        tool_use=message_pb2.ToolUseBlock(tool_use_id="t1", name="docs-search")
    )
    failed = message_pb2.ContentBlock(
        tool_use=message_pb2.ToolUseBlock(tool_use_id="t2", name="confirm_booking")
    )
    results = msg(
        T,
        message_pb2.ContentBlock(
            tool_result=message_pb2.ToolResultBlock(tool_use_id="t1", content=[text("3 hits")])
        ),
        message_pb2.ContentBlock(
            tool_result=message_pb2.ToolResultBlock(
                tool_use_id="t2", content=[text("declined")], is_error=True
            )
        ),
    )
    body = request(msg(U, text("look it up")), msg(A, use, failed), results)
    reply = parse_reply(answer(body))
    assert reply.content[0].text.text == (
        "docs-search returned: 3 hits\nconfirm_booking failed: declined"
    )


def test_structured_mode_answers_the_smallest_valid_object() -> None:
    body = request(msg(U, text("User u-123 logged in.")), schema=EXAMPLE_4_SCHEMA)
    value = orjson.loads(answer(body)["output"]["message"]["content"][0]["text"])
    assert Draft202012Validator(EXAMPLE_4_SCHEMA).is_valid(value)
    assert value == {
        "event": {
            "type": "login",
            "user_id": "User u-123 logged in.",
            "session_duration_seconds": 0,
        }
    }


def test_usage_is_counted_from_text_length_and_max_tokens_cuts_the_reply() -> None:
    short = answer(request(msg(U, text("hi"))))["usage"]
    long = answer(request(msg(U, text("hi " * 400))))["usage"]
    assert 0 < short["inputTokens"] < long["inputTokens"]
    assert 0 < short["outputTokens"] < long["outputTokens"]
    assert long["totalTokens"] == long["inputTokens"] + long["outputTokens"]
    cut = answer(request(msg(U, text("hi " * 400)), max_tokens=5))
    assert cut["stopReason"] == "max_tokens"
    assert len(cut["output"]["message"]["content"][0]["text"]) == 20


def test_example_fills_strings_and_respects_each_keyword() -> None:
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"type": "string", "maxLength": 3}, "hel"),
        ({"type": "string", "minLength": 8}, "hello..."),
        ({"enum": ["b", "a"]}, "b"),
        ({"const": 7}, 7),
        ({"type": "integer", "minimum": 3}, 3),
        ({"type": "integer", "exclusiveMinimum": 3}, 4),
        ({"type": "integer", "maximum": -2}, -2),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.2}, 0.1),
        ({"type": "array", "items": {"type": "boolean"}, "minItems": 2}, [False, False]),
        ({"type": ["null", "string"]}, "hello"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, 0),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),
        ({}, "hello"),
    ]
    for schema, expected in cases:
        assert example(schema, "hello") == expected, schema
    assert example({}, "hello", root_object=True) == {}


_LEAVES = st.one_of(
    st.builds(
        lambda lo, span, excl: {
            "type": "integer",
            "minimum" if not excl else "exclusiveMinimum": lo,
            "maximum": lo + span + (1 if excl else 0),
        },
        st.integers(-50, 50),
        st.integers(0, 20),
        st.booleans(),
    ),
    st.builds(
        lambda lo, span: {"type": "number", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span},
        st.floats(-100, 100, allow_nan=False),
        st.floats(0.01, 10),
    ),
    st.builds(
        lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
        st.integers(0, 10),
        st.integers(0, 10),
    ),
    st.lists(st.text(max_size=4), min_size=1, max_size=3, unique=True).map(lambda e: {"enum": e}),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
)


def _object(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.text("abcxyz", min_size=1, max_size=4), children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required: {
                "type": "object",
                "additionalProperties": False,
                "properties": props,
                "required": sorted(required),
            },
            st.sets(st.sampled_from(sorted(props)) if props else st.nothing()),
        )
    )


_SCHEMAS = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        _object(children),
        st.builds(
            lambda items, n: {"type": "array", "items": items, "minItems": n},
            children,
            st.integers(0, 3),
        ),
        st.lists(children, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(schema=_SCHEMAS, said=st.text(max_size=30))
def test_example_is_valid_for_any_schema_of_the_output_subset(
    schema: dict[str, Any], said: str
) -> None:
    assert Draft202012Validator(schema).is_valid(example(schema, said))


async def test_a_streamed_call_hands_over_a_few_pieces_of_the_same_reply() -> None:
    echo = EchoProvider()
    base = ModelRequest(
        provider_model_id="m",
        system_prompt="",
        messages=(msg(U, text("What is the capital of France?")),),
        tools=(),
        tool_choice=None,
        max_tokens=4096,
        temperature=1.0,
        output_schema=None,
        stream=True,
        thinking_budget=2048,
    )
    call = echo.prepare("dp", base)
    assert call.stream
    deltas: list[ReplyDelta] = []
    reply = await echo.converse(call, deltas.append)
    assert reply == await echo.converse(call)  # the same reply, streamed or not
    reasoning, answer_block = reply.content
    assert reasoning.reasoning.signature and "capital of France" in reasoning.reasoning.text
    assert answer_block.text.text == "You said: What is the capital of France?"
    assert 1 < len([d for d in deltas if d.kind == "text"]) <= STREAM_PIECES
    assert "".join(d.text for d in deltas if d.kind == "text") == answer_block.text.text
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == reasoning.reasoning.text
    assert {d.block_index for d in deltas if d.kind == "reasoning"} == {0}
    assert {d.block_index for d in deltas if d.kind == "text"} == {1}
    unstreamed: list[ReplyDelta] = []
    off = echo.prepare("dp", replace(base, stream=False, thinking_budget=None))
    assert len((await echo.converse(off, unstreamed.append)).content) == 1 and unstreamed == []


def test_a_title_request_gets_the_messages_first_words() -> None:
    from services.runner.titling import TITLE_PROMPT, clean_title

    body = request(msg(U, text("Find me a meeting time for tomorrow afternoon.")))
    body["system"] = [{"text": TITLE_PROMPT}]
    reply = parse_reply(answer(body))
    assert clean_title(reply.content[0].text.text) == (
        "Find me a meeting time for tomorrow afternoon"
    )
