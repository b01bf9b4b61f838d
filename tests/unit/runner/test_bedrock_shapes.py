"""The Converse request and response shapes, and titles (pure functions)."""

from __future__ import annotations

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
