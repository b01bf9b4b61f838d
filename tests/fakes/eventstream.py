"""The AWS event-stream framing ConverseStream answers in (`application/vnd.amazon.eventstream`),
for the fakes: `event(member, payload)` and `exception(member, message)` frames, and
`converse_events(response)`, the events Bedrock streams for a Converse answer."""

from __future__ import annotations

import binascii
import struct
from typing import Any

import orjson


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message: prelude (lengths, CRC), string headers, payload, message CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def event(member: str, payload: dict[str, Any]) -> bytes:
    """An event of ConverseStreamOutput: messageStart, contentBlockDelta, metadata…"""
    headers = {":event-type": member, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(payload))


def exception(member: str, message: str) -> bytes:
    """An exception inside the stream, e.g. throttlingException, modelStreamErrorException."""
    headers = {
        ":exception-type": member,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, orjson.dumps({"message": message}))


def pieces(text: str, count: int) -> list[str]:
    """`text` cut into up to `count` pieces that concatenate to it."""
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def converse_events(response: dict[str, Any], text_pieces: int = 3) -> list[tuple[str, Any]]:
    """(member, payload) of the events Bedrock streams for a Converse `response`: messageStart,
    each block's start (tool calls), deltas and stop, messageStop, metadata."""
    events: list[tuple[str, Any]] = [("messageStart", {"role": "assistant"})]
    content = response["output"]["message"]["content"]
    for index, block in enumerate(content):
        if "text" in block:
            for piece in pieces(block["text"], text_pieces):
                events.append(("contentBlockDelta", _delta(index, {"text": piece})))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            if "redactedContent" in reasoning:
                delta = {"reasoningContent": {"redactedContent": reasoning["redactedContent"]}}
                events.append(("contentBlockDelta", _delta(index, delta)))
            else:
                said = reasoning["reasoningText"]
                for piece in pieces(said["text"], text_pieces):
                    delta = {"reasoningContent": {"text": piece}}
                    events.append(("contentBlockDelta", _delta(index, delta)))
                signature = {"reasoningContent": {"signature": said["signature"]}}
                events.append(("contentBlockDelta", _delta(index, signature)))
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            for piece in pieces(orjson.dumps(use["input"]).decode(), 2):
                events.append(("contentBlockDelta", _delta(index, {"toolUse": {"input": piece}})))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": response["stopReason"]}))
    events.append(("metadata", {"usage": response["usage"], "metrics": response["metrics"]}))
    return events


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"contentBlockIndex": index, "delta": delta}
