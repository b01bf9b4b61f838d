"""A scripted Chat Completions endpoint: an ASGI app served by uvicorn on a loopback port, on both
paths Parley's providers call: Snowflake Cortex's `/api/v2/cortex/v1/chat/completions` (base_url
`fake.url`) and an OpenAI-compatible server's `/v1/chat/completions` (base_url `fake.openai_url`).

Scripts are per conversation, as in the fake Bedrock: `fake.on("What is 2 + 2?", text("4"))`
queues replies for the requests whose first user message is that text. Replies: `text(...)`,
`tool_calls((id, name, args), ...)`, `json_text({...})`, `error(status, message)`,
`throttled()`, `raw(bytes)`, `cut_stream(...)` (a stream that stops before `data: [DONE]`), or a
`Gate` holding the call until released. A request with `stream: true` gets the reply as SSE
chunks (`choices[0].delta`, the usage chunk when `stream_options.include_usage`, then
`data: [DONE]`). Title requests (system prompt `titling.TITLE_PROMPT`) are kept apart and
answered from `fake.title(...)`, else refused.

It refuses what the real services refuse: a Cortex call without `Authorization: Bearer <PAT>` or
without `X-Snowflake-Authorization-Token-Type`, an OpenAI call without the API key when the fake
has one (401); a field the API does not know, a malformed message, a `tool` message that answers
no `tool_calls` of the assistant message before it, an assistant's `tool_calls` left without
answers, a bad tool name or `tool_choice` (400, OpenAI's error shape).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes import serving

from services.runner.titling import TITLE_PROMPT

CORTEX_PATH = "/api/v2/cortex/v1/chat/completions"
OPENAI_PATH = "/v1/chat/completions"
TOKEN_TYPE = "PROGRAMMATIC_ACCESS_TOKEN"
PAT = "fake-snowflake-pat"
_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "n",
        "seed",
        "user",
        "parallel_tool_calls",
    }
)
_MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # a chat.completion object, or an error body
    headers: tuple[tuple[bytes, bytes], ...] = ()
    raw: bytes | None = None  # sent as it is
    cut: bool = False  # streamed: stop before the last chunks and [DONE]


@dataclass
class Gate:
    """Holds the call until `release()`; `arrived` is set when the request came in."""

    then: Reply
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


def _completion(
    message: dict[str, Any], finish_reason: str, tokens: tuple[int, int], cached: int
) -> Reply:
    prompt, completion = tokens
    return Reply(
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        },
    )


def text(
    value: str,
    *,
    finish_reason: str = "stop",
    tokens: tuple[int, int] = (169, 8),
    cached: int = 0,
) -> Reply:
    return _completion({"role": "assistant", "content": value}, finish_reason, tokens, cached)


def json_text(value: Any, *, tokens: tuple[int, int] = (200, 20)) -> Reply:
    return text(orjson.dumps(value).decode(), tokens=tokens)


def tool_calls(
    *calls: tuple[str, str, dict[str, Any]], say: str = "", tokens: tuple[int, int] = (150, 30)
) -> Reply:
    message = {
        "role": "assistant",
        "content": say or None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
            for call_id, name, args in calls
        ],
    }
    return _completion(message, "tool_calls", tokens, 0)


def error(
    status: int,
    message: str = "refused",
    *,
    kind: str = "invalid_request_error",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "code": None}}, headers)


def throttled(retry_after: str = "0") -> Reply:
    return error(
        429,
        "Rate limit reached, please try again later",
        kind="rate_limit_exceeded",
        headers=((b"retry-after", retry_after.encode()),),
    )


def raw(body: bytes, *, status: int = 200) -> Reply:
    return Reply(status, None, raw=body)


def cut_stream(value: str) -> Reply:
    """Streamed: the text's first chunks, then the connection ends without `data: [DONE]`."""
    return Reply(text(value).status, text(value).body, cut=True)


@dataclass(frozen=True)
class Captured:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased names

    @property
    def first_user_text(self) -> str:
        return first_user_text(self.body)

    @property
    def cortex(self) -> bool:
        return self.path == CORTEX_PATH


def first_user_text(body: Mapping[str, Any]) -> str:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            for part in content or []:
                if isinstance(part, dict) and part.get("type") == "text":
                    return str(part.get("text"))
    return ""


