"""The OpenAI Chat Completions shapes, both ways, for every provider that speaks them (Snowflake
Cortex, vLLM, Ollama, llama.cpp's server, OpenAI): Parley's turns to `messages` (system, user
content parts, assistant `tool_calls`, tool results as `tool` messages), tools, `tool_choice`,
structured output as `response_format` json_schema; an answer (whole, or its streamed chunks) to a
reply with Converse's stop reasons and usage without cached tokens. Pure: no I/O."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from agents.v1 import message_pb2
from google.protobuf import json_format, struct_pb2

from services.common.contract import TEXT_DOCUMENT_TYPES
from services.common.incidents import MODEL_INVOCATION_FAILED
from services.runner.providers.base import (
    OUTPUT_SCHEMA_NAME,
    ModelReply,
    ModelRequest,
    ProviderError,
    ReplyDelta,
    TokenUsage,
)

# finish_reason -> Converse's stopReason, the words the loop reads.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filtered",
}
ERROR_PREFIX = "Error: "  # a tool result with is_error (chat completions has no such flag)


# --- request -----------------------------------------------------------------------------------


def request_body(request: ModelRequest, *, max_tokens_field: str, stream: bool) -> dict[str, Any]:
    """The body of POST …/chat/completions. `max_tokens_field` is the endpoint's name for the
    reply's cap (`max_tokens`, or `max_completion_tokens` where that one is deprecated)."""
    body: dict[str, Any] = {
        "model": request.provider_model_id,
        "messages": messages(request.system_prompt, request.messages),
        max_tokens_field: request.max_tokens,
        "temperature": request.temperature,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or t.name,
                    "parameters": t.input_schema or {"type": "object", "properties": {}},
                },
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice is not None:
            if choice.kind == "tool":
                body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            else:
                body["tool_choice"] = "required" if choice.kind == "any" else "auto"
    if request.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": OUTPUT_SCHEMA_NAME, "schema": request.output_schema},
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def messages(system_prompt: str, turns: tuple[message_pb2.Message, ...]) -> list[dict[str, Any]]:
    """Chat messages, one per turn, but a tool turn's results, which are one `tool` message
    each (they follow the assistant message whose `tool_calls` they answer)."""
    out: list[dict[str, Any]] = []
    if system_prompt:
        out.append({"role": "system", "content": system_prompt})
    for turn in turns:
        if turn.role == message_pb2.ROLE_ASSISTANT:
            assistant = _assistant(turn)
            if assistant is not None:
                out.append(assistant)
            continue
        results = [b.tool_result for b in turn.content_blocks if b.HasField("tool_result")]
        out += [
            {"role": "tool", "tool_call_id": r.tool_use_id, "content": _result_text(r)}
            for r in results
        ]
        parts = [
            p for p in (_part(b) for b in turn.content_blocks if not b.HasField("tool_result")) if p
        ]
        if parts:
            out.append({"role": "user", "content": _content(parts)})
    return out


def _assistant(turn: message_pb2.Message) -> dict[str, Any] | None:
    text = "".join(b.text.text for b in turn.content_blocks if b.HasField("text"))
    calls = [
        {
            "id": b.tool_use.tool_use_id,
            "type": "function",
            "function": {
                "name": b.tool_use.name,
                "arguments": orjson.dumps(json_format.MessageToDict(b.tool_use.arguments)).decode(),
            },
        }
        for b in turn.content_blocks
        if b.HasField("tool_use")
    ]
    if not text and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text alone as one string (what every server takes); with an image, the parts."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _part(block: message_pb2.ContentBlock) -> dict[str, Any] | None:
    """A user content part; what chat completions cannot carry becomes a short text note."""
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"type": "text", "text": block.text.text} if block.text.text else None
    if kind == "image":
        media_type = block.image.media_type or block.image.mime_type
        url = f"data:{media_type};base64,{block.image.data}"
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document":
        return {"type": "text", "text": document_text(block.document)}
    text = _note(block)
    return {"type": "text", "text": text} if text else None


def document_text(document: message_pb2.DocumentBlock) -> str:
    """A document as text: text documents in full, others (binary) as a note saying so."""
    if document.media_type in TEXT_DOCUMENT_TYPES:
        body = base64.b64decode(document.data).decode("utf-8", errors="replace")
        head = f'<document name="{document.name}" media_type="{document.media_type}">'
        return f"{head}\n{body}\n</document>"
    return (
        f"[document {document.name} ({document.media_type}) not shown: this model's provider "
        "does not read it]"
    )


def _result_text(result: message_pb2.ToolResultBlock) -> str:
    parts = [t for t in (_result_part(b) for b in result.content) if t]
    text = "\n".join(parts) or "(empty result)"
    return ERROR_PREFIX + text if result.is_error else text


def _result_part(block: message_pb2.ContentBlock) -> str:
    kind = block.WhichOneof("block")
    if kind == "text":
        return block.text.text
    if kind == "json":
        return orjson.dumps(json_format.MessageToDict(block.json.value)).decode()
    if kind == "document":
        return document_text(block.document)
    return _note(block)


