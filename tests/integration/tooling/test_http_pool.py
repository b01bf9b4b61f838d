"""The MCP sessions' HTTP pool (httpx2's interface over aiohttp) against raw servers on loopback:
what is sent, what comes back, and each failure as the httpx2 error httpx2's own pool raises."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
import pytest
import pytest_asyncio

from services.common import url_policy
from services.tooling.http_pool import AddressRefused, AiohttpPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    pool = AiohttpPool(max_connections=8, policy=lambda address: None)
    async with httpx2.AsyncClient(transport=pool) as http:
        yield http


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [line[15:] for line in head.lower().split(b"\r\n") if line[:15] == b"content-length:"]
    return head, await reader.readexactly(int(lengths[0]) if lengths else 0)


async def test_a_request_goes_out_as_built_and_the_answer_streams_back_decoded(
    client: httpx2.AsyncClient,
) -> None:
    seen: list[tuple[bytes, bytes, int]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[1]
        while not reader.at_eof():
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append((head, body, peer))
            payload = gzip.compress(b'{"jsonrpc":"2.0","id":1,"result":{}}')
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
            )
            await writer.drain()
        writer.close()

    server, url = await serve(handler)
    async with server:
        for _ in range(2):
            response = await client.post(
                f"{url}/mcp?x=a%3Ab",
                content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                headers={"Authorization": "Bearer t0k", "Content-Type": "application/json"},
            )
            assert response.status_code == 200 and response.reason_phrase == "OK"
            assert response.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    head, body, _ = seen[0]
    assert head.startswith(b"POST /mcp?x=a%3Ab HTTP/1.1\r\n")  # kept as httpx2 quoted it
    assert b"authorization: bearer t0k" in head.lower()
    assert body == b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    assert seen[0][2] == seen[1][2]  # the second request reused the connection


async def test_a_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(httpx2.ConnectError):
        await client.post(f"http://127.0.0.1:{port}/mcp", content=b"{}")


async def test_a_server_that_hangs_up_is_a_protocol_error(client: httpx2.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    server, url = await serve(handler)
    async with server:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"{url}/mcp", content=b"{}")


async def test_a_body_cut_short_is_a_protocol_error(client: httpx2.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()
        writer.close()

    server, url = await serve(handler)
    async with server:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"{url}/mcp", content=b"{}")


async def test_a_server_that_does_not_answer_is_a_read_timeout(
    client: httpx2.AsyncClient,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server, url = await serve(handler)
    async with server:
        with pytest.raises(httpx2.ReadTimeout):
            await client.post(f"{url}/mcp", content=b"{}", timeout=httpx2.Timeout(5, read=0.2))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "0x7f.1"])
async def test_every_address_connected_to_is_checked_when_connecting(host: str) -> None:
    """No check ran before: the pool itself refuses the address it is about to connect to,
    whether a name resolved to it (as after DNS rebinding) or the URL spelled it."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server, url = await serve(handler)
    port = url.rsplit(":", 1)[1]
    pool = AiohttpPool(
        max_connections=4,
        policy=lambda address: url_policy.address_refusal(address, allow_private_networks=False),
    )
    async with server, httpx2.AsyncClient(transport=pool) as http:
        with pytest.raises(AddressRefused) as refused:
            await http.get(f"http://{host}:{port}/mcp")
        assert "refused by the URL policy" in str(refused.value)
        assert "loopback, private or reserved" in str(refused.value)
    assert accepted == []
