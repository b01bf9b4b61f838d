"""A deterministic, zero-latency fake Bedrock Converse endpoint for the benchmark, in its own
process, written on raw asyncio (HTTP/1.1 keep-alive, Content-Length bodies) so that its own CPU
stays small (~0.1 ms per call) and is measured apart from Parley's.

    .venv/bin/python -m tests.bench.fake_converse [--port 0] [--delay 0.0]

It prints `listening <port>` once ready. Answers, from the request alone (no script):

- no `toolConfig` (no tools offered): the text "4";
- tools offered and the last message is the user's text: a `toolUse` of the first tool offered,
  with input `{"text": "ping"}` (for an MCP tool `bench-echo` or a caller tool alike);
- the last message carries a `toolResult`: the text `done: <first text of the result>`;
- the user's text is `Write N tokens` (or `Write N tokens at R per second`): N tokens of text.

`POST …/converse-stream` answers the same as ConverseStream's event stream: each text in one
delta, except a `Write N tokens` answer, in N one-token deltas (paced at R a second if asked).
`--delay` seconds are awaited before every answer (the in-flight cell's slow model).
`GET /stats` answers `{"calls": n}` (how many Converse calls it answered).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402

from tests.fakes import eventstream  # noqa: E402

TOOL_INPUT = {"text": "ping"}
TOKEN = "tok "  # one token of a long answer
_LONG = re.compile(r"Write (\d+) tokens(?: at (\d+) per second)?")


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Converse response body for a request body (pure: the smoke test checks it too)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tools = (body.get("toolConfig") or {}).get("tools") or []
    results = [b["toolResult"] for b in last.get("content", []) if "toolResult" in b]
    if results:
        first = next((c["text"] for c in results[0].get("content", []) if "text" in c), "")
        return _reply([{"text": f"done: {first}"}], "end_turn")
    long = _long(body)
    if long is not None:
        return _reply([{"text": TOKEN * long[0]}], "end_turn")
    if tools and last.get("role") == "user":
        name = tools[0]["toolSpec"]["name"]
        use = {"toolUseId": f"tu_{len(messages)}", "name": name, "input": TOOL_INPUT}
        return _reply([{"toolUse": use}], "tool_use")
    return _reply([{"text": "4"}], "end_turn")


def _long(body: dict[str, Any]) -> tuple[int, int] | None:
    """(tokens, tokens per second or 0) of a `Write N tokens` request."""
    messages = body.get("messages") or []
    said = " ".join(
        b.get("text", "") for b in (messages[-1] if messages else {}).get("content", [])
    )
    m = _LONG.fullmatch(said.strip().rstrip("."))
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def stream_frames(body: dict[str, Any], response: dict[str, Any]) -> list[bytes]:
    """The event-stream frames of `response`: each text in one delta, a long answer one token a
    delta."""
    long = _long(body)
    pieces = long[0] if long else 1
    return [
        eventstream.event(member, payload)
        for member, payload in eventstream.converse_events(response, text_pieces=pieces)
    ]


def _reply(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12},
        "metrics": {"latencyMs": 0},
    }


class Fake:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "content-length":
                        length = int(value)
                raw = await reader.readexactly(length) if length else b""
                if method == "GET" and path == "/stats":
                    status, payload = 200, orjson.dumps({"calls": self.calls})
                elif method == "POST" and path.endswith("/converse"):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.calls += 1
                    status, payload = 200, orjson.dumps(answer(orjson.loads(raw or b"{}")))
                elif method == "POST" and path.endswith("/converse-stream"):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.calls += 1
                    await self.stream(writer, orjson.loads(raw or b"{}"))
                    continue
                else:
                    status, payload = 404, b'{"message":"not found"}'
                writer.write(
                    b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\n"
                    b"x-amzn-requestid: bench\r\ncontent-length: %d\r\n\r\n%s"
                    % (status, len(payload), payload)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def stream(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        frames = stream_frames(body, answer(body))
        pace = (_long(body) or (0, 0))[1]
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n"
        if not pace:  # all at once, as a fast model's answer arrives
            payload = b"".join(frames)
            writer.write(head + b"content-length: %d\r\n\r\n%s" % (len(payload), payload))
            return
        writer.write(head + b"transfer-encoding: chunked\r\n\r\n")
        for frame in frames:
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
            await asyncio.sleep(1 / pace)
        writer.write(b"0\r\n\r\n")


async def main(port: int, delay: float) -> None:
    fake = Fake(delay)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await asyncio.start_server(fake.handle, sock=sock, backlog=4096)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.port, args.delay))
    except ImportError:
        asyncio.run(main(args.port, args.delay))
