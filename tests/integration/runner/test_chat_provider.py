"""The chat-completions providers (cortex, openai) against the fake Chat Completions endpoint on
loopback: what reaches each path, credentials, retries on retryable failures only, timeouts,
streaming, and the answers' mapping."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from agents.v1 import message_pb2

from services.common.catalogue import Cluster, Companies
from services.runner.providers.base import ForcedTool, ModelRequest, ProviderError, ToolSpec
from services.runner.providers.chat_http import ChatCompletionsProvider, ChatOptions, retry_after
from services.runner.providers.cortex import cortex_provider
from services.runner.providers.openai import openai_provider
from tests.blocks import assistant, message, text, tool_result
from tests.fakes import chat_completions as fc

FAST = ChatOptions(max_attempts=3, backoff_base_s=0.01, connect_timeout_s=2, read_timeout_s=5)
EVERYONE = Companies(everyone=True)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[fc.FakeChatCompletions]:
    async with fc.serve_fake_chat(api_key="sk-local") as server:
        yield server


def cortex(fake: fc.FakeChatCompletions, options: ChatOptions = FAST, **environ: str) -> Any:
    cluster = Cluster("snowflake", "cortex", EVERYONE, fake.url, token_env="SNOWFLAKE_PAT")
    return cortex_provider(cluster, options, {"SNOWFLAKE_PAT": fc.PAT, **environ})


def openai(fake: fc.FakeChatCompletions, options: ChatOptions = FAST, key: str = "sk-local") -> Any:
    cluster = Cluster("local", "openai", EVERYONE, fake.openai_url, api_key_env="LOCAL_KEY")
    return openai_provider(cluster, options, {"LOCAL_KEY": key} if key else {})


def request(question: str, *turns: message_pb2.Message, **changes: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "provider_model_id": "claude-opus-4-6",
        "system_prompt": "sys",
        "messages": (message(message_pb2.ROLE_USER, text(question)), *turns),
        "tools": (),
        "tool_choice": None,
        "max_tokens": 64,
        "temperature": 0.0,
        "output_schema": None,
        **changes,
    }
    return ModelRequest(**fields)


async def call(provider: ChatCompletionsProvider, req: ModelRequest, **kw: Any) -> Any:
    try:
        return await provider.converse(provider.prepare("dp", req), **kw)
    finally:
        await provider.close()


async def failure(provider: ChatCompletionsProvider, req: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await call(provider, req)
    return raised.value


async def test_cortex_calls_its_path_with_the_pat_and_its_token_type(
    fake: fc.FakeChatCompletions,
) -> None:
    fake.on("q", fc.text("hello", tokens=(12, 3), cached=5))
    reply = await call(cortex(fake), request("q"))
    assert reply.content[0].text.text == "hello" and reply.stop_reason == "end_turn"
    # cached prompt tokens are counted apart, as Bedrock counts them
    assert (reply.usage.prompt, reply.usage.completion, reply.usage.cache_read) == (7, 3, 5)
    (got,) = fake.requests
    assert got.path == fc.CORTEX_PATH
    assert got.headers["authorization"] == f"Bearer {fc.PAT}"
    assert got.headers["x-snowflake-authorization-token-type"] == "PROGRAMMATIC_ACCESS_TOKEN"
    assert got.body == {
        "model": "claude-opus-4-6",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
        "max_completion_tokens": 64,
        "temperature": 0.0,
    }


async def test_openai_calls_base_url_chat_completions_with_its_key_when_it_has_one(
    fake: fc.FakeChatCompletions,
) -> None:
    fake.on("q", fc.text("one"))
    await call(openai(fake), request("q"))
    (got,) = fake.requests
    assert got.path == fc.OPENAI_PATH and got.headers["authorization"] == "Bearer sk-local"
    assert got.body["max_tokens"] == 64 and "max_completion_tokens" not in got.body


async def test_an_openai_cluster_may_name_max_completion_tokens(
    fake: fc.FakeChatCompletions,
) -> None:
    """OpenAI's own API wants max_completion_tokens for its reasoning models."""
    fake.on("q", fc.text("one"))
    cluster = Cluster(
        "oai",
        "openai",
        EVERYONE,
        fake.openai_url,
        api_key_env="LOCAL_KEY",
        max_tokens_field="max_completion_tokens",
    )
    await call(openai_provider(cluster, FAST, {"LOCAL_KEY": "sk-local"}), request("q"))
    assert fake.requests[0].body["max_completion_tokens"] == 64
    assert "max_tokens" not in fake.requests[0].body


