"""A scripted Bedrock Converse and ConverseStream endpoint: an ASGI app served by uvicorn on a
loopback port, that boto3 reaches through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (see `aws_environ`).

Scripts are per conversation: `fake.on("What is 2 + 2?", text("4"))` queues replies for the
Converse requests whose first user message is that text, answered in order. Replies:
`text(...)`, `tool_uses((id, name, args), ...)`, `json_text({...})`, `error(status, code)`,
`throttled()`, `raw(bytes)` (a broken answer), `slow(reply, seconds)` (a model that takes its
time), or a `Gate` wrapping one of those, which holds the HTTP call until released (for
cancelling and killing a runner while a model call is in flight).
A ConverseStream request gets the same reply as an event stream (tests/fakes/eventstream.py):
each text in `pieces` deltas, `pace_s` apart (a `slow` reply's seconds spread over its events);
a `StreamGate` holds a stream after some deltas and sees the client close the connection;
`stream_exception` ends a stream with an exception.
Replies may carry signed reasoning (`reasoning=`); with thinking requested the fake refuses what
Bedrock refuses (settings, and a tool loop whose assistant turn lost its reasoning).
Every request is recorded.

Prompt caching is modelled: each `cachePoint` (in toolConfig.tools, system or a message's
content) ends a prefix (tools, then system, then messages, as the model reads them). A prefix of
at least `CACHE_MIN_TOKENS` (the fake counts a token per 4 characters of its JSON) is written to
the fake's cache on first sight (usage.cacheWriteInputTokens) and read from it after
(cacheReadInputTokens); shorter ones are ignored, as Bedrock ignores them. `inputTokens` stays the
scripted figure: the tokens after the cached prefix. A malformed cachePoint (a type other than
"default", an unknown ttl or member) or more than 4 of them is refused with ValidationException.

Title requests (the titling job's: system prompt `titling.TITLE_PROMPT`) are kept apart in
`title_requests` and answered from `fake.title(first_user_message, reply)`, else refused (the job
then falls back to the message's first words). Like Converse, the fake answers 400
ValidationException to what Converse refuses: a tool name or toolUseId off its pattern, roles
that do not alternate, a toolResult without the toolUse before it, a document name Converse does
not take.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from services.runner.titling import TITLE_PROMPT
from tests.fakes import serving, eventstream

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # tool names and toolUseIds, as Converse checks them
CACHE_MIN_TOKENS = 1024  # the shortest prefix Bedrock caches (Claude)
MAX_CACHE_POINTS = 4
_CACHE_TTLS = ("5m", "1h")
_DOCUMENT_NAME = re.compile(r"^(?!.*\s\s)[A-Za-z0-9\-()\[\] ]{1,200}$")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # sent as JSON, unless `raw` is set
    headers: tuple[tuple[bytes, bytes], ...] = ()
    raw: bytes | None = None  # sent as it is: a broken endpoint's answer
    content_type: bytes = b"application/json"
    delay_s: float = 0.0  # how long the model takes to answer (streamed: spread over the events)
    pieces: int = 3  # streamed: each text and reasoning block in this many deltas
    pace_s: float = 0.0  # streamed: the pause before each event
    stream_exception: tuple[str, str] | None = None  # streamed: (member, message) after deltas


@dataclass
class Gate:
    """Holds the call until `release()`; `arrived` is set when the request came in."""

    then: Reply | StreamGate  # a StreamGate: the stream starts when released, then holds again
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class StreamGate:
    """A streamed reply that holds after `after` content deltas until `release()`; `arrived` is
    set when it holds, `disconnected` when the client closed the connection."""

    then: Reply
    after: int = 1
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


def signature_of(text: str) -> str:
    """The fake model's signature of its reasoning (checked when it comes back)."""
    return "sig-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def reasoning_block(text: str) -> dict[str, Any]:
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": signature_of(text)}}}


def redacted_block(data: bytes) -> dict[str, Any]:
    return {"reasoningContent": {"redactedContent": base64.b64encode(data).decode()}}


