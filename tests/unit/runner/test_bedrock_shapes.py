"""The Converse request and response shapes, and titles (pure functions)."""

from __future__ import annotations

from typing import Any

from agents.v1 import message_pb2

from services.runner.providers.base import ForcedTool, ModelRequest, ToolSpec
from services.runner.providers.bedrock import converse_body, converse_messages, parse_reply
from services.runner.titling import title_from
from tests.blocks import message, text, tool_result, tool_use


msg, use, res = message, tool_use, tool_result


U, A, T = message_pb2.ROLE_USER, message_pb2.ROLE_ASSISTANT, message_pb2.ROLE_TOOL


def test_results_split_over_two_tool_turns_merge_into_one_user_message() -> None:
    """MCP results committed by a pausing run + the caller's outputs that resume it."""
    messages = converse_messages(
        (
            msg(U, text("book")),
            msg(A, use("m1", "docs-search"), use("c1", "confirm")),
            msg(T, res("m1")),
            msg(T, res("c1", is_error=True)),
            msg(A, text("done")),
            msg(U, text("cancelled question")),
            msg(U, text("next question")),
        )
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [b["toolResult"]["toolUseId"] for b in messages[2]["content"]] == ["m1", "c1"]
    assert messages[2]["content"][1]["toolResult"]["status"] == "error"
    assert messages[4]["content"] == [{"text": "cancelled question"}, {"text": "next question"}]


def test_body_carries_tools_choice_inference_config_and_output_schema() -> None:
    body = converse_body(
        ModelRequest(
            provider_model_id="m",
            system_prompt="be brief",
            messages=(msg(U, text("hi")),),
            tools=(ToolSpec("docs-search", "", {"type": "object"}),),
            tool_choice=ForcedTool("tool", "docs-search"),
            max_tokens=100,
            temperature=0.5,
            output_schema={"type": "object"},
        )
    )
    assert body["system"] == [{"text": "be brief"}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "docs-search"}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["description"] == "docs-search"
    assert body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"] == (
        '{"type":"object"}'
    )


def test_parse_reply_keeps_text_and_tool_uses_and_skips_unknown_blocks() -> None:
    reply = parse_reply(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"text": "let me look"},
                        {"SDK_UNKNOWN_MEMBER": {"name": "futureBlock"}},
                        {"toolUse": {"toolUseId": "t1", "name": "docs-search", "input": {"q": 1}}},
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
            "ResponseMetadata": {"RequestId": "x"},
        }
    )
    assert [b.WhichOneof("block") for b in reply.content] == ["text", "tool_use"]
    assert reply.content[1].tool_use.arguments["q"] == 1
    assert reply.stop_reason == "tool_use" and reply.usage.total == 8
    assert "ResponseMetadata" not in reply.raw_response


def test_titles_are_the_first_words_of_the_first_line() -> None:
    assert title_from("What is 2 + 2?") == "What is 2 + 2"
    assert title_from("\n  Plan my trip.\nDetails follow") == "Plan my trip"
    long = title_from("word " * 40)
    assert len(long) <= 61 and long.endswith("…")
    assert title_from("   ") == ""


def _cached_body(system: str, tool_description: str, caching: bool = True) -> dict[str, Any]:
    return converse_body(
        ModelRequest(
            provider_model_id="m",
            system_prompt=system,
            messages=(msg(U, text("hi")),),
            tools=(ToolSpec("lookup", tool_description, {"type": "object"}),),
            tool_choice=None,
            max_tokens=100,
            temperature=0.0,
            output_schema=None,
            prompt_caching=caching,
        )
    )


def test_cache_points_follow_the_tools_and_the_system_prompt_once_the_prefix_is_long() -> None:
    point = {"cachePoint": {"type": "default"}}
    short = _cached_body("be brief", "looks up")
    assert point not in short["system"] and point not in short["toolConfig"]["tools"]
    long_tools = _cached_body("be brief", "x" * 5000)
    # The prefix is the tools, then the system prompt: both points are past the threshold.
    assert long_tools["toolConfig"]["tools"][-1] == point and long_tools["system"][-1] == point
    long_system = _cached_body("y" * 5000, "looks up")
    assert long_system["system"] == [{"text": "y" * 5000}, point]
    assert point not in long_system["toolConfig"]["tools"]
    off = _cached_body("y" * 5000, "x" * 5000, caching=False)
    assert off["system"] == [{"text": "y" * 5000}] and len(off["toolConfig"]["tools"]) == 1


def test_parse_reply_reads_the_cache_figures() -> None:
    reply = parse_reply(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": 10,
                "outputTokens": 2,
                "totalTokens": 1512,
                "cacheReadInputTokens": 1200,
                "cacheWriteInputTokens": 300,
            },
        }
    )
    assert (reply.usage.prompt, reply.usage.cache_read, reply.usage.cache_write) == (10, 1200, 300)
    assert reply.usage.total == 1512  # Bedrock's totalTokens: cache reads and writes included