async def test_openai_without_a_key_sends_no_authorization() -> None:
    async with fc.serve_fake_chat(api_key=None) as fake:  # a local vLLM: no key
        fake.on("q", fc.text("ok"))
        cluster = Cluster("local", "openai", EVERYONE, fake.openai_url)
        await call(openai_provider(cluster, FAST, {}), request("q"))
        assert "authorization" not in fake.requests[0].headers


@pytest.mark.parametrize(
    ("build", "detail"),
    [
        (lambda f: cortex(f, SNOWFLAKE_PAT="wrong"), "Invalid OAuth access token"),
        (lambda f: openai(f, key="sk-wrong"), "Incorrect API key"),
    ],
)
async def test_refused_credentials_fail_at_once(
    fake: fc.FakeChatCompletions, build: Any, detail: str
) -> None:
    fake.on("q", fc.text("never"))
    error = await failure(build(fake), request("q"))
    assert error.code == "ModelInvocationFailed" and detail in error.message
    assert "HTTP 401" in error.message and len(fake.requests) == 1  # not retried


async def test_a_missing_credential_fails_without_a_call(fake: fc.FakeChatCompletions) -> None:
    cluster = Cluster("snowflake", "cortex", EVERYONE, fake.url, token_env="SNOWFLAKE_PAT")
    error = await failure(cortex_provider(cluster, FAST, {}), request("q"))
    assert error.code == "ModelInvocationFailed" and "SNOWFLAKE_PAT is not set" in error.message
    assert fake.requests == []


async def test_throttling_is_retried_then_succeeds(fake: fc.FakeChatCompletions) -> None:
    fake.on("q", fc.throttled(), fc.error(503, "overloaded"), fc.text("finally"))
    reply = await call(cortex(fake), request("q"))
    assert reply.content[0].text.text == "finally" and len(fake.requests) == 3


@pytest.mark.parametrize(
    ("replies", "code", "attempts"),
    [
        ((fc.throttled(),) * 3, "ModelThrottled", 3),
        ((fc.error(500, "boom"),) * 3, "ModelInvocationFailed", 3),
        ((fc.error(504, "gateway timeout"),) * 3, "ModelTimeout", 3),
        ((fc.throttled(retry_after="3600"),), "ModelThrottled", 1),  # not waited for
        ((fc.error(400, "bad"),), "ModelInvocationFailed", 1),
        ((fc.error(408, "slow"),), "ModelTimeout", 1),
        ((fc.raw(b"<html>proxy error</html>"),), "ModelInvocationFailed", 1),
        ((fc.raw(b'{"choices": []}'),), "ModelInvocationFailed", 1),
    ],
)
async def test_failures_retry_only_when_retryable(
    fake: fc.FakeChatCompletions, replies: tuple[fc.Reply, ...], code: str, attempts: int
) -> None:
    fake.on("q", *replies)
    error = await failure(openai(fake), request("q"))
    assert error.code == code, error.message
    assert len(fake.requests) == attempts


async def test_a_server_that_never_answers_times_out_once(fake: fc.FakeChatCompletions) -> None:
    fake.on("q", fc.Gate(fc.text("too late")))
    options = ChatOptions(max_attempts=3, read_timeout_s=0.2)
    error = await failure(openai(fake, options), request("q"))
    assert error.code == "ModelTimeout" and len(fake.requests) == 1


async def test_a_closed_port_is_retried_then_fails() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    cluster = Cluster("local", "openai", EVERYONE, f"http://127.0.0.1:{port}/v1")
    error = await failure(openai_provider(cluster, FAST, {}), request("q"))
    assert error.code == "ModelInvocationFailed" and "cannot connect" in error.message


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None


async def test_tools_tool_choice_and_a_tool_round_trip_reach_the_api_as_it_wants(
    fake: fc.FakeChatCompletions,
) -> None:
    fake.on(
        "weather?",
        fc.tool_calls(("call_1", "docs-search", {"query": "Paris"}), say="Looking."),
        fc.text("Sunny."),
    )
    tools = (ToolSpec("docs-search", "Search", {"type": "object", "properties": {}}),)
    provider = cortex(fake)
    try:
        first = await provider.converse(
            provider.prepare(
                "dp",
                request("weather?", tools=tools, tool_choice=ForcedTool("tool", "docs-search")),
            )
        )
        assert first.stop_reason == "tool_use"
        use = first.content[1].tool_use
        assert (use.tool_use_id, use.name, dict(use.arguments)) == (
            "call_1",
            "docs-search",
            {"query": "Paris"},
        )
        turns = (
            assistant(*first.content),
            message(message_pb2.ROLE_TOOL, tool_result("call_1", "22 °C", is_error=False)),
        )
        second = await provider.converse(
            provider.prepare("dp", request("weather?", *turns, tools=tools))
        )
    finally:
        await provider.close()
    assert second.content[0].text.text == "Sunny."
    one, two = fake.requests
    assert one.body["tool_choice"] == {"type": "function", "function": {"name": "docs-search"}}
    assert one.body["tools"][0]["function"]["name"] == "docs-search"
    assert two.body["messages"][2:] == [
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "docs-search", "arguments": '{"query":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 °C"},
    ]