def _note(block: message_pb2.ContentBlock) -> str:
    kind = block.WhichOneof("block")
    if kind == "image":
        return f"[image of type {block.image.mime_type or block.image.media_type} omitted]"
    if kind == "audio":
        return f"[audio of type {block.audio.mime_type} omitted]"
    if kind == "resource":
        r = block.resource
        return (
            f"[resource {r.uri}]\n{r.text}"
            if r.HasField("text")
            else f"[binary resource {r.uri} omitted]"
        )
    if kind == "resource_link":
        link = block.resource_link
        about = f": {link.description}" if link.HasField("description") else ""
        return f"[resource link {link.name} {link.uri}{about}]"
    if kind == "json":
        return orjson.dumps(json_format.MessageToDict(block.json.value)).decode()
    return ""


# --- answer ------------------------------------------------------------------------------------


def parse_reply(response: Any, raw: str) -> ModelReply:
    """A whole answer (`choices[0].message`); ModelInvocationFailed when it is none."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderError(
            MODEL_INVOCATION_FAILED, "unreadable chat completions answer: no choices[0]"
        )
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ProviderError(
            MODEL_INVOCATION_FAILED, "unreadable chat completions answer: no choices[0].message"
        )
    text = _text_of(message.get("content"))
    calls = [
        (str(c.get("id") or ""), str((c.get("function") or {}).get("name") or ""),
         (c.get("function") or {}).get("arguments"))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]  # fmt: skip
    return _reply(text, calls, choice.get("finish_reason"), response.get("usage"), raw)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some servers answer
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _reply(
    text: str,
    calls: list[tuple[str, str, Any]],
    finish_reason: Any,
    usage: Any,
    raw: str,
) -> ModelReply:
    content: list[message_pb2.ContentBlock] = []
    if text:
        content.append(message_pb2.ContentBlock(text=message_pb2.TextBlock(text=text)))
    for index, (call_id, name, arguments) in enumerate(calls):
        if not name:
            raise ProviderError(
                MODEL_INVOCATION_FAILED, f"the model's tool call {index} names no function"
            )
        content.append(
            message_pb2.ContentBlock(
                tool_use=message_pb2.ToolUseBlock(
                    tool_use_id=call_id or f"call_{index}",
                    name=name,
                    arguments=_arguments(name, arguments),
                )
            )
        )
    reason = str(finish_reason or "")
    return ModelReply(tuple(content), STOP_REASONS.get(reason, reason), token_usage(usage), raw)


def _arguments(name: str, arguments: Any) -> struct_pb2.Struct:
    """A tool call's `arguments` (a JSON string, as the API sends them) as an object."""
    if arguments is None or arguments == "":
        value: Any = {}
    elif isinstance(arguments, dict):
        value = arguments
    else:
        try:
            value = orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            raise ProviderError(
                MODEL_INVOCATION_FAILED,
                f"the model called {name} with arguments that are not JSON: {str(arguments)[:200]}",
            ) from None
    struct = struct_pb2.Struct()
    struct.update(value if isinstance(value, dict) else {"value": value})
    return struct


def token_usage(usage: Any) -> TokenUsage:
    """`usage` with cached prompt tokens (`prompt_tokens_details.cached_tokens`) taken out of
    `prompt_tokens` into cache reads, as Bedrock counts them."""
    if not isinstance(usage, dict):
        return TokenUsage()
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _int(usage.get("prompt_tokens"))
    return TokenUsage(max(0, prompt - cached), _int(usage.get("completion_tokens")), cached, 0)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class _StreamedCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamedReply:
    """A streamed answer's chunks (`stream: true`: `choices[0].delta`), gathered into the reply
    the whole answer would have been; `feed` returns the text deltas a chunk carried."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _StreamedCall] = field(default_factory=dict)
    finish_reason: Any = None
    usage: Any = None
    id: str = ""
    model: str = ""

    def feed(self, chunk: Any) -> list[ReplyDelta]:
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            message = str(chunk["error"].get("message") or chunk["error"])[:500]
            raise ProviderError(MODEL_INVOCATION_FAILED, f"the stream failed: {message}")
        self.id = self.id or str(chunk.get("id") or "")
        self.model = self.model or str(chunk.get("model") or "")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        deltas: list[ReplyDelta] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            piece = _text_of(delta.get("content"))
            if piece:
                self.text.append(piece)
                deltas.append(ReplyDelta(0, piece))
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                gathered = self.calls.setdefault(int(call.get("index", 0)), _StreamedCall())
                gathered.id = gathered.id or str(call.get("id") or "")
                function = call.get("function") or {}
                gathered.name = gathered.name or str(function.get("name") or "")
                if function.get("arguments"):
                    gathered.arguments.append(str(function["arguments"]))
        return deltas

    def answer(self) -> dict[str, Any]:
        """The answer as the whole (non-streamed) response would have shown it."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": "".join(c.arguments)},
                }
                for _, c in sorted(self.calls.items())
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }

    def reply(self) -> ModelReply:
        answer = self.answer()
        return parse_reply(answer, orjson.dumps(answer).decode())
