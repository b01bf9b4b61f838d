"""chat_completions.py: Parley's turns to Chat Completions messages and the answers back (pure),
and the transcript moving between providers."""

from __future__ import annotations

import base64

import pytest
from agents.v1 import message_pb2

from services.runner.providers import chat_completions as cc
from services.runner.providers.base import ForcedTool, ModelRequest, ProviderError, ToolSpec
from services.runner.providers.bedrock import converse_messages
from tests.blocks import message, text, tool_result, tool_use
from tests.fakes import bedrock as fb
from tests.fakes import chat_completions as fc

U, A, T = message_pb2.ROLE_USER, message_pb2.ROLE_ASSISTANT, message_pb2.ROLE_TOOL
PNG = base64.b64encode(b"\x89PNG fake").decode()


def image(data: str = PNG, *, media_type: str = "image/png") -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(image=message_pb2.ImageBlock(media_type=media_type, data=data))


def document(name: str, media_type: str, body: bytes) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(
        document=message_pb2.DocumentBlock(
            media_type=media_type, name=name, data=base64.b64encode(body).decode()
        )
    )


def call(call_id: str, name: str, arguments: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def req(*turns: message_pb2.Message, **changes: object) -> ModelRequest:
    fields: dict[str, object] = {
        "provider_model_id": "m",
        "system_prompt": "",
        "messages": turns,
        "tools": (),
        "tool_choice": None,
        "max_tokens": 10,
        "temperature": 0.0,
        "output_schema": None,
        **changes,
    }
    return ModelRequest(**fields)


def test_a_paused_and_resumed_transcript_maps_to_tool_messages_after_their_calls() -> None:
    """MCP results committed by a pausing run, then the caller's outputs that resumed it, then
    a cancelled run's question and the next one."""
    body = cc.request_body(
        req(
            message(U, text("book")),
            message(
                A,
                text("Checking."),
                tool_use("m1", "docs-search", q="x"),
                tool_use("c1", "confirm"),
            ),
            message(T, tool_result("m1", "found")),
            message(T, tool_result("c1", "declined", is_error=True)),
            message(A, text("done")),
            message(U, text("cancelled question")),
            message(U, text("next question")),
            system_prompt="be brief",
        ),
        max_tokens_field="max_tokens",
        stream=False,
    )
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "book"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                call("m1", "docs-search", '{"q":"x"}'),
                call("c1", "confirm", "{}"),
            ],
        },
        {"role": "tool", "tool_call_id": "m1", "content": "found"},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: declined"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "cancelled question"},
        {"role": "user", "content": "next question"},
    ]  # fmt: skip
    assert fc.refusal(body) is None  # the fake, refusing what the API refuses, takes it


def test_images_are_data_urls_and_documents_text_or_a_note() -> None:
    turn = message(
        U,
        text("What is in these?"),
        image(),
        document("notes.md", "text/markdown", b"# Plan\nship it"),
        document("q3.pdf", "application/pdf", b"%PDF-1.7"),
    )
    (user,) = cc.messages("", (turn,))
    assert user["content"][0] == {"type": "text", "text": "What is in these?"}
    assert user["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}"},
    }
    assert user["content"][2]["text"] == (
        '<document name="notes.md" media_type="text/markdown">\n# Plan\nship it\n</document>'
    )
    assert user["content"][3]["text"].startswith("[document q3.pdf (application/pdf) not shown")
    assert fc.refusal({"model": "m", "messages": [user]}) is None


