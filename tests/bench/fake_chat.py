"""A deterministic, zero-latency fake Chat Completions endpoint for the benchmark's provider
cells, in its own process (raw asyncio, like fake_converse.py, so its CPU stays small and is
measured apart). It answers POSTs to any `…/chat/completions` path (Cortex's and an
OpenAI-compatible server's), from the request alone:

- no `tools`: the text "4";
- tools offered and the last message is the user's: a call of the first tool, arguments
  `{"text": "ping"}`;
- the last message is a `tool` result: the text `done: <its content>`.

With `stream: true` the same answer comes as one SSE chunk (`choices[0].delta`), the finish
chunk, the usage chunk when `stream_options.include_usage`, then `data: [DONE]`.

    .venv/bin/python -m tests.bench.fake_chat [--port 0]

It prints `listening <port>` once ready; `GET /stats` answers `{"calls": n}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion for a request body (pure)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tools = body.get("tools") or []
    if last.get("role") == "tool":
        message: dict[str, Any] = {"role": "assistant", "content": f"done: {last['content']}"}
        finish = "stop"
    elif tools and last.get("role") == "user":
        call = {
            "id": f"call_{len(messages)}",
            "type": "function",
            "function": {"name": tools[0]["function"]["name"], "arguments": '{"text": "ping"}'},
        }
        message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "4"}, "stop"
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


def stream_body(body: dict[str, Any]) -> bytes:
    """The streamed form of `answer(body)`, as one SSE body."""
    whole = answer(body)
    message, finish = whole["choices"][0]["message"], whole["choices"][0]["finish_reason"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": 0, **c} for c in message["tool_calls"]]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {"id": whole["id"], "object": "chat.completion.chunk", "choices": [choice]}

    chunks = [chunk(delta), chunk({}, finish)]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunk({}), "choices": [], "usage": whole["usage"]})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


class Fake:
    def __init__(self) -> None:
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
                kind = b"application/json"
                if method == "GET" and path == "/stats":
                    status, payload = 200, orjson.dumps({"calls": self.calls})
                elif method == "POST" and path.endswith("/chat/completions"):
                    self.calls += 1
                    body = orjson.loads(raw or b"{}")
                    if body.get("stream"):
                        status, payload, kind = 200, stream_body(body), b"text/event-stream"
                    else:
                        status, payload = 200, orjson.dumps(answer(body))
                else:
                    status, payload = 404, b'{"error":{"message":"not found"}}'
                writer.write(
                    b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, kind, len(payload), payload)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def main(port: int) -> None:
    fake = Fake()
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
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.port))
    except ImportError:
        asyncio.run(main(args.port))
