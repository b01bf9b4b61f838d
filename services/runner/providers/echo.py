"""A built-in, deterministic echo model: the first run without AWS (`parley up --fake-model`).

It speaks Converse's shapes, so an inference job records the body Bedrock would get and a
Converse-shaped answer. The answer is a pure function of the request: the tool the first
iteration forces (arguments built from its input schema), else a summary of the tool results just
returned, else "You said: <the last user message>"; in structured mode, the smallest object the
output schema accepts; a title request (titling.TITLE_PROMPT) gets the message's first words.
With thinking on, a short reasoning block (signed) comes first. A streamed call hands the reply's
text and reasoning over in a few pieces, as a model would.
Usage is counted from text length (about four characters a token).
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

import orjson

from services.runner.providers.base import (
    DeltaSink,
    ModelReply,
    ModelRequest,
    PreparedCall,
    ReplyDelta,
)
from services.runner.providers.bedrock import converse_body, parse_reply
from services.runner.titling import TITLE_PROMPT, title_from

CHARS_PER_TOKEN = 4
STREAM_PIECES = 4  # a streamed block comes in up to this many pieces


class EchoProvider:
    name = "echo"

    def prepare(self, data_plane_id: str, request: ModelRequest) -> PreparedCall:
        body = converse_body(request)
        request_json = orjson.dumps({"modelId": request.provider_model_id, **body}, default=_wire)
        return PreparedCall(
            data_plane_id,
            request.provider_model_id,
            body,
            request_json.decode(),
            stream=request.stream,
        )

    async def converse(self, call: PreparedCall, deltas: DeltaSink | None = None) -> ModelReply:
        reply = parse_reply(answer(call.body))
        if call.stream and deltas is not None:
            for delta in stream_of(reply):
                deltas(delta)
        return reply

    async def close(self) -> None:
        return None


def stream_of(reply: ModelReply) -> list[ReplyDelta]:
    """The deltas a streaming model would send for `reply`: each text and reasoning block in up
    to STREAM_PIECES pieces cut at spaces, concatenating to the block's text."""
    deltas: list[ReplyDelta] = []
    for index, block in enumerate(reply.content):
        kind = block.WhichOneof("block")
        if kind == "text":
            deltas += [ReplyDelta(index, piece) for piece in _pieces(block.text.text)]
        elif kind == "reasoning":
            deltas += [ReplyDelta(index, p, "reasoning") for p in _pieces(block.reasoning.text)]
    return deltas


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / STREAM_PIECES))
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    pieces = [g + " " for g in groups[:-1]] + groups[-1:]
    return [p for p in pieces if p]


def _wire(value: Any) -> Any:
    """Bytes (images, documents) as Converse carries them: base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Converse response this model gives to a Converse request body."""
    messages: list[dict[str, Any]] = body.get("messages") or []
    last = messages[-1]["content"] if messages and messages[-1]["role"] == "user" else []
    results = [b["toolResult"] for b in last if "toolResult" in b]
    said = " ".join(b["text"] for b in last if "text" in b).strip()
    reply = summary(results, messages) if results else f"You said: {said or '(nothing)'}"
    forced = _forced_tool(body.get("toolConfig") or {})
    if body.get("system") == [{"text": TITLE_PROMPT}]:
        content: list[dict[str, Any]] = [{"text": title_from(said) or "Conversation"}]
        stop = "end_turn"
    elif forced is not None:
        schema = (forced.get("inputSchema") or {}).get("json") or {}
        content = [
            {
                "toolUse": {
                    "toolUseId": _tool_use_id(body),
                    "name": forced["name"],
                    "input": example(schema, said or reply, root_object=True),
                }
            }
        ]
        stop = "tool_use"
    else:
        schema = _output_schema(body)
        text = reply if schema is None else orjson.dumps(example(schema, said or reply)).decode()
        limit = int((body.get("inferenceConfig") or {}).get("maxTokens") or 0)
        stop = "end_turn"
        if limit and _tokens(text) > limit:  # as a real model would: cut off at max_tokens
            text, stop = text[: limit * CHARS_PER_TOKEN], "max_tokens"
        content = [{"text": text}]
    thinking = ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type")
    if thinking == "enabled":
        content.insert(0, _reasoning(said or reply))
    prompt = _tokens(
        orjson.dumps([body.get("system"), messages, body.get("toolConfig")], default=_wire)
    )
    completion = _tokens(orjson.dumps(content))
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {
            "inputTokens": prompt,
            "outputTokens": completion,
            "totalTokens": prompt + completion,
        },
        "metrics": {"latencyMs": 0},
    }


