"""BedrockProvider through real boto3 to the fake Converse endpoint on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from agents.v1 import message_pb2

from services.runner.providers.base import ModelRequest, ProviderError
from services.runner.providers.bedrock import BedrockOptions, BedrockProvider
from tests.fakes import bedrock as fb


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[fb.FakeBedrock]:
    async with fb.serve_fake_bedrock() as server:
        for key, value in fb.aws_environ(server.url).items():
            monkeypatch.setenv(key, value)
        yield server


def request(question: str) -> ModelRequest:
    return ModelRequest(
        provider_model_id="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
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
        max_tokens=64,
        temperature=0.0,
        output_schema=None,
    )


async def test_converse_round_trip_with_a_percent_encoded_model_id(fake: fb.FakeBedrock) -> None:
    fake.on("q1", fb.text("hello", tokens=(3, 1)))
    provider = BedrockProvider(BedrockOptions(max_attempts=1))
    try:
        call = provider.prepare("dp", request("q1"))
        reply = await provider.converse(call)
    finally:
        await provider.close()
    assert reply.content[0].text.text == "hello" and reply.usage.total == 4
    assert fake.requests[-1].model_id == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert '"modelId":"us.anthropic' in call.request_json


@pytest.mark.parametrize(
    ("reply", "code", "attempts"),
    [
        (fb.throttled(), "ModelThrottled", 2),
        (fb.error(408, "ModelTimeoutException", "took too long"), "ModelTimeout", 1),
        (fb.error(400, "ValidationException", "bad input"), "ModelInvocationFailed", 1),
        (fb.error(503, "ServiceUnavailableException", "down"), "ModelInvocationFailed", 2),
    ],
)
async def test_provider_errors_are_classified_after_one_retry_layer(
    fake: fb.FakeBedrock, reply: fb.Reply, code: str, attempts: int
) -> None:
    question = f"fail {code} {reply.status}"
    fake.on(question, reply, reply)
    provider = BedrockProvider(BedrockOptions(max_attempts=2))
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.converse(provider.prepare("dp", request(question)))
    finally:
        await provider.close()
    assert raised.value.code == code
    assert len(fake.requests_for(question)) == attempts


async def test_a_cancelled_call_does_not_block_the_event_loop(fake: fb.FakeBedrock) -> None:
    gate = fb.Gate(fb.text("late"))
    fake.on("slow", gate)
    provider = BedrockProvider(BedrockOptions(max_attempts=1))
    try:
        task = asyncio.create_task(provider.converse(provider.prepare("dp", request("slow"))))
        await asyncio.wait_for(gate.arrived.wait(), 10)  # the loop keeps running meanwhile
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.release()
    finally:
        await provider.close()
