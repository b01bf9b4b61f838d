"""bedrock.py's ConverseStream assembly (events framed and parsed by botocore, as the provider
reads them) and the reasoning shapes thinking needs (pure)."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from agents.v1 import message_pb2
from botocore import parsers
from botocore.eventstream import EventStreamBuffer
from google.protobuf import json_format

from services.runner.providers.base import ModelRequest, ProviderError, ReplyDelta
from services.runner.providers.bedrock import (
    StreamAssembler,
    converse_body,
    converse_messages,
    parse_reply,
)
from tests.blocks import message, text, tool_result, tool_use
from tests.fakes import eventstream
from tests.fakes.bedrock import reasoning_block, redacted_block, signature_of

_SHAPE = (
    boto3.session.Session()
    .client("bedrock-runtime", region_name="us-east-1")
    .meta.service_model.operation_model("ConverseStream")
    .output_shape.members["stream"]
)
U, A, T = message_pb2.ROLE_USER, message_pb2.ROLE_ASSISTANT, message_pb2.ROLE_TOOL


def parsed(frames: bytes, chunk: int = 7) -> list[dict[str, Any]]:
    """The frames as the provider sees them: fed in small chunks, parsed by botocore."""
    buffer, out = EventStreamBuffer(), []
    for start in range(0, len(frames), chunk):
        buffer.add_data(frames[start : start + chunk])
        for msg in buffer:
            out.append(parsers.EventStreamJSONParser().parse(msg.to_response_dict(), _SHAPE))
    return out


def assemble(events: list[tuple[str, Any]]) -> tuple[dict[str, Any], list[ReplyDelta]]:
    assembler, deltas = StreamAssembler(), []
    frames = b"".join(eventstream.event(member, payload) for member, payload in events)
    for event in parsed(frames):
        delta = assembler.feed(event)
        if delta is not None:
            deltas.append(delta)
    return assembler.response(), deltas


def answer(*content: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
        "metrics": {"latencyMs": 3},
    }


def test_a_streamed_answer_is_the_unstreamed_one_and_its_deltas_concatenate() -> None:
    unstreamed = answer(
        reasoning_block("Let me think about Paris."),
        {"text": "Checking the weather now."},
        {"toolUse": {"toolUseId": "t1", "name": "weather-get", "input": {"city": "Paris", "n": 2}}},
        stop="tool_use",
    )
    response, deltas = assemble(eventstream.converse_events(unstreamed, text_pieces=4))
    assert parse_reply(response).content == parse_reply(unstreamed).content
    reply = parse_reply(response)
    assert (reply.stop_reason, reply.usage.prompt, reply.usage.completion) == ("tool_use", 11, 7)
    by_block: dict[tuple[int, str], str] = {}
    for delta in deltas:
        by_block[(delta.block_index, delta.kind)] = (
            by_block.get((delta.block_index, delta.kind), "") + delta.text
        )
    assert by_block == {
        (0, "reasoning"): "Let me think about Paris.",
        (1, "text"): "Checking the weather now.",
    }
    assert reply.content[0].reasoning.signature == signature_of("Let me think about Paris.")
    assert json_format.MessageToDict(reply.content[2].tool_use.arguments) == {
        "city": "Paris",
        "n": 2,
    }


def test_redacted_reasoning_is_kept_as_base64() -> None:
    response, deltas = assemble(
        eventstream.converse_events(answer(redacted_block(b"\x00secret"), {"text": "ok"}))
    )
    reply = parse_reply(response)
    assert base64.b64decode(reply.content[0].reasoning.redacted_content) == b"\x00secret"
    assert [(d.block_index, d.kind) for d in deltas] == [(1, "text")] * len(deltas)


def test_blocks_the_reply_does_not_keep_do_not_shift_block_indexes() -> None:
    events: list[tuple[str, Any]] = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": {"title": "x"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("futureEvent", {"anything": 1}),  # parsed as {}: skipped
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "kept"}}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}),
    ]
    response, deltas = assemble(events)
    assert deltas == [ReplyDelta(0, "kept")]
    assert [b.text.text for b in parse_reply(response).content] == ["kept"]


def test_an_empty_tool_input_is_an_empty_object() -> None:
    events: list[tuple[str, Any]] = [
        (
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "n"}}},
        ),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "tool_use"}),
    ]
    response, _ = assemble(events)
    assert response["output"]["message"]["content"] == [
        {"toolUse": {"toolUseId": "t", "name": "n", "input": {}}}
    ]


@pytest.mark.parametrize(
    ("events", "detail"),
    [
        (
            [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "cut"}})],
            "messageStop",
        ),
        (
            [
                (
                    "contentBlockStart",
                    {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "n"}}},
                ),
                (
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a": '}}},
                ),
                ("messageStop", {"stopReason": "tool_use"}),
            ],
            "input of tool call t is not JSON",
        ),
    ],
)
def test_an_incomplete_stream_is_the_providers_failure(events: list, detail: str) -> None:
    with pytest.raises(ProviderError) as failed:
        assemble(events)
    assert failed.value.code == "ModelInvocationFailed" and detail in failed.value.message


# --- reasoning in requests ------------------------------------------------------------------


def request(*turns: message_pb2.Message, thinking: int | None) -> ModelRequest:
    return ModelRequest(
        provider_model_id="m",
        system_prompt="",
        messages=turns,
        tools=(),
        tool_choice=None,
        max_tokens=4096,
        temperature=1.0,
        output_schema=None,
        thinking_budget=thinking,
    )


def reasoning(text_: str = "", signature: str = "", redacted: str | None = None) -> Any:
    block = message_pb2.ReasoningBlock(text=text_, signature=signature)
    if redacted is not None:
        block.redacted_content = redacted
    return message_pb2.ContentBlock(reasoning=block)


def test_thinking_on_sends_the_budget_and_reasoning_back_in_place() -> None:
    turns = (
        message(U, text("weather?")),
        message(
            A,
            reasoning("think", "sig"),
            reasoning(redacted=base64.b64encode(b"r").decode()),
            tool_use("t1", "w-get", city="Paris"),
        ),
        message(T, tool_result("t1", "sunny")),
    )
    body = converse_body(request(*turns, thinking=2048))
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
        {"reasoningContent": {"redactedContent": b"r"}},
        {"toolUse": {"toolUseId": "t1", "name": "w-get", "input": {"city": "Paris"}}},
    ]


def test_thinking_off_leaves_reasoning_out() -> None:
    turns = (message(U, text("q")), message(A, reasoning("think", "sig"), text("a")))
    body = converse_body(request(*turns, thinking=None))
    assert "additionalModelRequestFields" not in body
    assert converse_messages(turns)[1]["content"] == [{"text": "a"}]
    assert body["messages"][1]["content"] == [{"text": "a"}]
