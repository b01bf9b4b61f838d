"""BedrockProvider's ConverseStream against the fake Bedrock on loopback: deltas as they come,
the same reply as Converse, failures before and inside the stream, and a cancelled call that
closes its connection at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from agents.v1 import message_pb2
from google.protobuf import json_format

from services.runner.providers.base import ModelRequest, ProviderError, ReplyDelta
from services.runner.providers.bedrock import BedrockOptions, BedrockProvider
from tests.fakes import bedrock as fb


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[fb.FakeBedrock]:
    async with fb.serve_fake_bedrock() as server:
        for key, value in fb.aws_environ(server.url).items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
        yield server


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[BedrockProvider]:
    bedrock = BedrockProvider(BedrockOptions(max_attempts=2))
    try:
        yield bedrock
    finally:
        await bedrock.close()


def request(question: str, **changes: object) -> ModelRequest:
    base = ModelRequest(
        provider_model_id="us.anthropic.claude-opus-4-6-v1",
        system_prompt="sys",
        messages=(
            message_pb2.Message(
                role=message_pb2.ROLE_USER,
                content_blocks=[
                    message_pb2.ContentBlock(text=message_pb2.TextBlock(text=question))
                ],
            ),
        ),
        tools=(),
        tool_choice=None,
        max_tokens=4096,
        temperature=1.0,
        output_schema=None,
        stream=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_streamed_call_hands_over_deltas_and_returns_the_converse_reply(
    fake: fb.FakeBedrock, provider: BedrockProvider
) -> None:
    reply = fb.tool_uses(
        ("t1", "w-get", {"city": "Paris"}), say="Checking the weather.", reasoning="Paris, so."
    )
    fake.on("s1", replace(reply, pieces=5), reply)
    deltas: list[ReplyDelta] = []
    streamed = await provider.converse(provider.prepare("dp", request("s1")), deltas.append)
    plain = await provider.converse(provider.prepare("dp", request("s1", stream=False)))
    assert [r.streamed for r in fake.requests_for("s1")] == [True, False]
    assert streamed.content == plain.content and streamed.stop_reason == "tool_use"
    assert (streamed.usage.prompt, streamed.usage.completion) == (150, 30)
    text = "".join(d.text for d in deltas if d.kind == "text")
    thought = "".join(d.text for d in deltas if d.kind == "reasoning")
    assert (thought, text) == ("Paris, so.", "Checking the weather.")
    assert {d.block_index for d in deltas if d.kind == "text"} == {1}
    assert len(deltas) > 2  # pieces, as they came
    tool = streamed.content[2].tool_use
    assert json_format.MessageToDict(tool.arguments) == {"city": "Paris"}  # from its fragments
    assert streamed.raw_response == plain.raw_response  # the job record is the same answer


async def test_failures_before_the_stream_are_retried_and_inside_it_are_not(
    fake: fb.FakeBedrock, provider: BedrockProvider
) -> None:
    fake.on("s2", fb.throttled(), fb.text("after a retry"))
    reply = await provider.converse(provider.prepare("dp", request("s2")), lambda d: None)
    assert reply.content[0].text.text == "after a retry" and len(fake.requests_for("s2")) == 2

    broken = replace(fb.text("half an answer"), stream_exception=("throttlingException", "slow"))
    fake.on("s3", broken, fb.text("never asked"))
    deltas: list[ReplyDelta] = []
    with pytest.raises(ProviderError) as failed:
        await provider.converse(provider.prepare("dp", request("s3")), deltas.append)
    assert failed.value.code == "ModelThrottled" and "slow" in failed.value.message
    assert len(fake.requests_for("s3")) == 1 and "".join(d.text for d in deltas) == "half an answer"


@pytest.mark.parametrize(
    "body",
    [b'"just a string"', b"\x00\x00\x00\x10" + b"\x00" * 12, b""],
    ids=["json", "crc", "empty"],
)
async def test_an_unreadable_stream_fails_at_once(
    fake: fb.FakeBedrock, provider: BedrockProvider, body: bytes
) -> None:
    question = f"garbage {body!r}"
    fake.on(question, fb.raw(body), fb.text("not asked"))
    with pytest.raises(ProviderError) as failed:
        await provider.converse(provider.prepare("dp", request(question)), lambda d: None)
    assert failed.value.code == "ModelInvocationFailed" and "unreadable" in failed.value.message
    assert len(fake.requests_for(question)) == 1


async def test_cancelling_a_streamed_call_closes_its_connection_at_once(
    fake: fb.FakeBedrock, provider: BedrockProvider
) -> None:
    held = fb.StreamGate(fb.text("a long answer that never ends"), after=2)
    fake.on("s4", held)
    deltas: list[ReplyDelta] = []
    call = asyncio.create_task(
        provider.converse(provider.prepare("dp", request("s4")), deltas.append)
    )
    await asyncio.wait_for(held.arrived.wait(), 10)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(held.disconnected.wait(), 5)  # the fake saw the connection close
    assert not held.released.is_set()
    # the session stays usable
    fake.on("s5", fb.text("next"))
    reply = await provider.converse(provider.prepare("dp", request("s5")), lambda d: None)
    assert reply.content[0].text.text == "next"


async def test_thinking_requests_the_budget_and_keeps_reasoning(
    fake: fb.FakeBedrock, provider: BedrockProvider
) -> None:
    fake.on("s6", fb.text("4", reasoning="2 + 2 is 4"))
    reply = await provider.converse(
        provider.prepare("dp", request("s6", thinking_budget=2048)), lambda d: None
    )
    (sent,) = fake.requests_for("s6")
    assert sent.body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert reply.content[0].reasoning.text == "2 + 2 is 4"
    assert reply.content[0].reasoning.signature == fb.signature_of("2 + 2 is 4")
    # what Bedrock refuses with thinking on, the fake refuses too
    fake.on("s7", fb.text("x"))
    with pytest.raises(ProviderError) as refused:
        await provider.converse(
            provider.prepare("dp", request("s7", thinking_budget=2048, temperature=0.0)),
            lambda d: None,
        )
    assert "temperature" in refused.value.message