def _reasoning(about: str) -> dict[str, Any]:
    """A reasoning block as Converse returns one, signed (the signature is its text's digest)."""
    text = f"The message is {about!r}; an echo answers it."
    signature = hashlib.sha256(text.encode()).hexdigest()
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}


def summary(results: list[dict[str, Any]], messages: list[dict[str, Any]]) -> str:
    """One line per tool result: "<tool> returned: <text>" (or "failed:")."""
    names = {
        b["toolUse"]["toolUseId"]: b["toolUse"]["name"]
        for m in messages
        if m["role"] == "assistant"
        for b in m["content"]
        if "toolUse" in b
    }
    lines = []
    for result in results:
        name = names.get(result["toolUseId"], result["toolUseId"])
        verb = "failed" if result.get("status") == "error" else "returned"
        lines.append(f"{name} {verb}: {' '.join(_part_text(p) for p in result['content'])}")
    return "\n".join(lines)


def _part_text(part: dict[str, Any]) -> str:
    if "text" in part:
        return str(part["text"])
    if "json" in part:
        return orjson.dumps(part["json"]).decode()
    return f"[{next(iter(part), 'content')}]"


def _forced_tool(config: dict[str, Any]) -> dict[str, Any] | None:
    """The tool spec the request forces (toolChoice any: the first tool), or None."""
    specs: list[dict[str, Any]] = [
        t["toolSpec"] for t in config.get("tools") or [] if "toolSpec" in t
    ]
    choice = config.get("toolChoice") or {}
    if not specs:
        return None
    if "any" in choice:
        return specs[0]
    if "tool" in choice:
        return next((s for s in specs if s["name"] == choice["tool"]["name"]), specs[0])
    return None


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    text_format = (body.get("outputConfig") or {}).get("textFormat") or {}
    schema = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    return orjson.loads(schema) if schema else None


def _tool_use_id(body: dict[str, Any]) -> str:
    """Deterministic, and distinct for every request of a conversation (its history grows)."""
    history = orjson.dumps(body.get("messages"), default=_wire, option=orjson.OPT_SORT_KEYS)
    return "tooluse_" + hashlib.sha256(history).hexdigest()[:24]


def _tokens(data: str | bytes) -> int:
    return max(1, math.ceil(len(data) / CHARS_PER_TOKEN))


def example(schema: dict[str, Any], text: str, *, root_object: bool = False) -> Any:
    """The smallest value `schema` accepts, its strings filled with `text`: const and enum take
    their first value, unions their first branch, objects their required properties, arrays
    their minItems, numbers the value nearest 0 in range. Tool arguments are always an object."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            return example(schema[union][0], text, root_object=root_object)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if root_object or "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: example(properties.get(name) or {}, text) for name in schema.get("required") or []
        }
    if kind == "array":
        return [example(schema.get("items") or {}, text)] * int(schema.get("minItems") or 0)
    if kind == "string":
        value = text[: schema["maxLength"]] if "maxLength" in schema else text
        return value.ljust(int(schema.get("minLength") or 0), ".")
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """0 when in range, else the allowed value nearest the bound 0 is outside of."""
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum", lower=True)
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum", lower=False)

    def allowed(v: float) -> bool:
        above = low is None or v > low or (v == low and not low_open)
        below = high is None or v < high or (v == high and not high_open)
        return above and below

    candidates: list[float] = [0]
    if integer:
        if low is not None:
            candidates.append(math.floor(low) + 1 if low_open else math.ceil(low))
        if high is not None:
            candidates.append(math.ceil(high) - 1 if high_open else math.floor(high))
    else:
        middle = (low + high) / 2 if low is not None and high is not None else None
        if low is not None:
            candidates.append(low if not low_open else middle if middle is not None else low + 1)
        if high is not None:
            candidates.append(high if not high_open else middle if middle is not None else high - 1)
    value = next((c for c in candidates if allowed(c)), candidates[-1])
    return int(value) if integer else float(value)


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, *, lower: bool
) -> tuple[float | None, bool]:
    """The tighter of a schema's inclusive and exclusive bound: (value, is_exclusive)."""
    closed, opened = schema.get(inclusive), schema.get(exclusive)
    if opened is None:
        return closed, False
    if closed is None:
        return opened, True
    tighter_open = opened >= closed if lower else opened <= closed
    return (opened, True) if tighter_open else (closed, False)