def _ok(
    content: list[dict[str, Any]], stop_reason: str, input_tokens: int, output_tokens: int
) -> Reply:
    return Reply(
        200,
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": 1},
        },
    )


def text(
    value: str,
    *,
    stop_reason: str = "end_turn",
    tokens: tuple[int, int] = (169, 8),
    reasoning: str | None = None,
) -> Reply:
    content = [reasoning_block(reasoning)] if reasoning is not None else []
    return _ok([*content, {"text": value}], stop_reason, *tokens)


def json_text(value: Any, *, tokens: tuple[int, int] = (200, 20)) -> Reply:
    return text(orjson.dumps(value).decode(), tokens=tokens)


def tool_uses(
    *calls: tuple[str, str, dict[str, Any]],
    say: str = "",
    tokens: tuple[int, int] = (150, 30),
    reasoning: str | None = None,
) -> Reply:
    content: list[dict[str, Any]] = [reasoning_block(reasoning)] if reasoning is not None else []
    content += [{"text": say}] if say else []
    content += [{"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in calls]
    return _ok(content, "tool_use", *tokens)


def error(status: int, code: str, message: str = "refused") -> Reply:
    return Reply(
        status,
        {"message": message},
        (
            (b"x-amzn-errortype", code.encode()),
            (b"x-amzn-requestid", b"fake-request"),
            (b"x-amz-retry-after", b"0"),
        ),
    )


def raw(body: bytes, *, status: int = 200, content_type: bytes = b"application/json") -> Reply:
    """A body sent as it is (truncated JSON, an HTML page, nothing): what a broken endpoint or
    proxy answers."""
    return Reply(status, None, raw=body, content_type=content_type)


def slow(reply: Reply, seconds: float) -> Reply:
    """`reply`, taking `seconds`: sent after them, or streamed over them (a model writing slowly:
    kills and cancels land mid-stream)."""
    return replace(reply, delay_s=seconds)


def throttled() -> Reply:
    return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")


@dataclass(frozen=True)
class Captured:
    model_id: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    raw_path: str = ""  # as sent (percent-encoded)
    raw_body: bytes = b""
    cache_read: int = 0  # what the fake's prompt cache answered (cacheReadInputTokens)
    cache_write: int = 0  # cacheWriteInputTokens

    @property
    def streamed(self) -> bool:
        return self.raw_path.endswith("/converse-stream")

    @property
    def first_user_text(self) -> str:
        return first_user_text(self.body)


def first_user_text(body: Mapping[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") == "user":
            for block in message.get("content", []):
                if "text" in block:
                    return str(block["text"])
    return ""


def refused_with_thinking(body: Mapping[str, Any]) -> str | None:
    """What Bedrock (Anthropic models) refuses when the request asks for thinking, or None."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    inference = body.get("inferenceConfig") or {}
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if int(inference.get("maxTokens") or 0) <= budget:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if "temperature" in inference and inference["temperature"] != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        return "Thinking may not be enabled when tool_choice forces tool use."
    messages = body.get("messages") or []
    for message in messages:
        for block in message.get("content") or []:
            said = (block.get("reasoningContent") or {}).get("reasoningText")
            if said is not None and said.get("signature") != signature_of(said.get("text", "")):
                return "messages: Invalid `signature` in `thinking` block"
    last_assistant = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
    if last_assistant is not None:
        content = last_assistant.get("content") or []
        if any("toolUse" in b for b in content) and not (
            content and "reasoningContent" in content[0]
        ):
            return (
                "messages: Expected `thinking` or `redacted_thinking`, but found `tool_use`. "
                "When `thinking` is enabled, a final `assistant` message must start with a "
                "thinking block"
            )
    return None


def _prompt_blocks(body: Mapping[str, Any]) -> list[Any]:
    """The request's blocks in the order the model reads them: tools, system, messages."""
    return [
        *((body.get("toolConfig") or {}).get("tools") or []),
        *(body.get("system") or []),
        *(b for m in body.get("messages") or [] for b in m.get("content") or []),
    ]


def cache_prefixes(body: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(tokens, digest) of the prefix each cachePoint ends, in order."""
    seen: list[Any] = []
    ends = []
    for block in _prompt_blocks(body):
        if "cachePoint" in block:
            text = orjson.dumps(seen)
            ends.append((len(text) // 4, hashlib.sha256(text).hexdigest()))
        else:
            seen.append(block)
    return ends


def cache_point_refusal(body: Mapping[str, Any]) -> str | None:
    """What Bedrock refuses in the body's cachePoints, or None."""
    points = [block["cachePoint"] for block in _prompt_blocks(body) if "cachePoint" in block]
    for point in points:
        if not isinstance(point, dict) or point.get("type") != "default":
            return f"cachePoint type must be 'default', got {point!r}"
        if set(point) - {"type", "ttl"}:
            return f"cachePoint has unknown members {sorted(set(point) - {'type', 'ttl'})}"
        if "ttl" in point and point["ttl"] not in _CACHE_TTLS:
            return f"cachePoint ttl must be one of {', '.join(_CACHE_TTLS)}, got {point['ttl']!r}"
    if len(points) > MAX_CACHE_POINTS:
        return (
            f"A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. "
            f"Found {len(points)}."
        )
    return None


def refusal(body: Mapping[str, Any]) -> str | None:
    """What Converse answers ValidationException to in this body, or None."""
    refused = cache_point_refusal(body)
    if refused is not None:
        return refused
    tools = (body.get("toolConfig") or {}).get("tools") or []
    for tool in tools:
        name = (tool.get("toolSpec") or {}).get("name", "")
        if "toolSpec" in tool and not _NAME.match(name):
            return f"tool name {name!r} must match [a-zA-Z0-9_-]{{1,64}}"
    previous_role, open_uses = None, set()
    for i, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        if role == previous_role:
            return f"messages[{i}]: roles must alternate between user and assistant"
        previous_role = role
        for block in message.get("content") or []:
            if "toolUse" in block:
                use_id = block["toolUse"].get("toolUseId", "")
                if not _NAME.match(use_id):
                    return f"toolUseId {use_id!r} must match [a-zA-Z0-9_-]{{1,64}}"
                open_uses.add(use_id)
            if "toolResult" in block:
                result_id = block["toolResult"].get("toolUseId", "")
                if result_id not in open_uses:
                    return f"messages[{i}]: toolResult {result_id!r} answers no earlier toolUse"
            if "document" in block and not _DOCUMENT_NAME.match(block["document"].get("name", "")):
                return f"messages[{i}]: document name {block['document'].get('name')!r} is invalid"
    return None


class FakeBedrock:
    def __init__(self) -> None:
        self.scripts: dict[str, deque[Reply | Gate | StreamGate]] = {}
        self.titles: dict[str, deque[Reply | Gate]] = {}
        self.requests: list[Captured] = []
        self.title_requests: list[Captured] = []
        self.gates: list[Gate | StreamGate] = []
        self.url = ""
        self.cache: set[tuple[str, str]] = set()  # (model id, prefix digest) written so far

    def _cache(self, model_id: str, body: Mapping[str, Any]) -> tuple[int, int]:
        """(read, write) tokens for this request's cache points, caching its prefixes: the
        longest prefix found is read, the rest up to the last cacheable point written."""
        digests = [(n, d) for n, d in cache_prefixes(body) if n >= CACHE_MIN_TOKENS]
        if not digests:
            return 0, 0
        read = max((n for n, d in digests if (model_id, d) in self.cache), default=0)
        for _, digest in digests:
            self.cache.add((model_id, digest))
        return read, max(n for n, _ in digests) - read

    def on(self, first_user_message: str, *replies: Reply | Gate | StreamGate) -> None:
        self.scripts.setdefault(first_user_message, deque()).extend(replies)
        self.gates += [r for r in replies if isinstance(r, Gate | StreamGate)]

    def title(self, first_user_message: str, *replies: Reply | Gate) -> None:
        """Replies to the title requests for a conversation that starts with this message."""
        self.titles.setdefault(first_user_message, deque()).extend(replies)
        self.gates += [r for r in replies if isinstance(r, Gate)]

    def requests_for(self, first_user_message: str) -> list[Captured]:
        return [r for r in self.requests if r.first_user_text == first_user_message]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        parts = raw_path.decode().split("/")  # /model/{id}/converse
        model_id = urllib.parse.unquote(parts[2]) if len(parts) > 3 else ""
        body = orjson.loads(b"".join(chunks) or b"{}")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        titling = body.get("system") == [{"text": TITLE_PROMPT}]
        refused = refusal(body) or refused_with_thinking(body)
        read, write = (0, 0) if refused else self._cache(model_id, body)
        captured = Captured(
            model_id, body, headers, raw_path.decode(), b"".join(chunks), read, write
        )
        (self.title_requests if titling else self.requests).append(captured)
        queue = (self.titles if titling else self.scripts).get(first_user_text(body))
        reply: Reply | Gate | StreamGate
        if refused is not None:
            reply = error(400, "ValidationException", refused)
        elif not queue:
            what = "title" if titling else "reply"
            reply = error(
                400, "ValidationException", f"no scripted {what} for {first_user_text(body)!r}"
            )
        else:
            reply = queue.popleft()
        if isinstance(reply, Gate):
            reply.arrived.set()
            await reply.released.wait()
            reply = reply.then
        stream_gate = reply if isinstance(reply, StreamGate) else None
        if isinstance(reply, StreamGate):
            reply = reply.then
        if read or write:
            reply = _with_cache_usage(reply, read, write)
        if captured.streamed and reply.status < 300 and reply.raw is None:
            await _stream(reply, stream_gate, receive, send)
            return
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)  # the model's latency
        payload = orjson.dumps(reply.body) if reply.raw is None else reply.raw
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(payload)).encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _with_cache_usage(reply: Reply, read: int, write: int) -> Reply:
    """A scripted success with the prompt cache's figures in its usage."""
    if reply.status >= 300 or reply.raw is not None or "usage" not in reply.body:
        return reply
    usage = dict(reply.body["usage"])
    usage["cacheReadInputTokens"] = read
    usage["cacheWriteInputTokens"] = write
    usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"] + read + write
    return replace(reply, body={**reply.body, "usage": usage})


async def _stream(reply: Reply, gate: StreamGate | None, receive: Any, send: Any) -> None:
    """The reply as ConverseStream sends it, watching for the client closing the connection."""
    closed = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        closed.set()
        if gate is not None:
            gate.disconnected.set()

    watcher = asyncio.create_task(watch())
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/vnd.amazon.eventstream"),
                    (b"x-amzn-requestid", b"fake-request"),
                ],
            }
        )
        deltas = 0
        events = eventstream.converse_events(reply.body, reply.pieces)
        pause = reply.pace_s + reply.delay_s / len(events)  # the model writing at its pace
        for member, payload in events:
            if closed.is_set():
                return
            if pause:
                await asyncio.sleep(pause)
            if member == "messageStop" and reply.stream_exception is not None:
                frame = eventstream.exception(*reply.stream_exception)
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                break
            frame = eventstream.event(member, payload)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            if member == "contentBlockDelta":
                deltas += 1
                if gate is not None and deltas == gate.after:
                    gate.arrived.set()
                    await _first(gate.released.wait(), closed.wait())
        if not closed.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def aws_environ(url: str) -> dict[str, str]:
    """What boto3 needs to talk to the fake: its endpoint, dummy credentials, a region."""
    return {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": url,
        "AWS_ACCESS_KEY_ID": "AKIDFAKEFAKEFAKE",
        "AWS_SECRET_ACCESS_KEY": "fake-secret",
        "AWS_REGION": "us-east-1",
    }


@asynccontextmanager
async def serve_fake_bedrock() -> AsyncIterator[FakeBedrock]:
    """The fake on 127.0.0.1:<ephemeral port>, in the caller's event loop."""
    fake = FakeBedrock()
    async with serving.serve_asgi(fake) as url:
        fake.url = url
        try:
            yield fake
        finally:
            for gate in fake.gates:  # a held request would keep the server from stopping
                gate.release()
