"""BedrockProvider (botocore builds, signs and parses; aiohttp sends) against the fake Converse
endpoint on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace
from typing import Any
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from agents.v1 import message_pb2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

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


async def failure(question: str, **options: Any) -> ProviderError:
    """The ProviderError a call asking `question` ends with."""
    provider = BedrockProvider(BedrockOptions(**options))
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.converse(provider.prepare("dp", request(question)))
    finally:
        await provider.close()
    return raised.value


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
    error = await failure(question, max_attempts=2)
    assert error.code == code
    assert len(fake.requests_for(question)) == attempts


@pytest.mark.parametrize(
    ("reply", "attempts"),
    [
        (fb.raw(b'"a JSON string"'), 1),
        (fb.raw(b"[1, 2, 3]"), 1),
        (fb.raw(b'{"output": {"message": {"role": "assistant", "content": [{"te'), 1),
        (fb.raw(b"<html><body>Bad Gateway</body></html>", content_type=b"text/html"), 1),
        (fb.raw(b""), 1),
        (fb.raw(b'{"stopReason": "end_turn", "usage": {"inputTokens": 1}}'), 1),
        (fb.raw(b'{"output": {"surprise": {}}, "stopReason": "end_turn"}'), 1),
        # error statuses with such bodies: botocore's rules retry a 502/503 whatever it says
        (fb.raw(b"<html>502 Bad Gateway</html>", status=502, content_type=b"text/html"), 2),
        (fb.raw(b'"busy"', status=503), 2),
        (fb.raw(b"[]", status=500), 2),
        (fb.raw(b"[]", status=400), 1),
    ],
    ids=[
        "string",
        "list",
        "truncated",
        "html",
        "empty",
        "no-output",
        "no-message",
        "html-502",
        "string-503",
        "list-500",
        "list-400",
    ],
)
async def test_an_unreadable_answer_is_a_provider_failure(
    fake: fb.FakeBedrock, reply: fb.Reply, attempts: int
) -> None:
    question = f"unreadable {reply.status} {reply.raw!r}"
    fake.on(question, reply, reply)
    error = await failure(question, max_attempts=2)
    assert error.code == "ModelInvocationFailed", error
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


async def test_the_call_is_signed_with_sigv4_for_the_bedrock_service(fake: fb.FakeBedrock) -> None:
    """The fake cannot check a signature, so the test re-signs what arrived (path, body and
    signed headers as received) with botocore and compares: AWS would do the same."""
    fake.on("signed", fb.text("ok"))
    provider = BedrockProvider(BedrockOptions(max_attempts=1))
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude:0"
    try:
        await provider.converse(
            provider.prepare("dp", replace(request("signed"), provider_model_id=arn))
        )
    finally:
        await provider.close()
    got = fake.requests[-1]
    assert got.model_id == arn and "%3A" in got.raw_path
    headers = got.headers
    fields = dict(
        part.strip().split("=", 1) for part in headers["authorization"].split(" ", 1)[1].split(",")
    )
    signed = fields["SignedHeaders"].split(";")
    resent = AWSRequest(
        "POST",
        f"{fake.url}{got.raw_path}",
        data=got.raw_body,
        headers={h: headers[h] for h in signed},
    )
    resent.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials("AKIDFAKEFAKEFAKE", "fake-secret"), "bedrock", "us-east-1")
    expected = auth.signature(auth.string_to_sign(resent, auth.canonical_request(resent)), resent)
    assert fields["Signature"] == expected
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEFAKEFAKE/")
    assert "/us-east-1/bedrock/aws4_request" in headers["authorization"]
    assert headers["user-agent"].startswith("parley Botocore/")
    assert headers["content-type"] == "application/json"


async def test_many_calls_wait_at_once_without_a_thread_each(fake: fb.FakeBedrock) -> None:
    gates = [fb.Gate(fb.text(f"answer {i}")) for i in range(100)]
    for i, gate in enumerate(gates):
        fake.on(f"held {i}", gate)
    provider = BedrockProvider(BedrockOptions(max_attempts=1, max_connections=100))
    threads = threading.active_count()
    try:
        calls = [
            asyncio.create_task(provider.converse(provider.prepare("dp", request(f"held {i}"))))
            for i in range(100)
        ]
        await asyncio.wait_for(asyncio.gather(*(g.arrived.wait() for g in gates)), 20)
        assert threading.active_count() <= threads + 1  # at most the endpoint resolver's thread
        for gate in gates:
            gate.release()
        replies = await asyncio.wait_for(asyncio.gather(*calls), 20)
    finally:
        await provider.close()
    assert [r.content[0].text.text for r in replies] == [f"answer {i}" for i in range(100)]


async def test_a_model_slower_than_the_read_timeout_is_a_model_timeout(
    fake: fb.FakeBedrock,
) -> None:
    fake.on("stuck", fb.Gate(fb.text("too late")), fb.Gate(fb.text("too late")))
    error = await failure("stuck", max_attempts=2, read_timeout_s=0.3)
    assert error.code == "ModelTimeout"
    assert len(fake.requests_for("stuck")) == 2  # botocore's rules retry a read timeout


async def test_an_unreachable_endpoint_fails_after_the_standard_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for key, value in fb.aws_environ(f"http://127.0.0.1:{port}").items():
        monkeypatch.setenv(key, value)
    error = await failure("anyone?", max_attempts=2)
    assert error.code == "ModelInvocationFailed"
    assert "Could not connect to the endpoint URL" in error.message


async def test_a_bearer_token_is_refused_over_plain_http_as_botocore_does(
    fake: fb.FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "secret-token")
    error = await failure("bearer", max_attempts=1)
    assert error.code == "ModelInvocationFailed"
    assert "HTTPS" in error.message
    assert fake.requests_for("bearer") == []  # the token never left the process


async def test_no_credentials_fail_the_call_with_botocores_words(
    fake: fb.FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    error = await failure("anonymous", max_attempts=1)
    assert error.code == "ModelInvocationFailed"
    assert "Unable to locate credentials" in error.message