async def test_the_fake_refuses_a_tool_message_without_its_call(
    fake: fc.FakeChatCompletions,
) -> None:
    """The fake refuses what the API refuses: here an orphan tool result (and the provider,
    fed such a transcript, reports the API's words)."""
    orphan = message(message_pb2.ROLE_TOOL, tool_result("call_9", "x"))
    error = await failure(openai(fake), request("q", orphan))
    assert "role 'tool' must be a response" in error.message


async def test_structured_output_is_a_json_schema_response_format(
    fake: fc.FakeChatCompletions,
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fake.on("q", fc.json_text({"a": 1}))
    reply = await call(openai(fake), request("q", output_schema=schema))
    assert reply.content[0].text.text == '{"a":1}'
    assert fake.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "final_answer", "schema": schema},
    }


async def test_a_streamed_call_hands_over_deltas_and_the_same_reply(
    fake: fc.FakeChatCompletions,
) -> None:
    fake.on("q", fc.text("Hello there, world"), fc.tool_calls(("c1", "lookup", {"k": "v"})))
    whole = fc.text("Hello there, world")
    provider = openai(fake)
    pieces: list[str] = []
    try:
        streamed = await provider.converse(
            provider.prepare("dp", request("q", stream=True)), lambda d: pieces.append(d.text)
        )
        calls = await provider.converse(provider.prepare("dp", request("q", stream=True)))
    finally:
        await provider.close()
    assert "".join(pieces) == "Hello there, world" and len(pieces) > 1
    assert streamed.content[0].text.text == "Hello there, world"
    assert streamed.usage.total == whole.body["usage"]["total_tokens"]
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert fake.requests[0].headers["accept"] == "text/event-stream"
    use = calls.content[0].tool_use
    assert (use.name, dict(use.arguments)) == ("lookup", {"k": "v"})
    assert calls.stop_reason == "tool_use"


async def test_a_stream_cut_before_done_fails_and_is_not_retried(
    fake: fc.FakeChatCompletions,
) -> None:
    fake.on("q", fc.cut_stream("Hello there, world"), fc.text("never"))
    pieces: list[str] = []
    provider = openai(fake)
    with pytest.raises(ProviderError) as raised:
        await call(provider, request("q", stream=True), deltas=lambda d: pieces.append(d.text))
    assert raised.value.code == "ModelInvocationFailed" and "[DONE]" in raised.value.message
    assert len(fake.requests) == 1


async def test_a_cancelled_call_stops_at_once(fake: fc.FakeChatCompletions) -> None:
    gate = fc.Gate(fc.text("late"))
    fake.on("q", gate)
    provider = openai(fake)
    task = asyncio.create_task(call(provider, request("q")))
    await asyncio.wait_for(gate.arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "words"),
    [
        (fc.CORTEX_PATH, {"Authorization": f"Bearer {fc.PAT}"}, {}, 401, "Token-Type"),
        (fc.CORTEX_PATH, {}, {}, 401, "Invalid OAuth"),
        (fc.OPENAI_PATH, {}, {}, 401, "Incorrect API key"),
        (fc.OPENAI_PATH, {"Authorization": "Bearer sk-local"}, {"tempurature": 1}, 400,
         "Unrecognized request argument supplied: tempurature"),
        (fc.OPENAI_PATH, {"Authorization": "Bearer sk-local"},
         {"messages": [{"role": "user", "content": "q"},
                       {"role": "assistant", "content": None,
                        "tool_calls": [{"id": "c", "type": "function",
                                        "function": {"name": "f", "arguments": "{}"}}]},
                       {"role": "user", "content": "next"}]},
         400, "must be followed by tool messages"),
    ],
)  # fmt: skip
async def test_the_fake_refuses_what_the_services_refuse(
    fake: fc.FakeChatCompletions,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": "q"}], **body}
    async with (
        aiohttp.ClientSession() as http,
        http.post(fake.url + path, json=payload, headers=headers) as response,
    ):
        assert response.status == status
        assert words in await response.text()