def refusal(body: Any) -> str | None:
    """What the Chat Completions API answers 400 to in this body, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for key in body:
        if key not in _FIELDS:
            return f"Unrecognized request argument supplied: {key}"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "'tools' must be a non-empty array"
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not function:
                return f"tools[{i}] must be a function tool"
            if not _NAME.match(str(function.get("name", ""))):
                return f"tools[{i}].function.name must match ^[a-zA-Z0-9_-]{{1,64}}$"
            if not isinstance(function.get("parameters", {}), dict):
                return f"tools[{i}].function.parameters must be an object"
            names.add(function["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if tools is None:
            return "'tool_choice' is only allowed when 'tools' are specified"
        if isinstance(choice, dict):
            named = (choice.get("function") or {}).get("name")
            if choice.get("type") != "function" or named not in names:
                return f"tool_choice names no tool of the request: {choice!r}"
        elif choice not in ("auto", "none", "required"):
            return f"tool_choice must be auto, none, required or a function, got {choice!r}"
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        schema = (response_format or {}).get("json_schema") if kind == "json_schema" else None
        if kind not in ("text", "json_object", "json_schema") or (
            kind == "json_schema"
            and not (isinstance(schema, dict) and schema.get("name") and "schema" in schema)
        ):
            return f"response_format is invalid: {response_format!r}"
    return _messages_refusal(messages)


def _messages_refusal(messages: list[Any]) -> str | None:
    waiting: set[str] = set()  # tool_call_ids of the last assistant message not answered yet
    answering = False  # the messages since that assistant message are all tool messages
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _MESSAGE_FIELDS:
            return f"{where}: role must be system, user, assistant or tool"
        extra = set(message) - _MESSAGE_FIELDS[role]
        if extra:
            return f"{where}: unknown field {sorted(extra)[0]!r}"
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not answering or call_id not in waiting:
                return (
                    f"{where}: messages with role 'tool' must be a response to a preceding "
                    f"message with 'tool_calls' (tool_call_id {call_id!r})"
                )
            waiting.discard(call_id)
            if not isinstance(message.get("content"), str):
                return f"{where}: a tool message's content must be a string"
            continue
        if waiting:
            return (
                f"{where}: an assistant message with 'tool_calls' must be followed by tool "
                f"messages responding to each 'tool_call_id'; not answered: {sorted(waiting)}"
            )
        answering = False
        content = message.get("content")
        if role == "system" and (i != 0 or not isinstance(content, str)):
            return f"{where}: a system message comes first and its content is a string"
        if role == "user":
            problem = _user_content_refusal(content, where)
            if problem:
                return problem
        if role == "assistant":
            calls = message.get("tool_calls")
            if content is not None and not isinstance(content, str):
                return f"{where}: an assistant message's content is a string or null"
            if not calls and not content:
                return f"{where}: an assistant message needs content or tool_calls"
            for call in calls or []:
                function = call.get("function") if isinstance(call, dict) else None
                if (
                    not isinstance(function, dict)
                    or call.get("type") != "function"
                    or not call.get("id")
                    or not isinstance(function.get("arguments"), str)
                ):
                    return f"{where}: malformed tool call {call!r}"
                try:
                    orjson.loads(function["arguments"])
                except orjson.JSONDecodeError:
                    return f"{where}: tool call arguments must be a JSON string"
                waiting.add(call["id"])
            answering = bool(calls)
    if waiting:
        return f"tool_calls without responses: {sorted(waiting)}"
    return None


def _user_content_refusal(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None if content else f"{where}: content must be non-empty"
    if not isinstance(content, list) or not content:
        return f"{where}: content must be a string or a non-empty array of parts"
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if re.match(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$", url):
                continue
            return f"{where}.content[{j}]: image_url must be a data: URL of an image"
        return f"{where}.content[{j}]: unsupported content part {kind!r}"
    return None


def stream_chunks(reply: Reply, include_usage: bool) -> list[dict[str, Any]]:
    """The reply as the stream of chat.completion.chunk objects the API sends."""
    body = reply.body
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": body["id"],
            "object": "chat.completion.chunk",
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    text_value = message.get("content") or ""
    third = max(1, len(text_value) // 3)
    out += [chunk({"content": text_value[i : i + third]}) for i in range(0, len(text_value), third)]
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in (arguments[:half], arguments[half:]):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append({**chunk({}), "choices": [], "usage": body["usage"]})
    return out


class FakeChatCompletions:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key  # the OpenAI path's key (None: it takes calls without one)
        self.scripts: dict[str, deque[Reply | Gate]] = {}
        self.titles: dict[str, deque[Reply | Gate]] = {}
        self.requests: list[Captured] = []
        self.title_requests: list[Captured] = []
        self.gates: list[Gate] = []
        self.url = ""  # Cortex's base_url

    @property
    def openai_url(self) -> str:
        """An OpenAI-compatible cluster's base_url."""
        return f"{self.url}/v1"

    def on(self, first_user_message: str, *replies: Reply | Gate) -> None:
        self.scripts.setdefault(first_user_message, deque()).extend(replies)
        self.gates += [r for r in replies if isinstance(r, Gate)]

    def title(self, first_user_message: str, *replies: Reply | Gate) -> None:
        self.titles.setdefault(first_user_message, deque()).extend(replies)
        self.gates += [r for r in replies if isinstance(r, Gate)]

    def requests_for(self, first_user_message: str) -> list[Captured]:
        return [r for r in self.requests if r.first_user_text == first_user_message]

    def _unauthorized(self, path: str, headers: dict[str, str]) -> Reply | None:
        authorization = headers.get("authorization", "")
        if path == CORTEX_PATH:
            if authorization != f"Bearer {PAT}":
                return Reply(401, {"code": "390303", "message": "Invalid OAuth access token."})
            if headers.get("x-snowflake-authorization-token-type") != TOKEN_TYPE:
                return Reply(
                    401,
                    {
                        "code": "390101",
                        "message": "X-Snowflake-Authorization-Token-Type header is missing",
                    },
                )
        elif self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided", kind="invalid_api_key")
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if path not in (CORTEX_PATH, OPENAI_PATH) or scope["method"] != "POST":
            await _send(send, error(404, f"no route {scope['method']} {path}"))
            return
        try:
            body = orjson.loads(b"".join(chunks) or b"null")
        except orjson.JSONDecodeError:
            await _send(send, error(400, "the body is not valid JSON"))
            return
        captured = Captured(path, body if isinstance(body, dict) else {}, headers)
        messages = captured.body.get("messages") or [{}]
        titling = isinstance(messages[0], dict) and messages[0].get("content") == TITLE_PROMPT
        (self.title_requests if titling else self.requests).append(captured)
        reply: Reply | Gate
        denied = self._unauthorized(path, headers)
        refused = refusal(body)
        queue = (self.titles if titling else self.scripts).get(captured.first_user_text)
        if denied is not None:
            reply = denied
        elif refused is not None:
            reply = error(400, refused)
        elif not queue:
            what = "title" if titling else "reply"
            reply = error(400, f"no scripted {what} for {captured.first_user_text!r}")
        else:
            reply = queue.popleft()
        if isinstance(reply, Gate):
            reply.arrived.set()
            await reply.released.wait()
            reply = reply.then
        if captured.body.get("stream") and reply.status == 200 and reply.raw is None:
            usage = bool((captured.body.get("stream_options") or {}).get("include_usage"))
            await _stream(send, stream_chunks(reply, usage), reply.cut)
        else:
            await _send(send, reply)


async def _send(send: Any, reply: Reply) -> None:
    payload = orjson.dumps(reply.body) if reply.raw is None else reply.raw
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *reply.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _stream(send: Any, chunks: list[dict[str, Any]], cut: bool) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    if cut:
        chunks = chunks[:2]
    for chunk in chunks:
        event = b"data: " + orjson.dumps(chunk) + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"" if cut else b"data: [DONE]\n\n"})


@asynccontextmanager
async def serve_fake_chat(api_key: str | None = None) -> AsyncIterator[FakeChatCompletions]:
    """The fake on 127.0.0.1:<ephemeral port>, in the caller's event loop."""
    fake = FakeChatCompletions(api_key)
    async with serving.serve_asgi(fake) as url:
        fake.url = url
        try:
            yield fake
        finally:
            for gate in fake.gates:  # a held request would keep the server from stopping
                gate.release()