def test_tools_choice_schema_and_stream_options() -> None:
    tools = (ToolSpec("lookup", "", {}),)
    body = cc.request_body(
        req(
            message(U, text("q")),
            tools=tools,
            tool_choice=ForcedTool("any"),
            output_schema={"type": "object"},
        ),
        max_tokens_field="max_completion_tokens",
        stream=True,
    )  # fmt: skip
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "lookup",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["max_completion_tokens"] == 10
    assert body["response_format"]["json_schema"]["name"] == "final_answer"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    auto = cc.request_body(
        req(message(U, text("q")), tools=tools, tool_choice=ForcedTool("auto")),
        max_tokens_field="max_tokens",
        stream=False,
    )
    assert auto["tool_choice"] == "auto" and "stream" not in auto


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
     ("content_filter", "content_filtered"), ("something_new", "something_new")],
)  # fmt: skip
def test_finish_reasons_become_converse_stop_reasons(finish: str, stop: str) -> None:
    answer = fc.text("x", finish_reason=finish).body
    assert cc.parse_reply(answer, "").stop_reason == stop


def test_an_answer_with_content_parts_and_tool_calls() -> None:
    answer = fc.tool_calls(("call_a", "lookup", {"k": 1}), say="Let me look.").body
    answer["choices"][0]["message"]["content"] = [{"type": "text", "text": "Let me look."}]
    reply = cc.parse_reply(answer, "raw")
    assert reply.content[0].text.text == "Let me look."
    use = reply.content[1].tool_use
    assert (use.tool_use_id, use.name, dict(use.arguments)) == ("call_a", "lookup", {"k": 1})
    assert reply.raw_response == "raw" and reply.usage.total == 180


@pytest.mark.parametrize("arguments", ['{"k": ', "not json"], ids=["truncated", "prose"])
def test_tool_call_arguments_that_are_not_json_fail_the_call(arguments: str) -> None:
    answer = fc.tool_calls(("c", "lookup", {})).body
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = arguments
    with pytest.raises(ProviderError, match="not JSON"):
        cc.parse_reply(answer, "")


@pytest.mark.parametrize("answer", [{}, {"choices": []}, {"choices": [{"text": "x"}]}, []])
def test_an_answer_without_a_message_fails(answer: object) -> None:
    with pytest.raises(ProviderError, match="unreadable"):
        cc.parse_reply(answer, "")


def test_cached_tokens_leave_prompt_tokens() -> None:
    usage = cc.token_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60},
        }
    )
    assert (usage.prompt, usage.completion, usage.cache_read, usage.cache_write) == (40, 7, 60, 0)
    assert cc.token_usage(None).total == 0 and cc.token_usage({"prompt_tokens": "x"}).total == 0


def test_streamed_chunks_gather_into_the_whole_answer() -> None:
    whole = fc.tool_calls(("call_1", "lookup", {"city": "Paris"}), say="Looking it up.")
    gathered = cc.StreamedReply()
    deltas = [
        d for chunk in fc.stream_chunks(whole, include_usage=True) for d in gathered.feed(chunk)
    ]
    assert "".join(d.text for d in deltas) == "Looking it up."
    assert gathered.reply() == cc.parse_reply(whole.body, gathered.reply().raw_response)
    with pytest.raises(ProviderError, match="overloaded"):
        cc.StreamedReply().feed({"error": {"message": "overloaded"}})


def test_a_transcript_made_on_chat_completions_goes_on_bedrock() -> None:
    """Ids a chat-completions server made (vLLM's `functions.lookup:0`) are not Converse ids:
    they are mapped, the same way for the call and its result, and the fake Converse (which
    refuses what Converse refuses) takes the transcript."""
    turns = (
        message(U, text("q")),
        message(A, tool_use("functions.lookup:0", "lookup")),
        message(T, tool_result("functions.lookup:0", "r")),
        message(A, text("a")),
        message(U, text("more"), image(), document("a.b.pdf", "application/pdf", b"%PDF")),
    )
    converse = converse_messages(turns)
    use_id = converse[1]["content"][0]["toolUse"]["toolUseId"]
    assert use_id == converse[2]["content"][0]["toolResult"]["toolUseId"] != "functions.lookup:0"
    assert converse[4]["content"][2]["document"]["name"] == "a b pdf"
    assert fb.refusal({"messages": converse}) is None
    assert (
        fc.refusal(cc.request_body(req(*turns), max_tokens_field="max_tokens", stream=False))
        is None
    )
