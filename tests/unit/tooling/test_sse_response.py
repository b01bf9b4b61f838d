"""mcp_wire.sse_response: the JSON-RPC response in an SSE stream, however it is chunked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.tooling.failures import McpFailure
from services.tooling.mcp_wire import MAX_SSE_EVENT_BYTES, sse_response

STREAM = (
    b": keep-alive\r\n\r\n"
    b"event: message\r\n"
    b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\r\n\r\n'
    b"id: 7\r\nretry: 100\r\n\r\n"
    b"event: message\r\n"
    b'data: {"jsonrpc":"2.0","id":3,\n'
    b'data: "result":{"content":[{"type":"text","text":"a: b"}]}}\n\n'
    b'data: {"jsonrpc":"2.0","id":4,"result":{}}\n\n'
)


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
async def test_the_first_response_after_comments_and_notifications(size: int) -> None:
    """Multi-line data joins with a newline; CRLF and LF both end lines; any chunking."""
    message = await sse_response(chunked(STREAM, size))
    assert message == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"content": [{"type": "text", "text": "a: b"}]},
    }


async def test_an_error_response_counts_as_the_response() -> None:
    stream = b'data:{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}\n\n'
    assert (await sse_response(chunked(stream, 5)))["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("stream", "expect"),
    [
        (b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n', "without a response"),
        (b'data: {"jsonrpc":"2.0","id":1,"result":{}}', "without a response"),  # no blank line
        (b"data: {not json\n\n", "not JSON"),
        (b"data: " + b"x" * MAX_SSE_EVENT_BYTES + b"\n\n", "over 1 MiB"),
    ],
)
async def test_a_stream_without_a_usable_response_fails(stream: bytes, expect: str) -> None:
    with pytest.raises(McpFailure) as failure:
        await sse_response(chunked(stream, 4096))
    assert failure.value.cause == "protocol" and expect in failure.value.message
