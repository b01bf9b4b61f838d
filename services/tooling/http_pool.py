"""The HTTP pool under every MCP session: httpx2's transport interface (what the `mcp` SDK
speaks) over one aiohttp connection pool, which `mcp_wire` also sends on directly. A discovery +
call through the SDK costs ~30-45 % less CPU this way than over httpx2's own pool
(`tests/bench/mcp_call.py`).

aiohttp's failures come out as the httpx2 errors httpx2's own pool raises for the same failure
(a refused connection is a ConnectError, a server that hangs up is a RemoteProtocolError, a slow
one a ReadTimeout), so the SDK and `mcp_connect` cannot tell the two pools apart.

Every address the pool is about to connect to, resolved or literal, first passes the URL
policy (aiohttp's `socket_factory` hook): what was checked is what is connected to, so a name
that resolves elsewhere after an earlier check (DNS rebinding) is refused (`AddressRefused`).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import aiohttp
import httpx2
import yarl
from aiohttp import AddrInfoType

from services.common import url_policy

# Why an address may not be connected to, or None: url_policy.address_refusal with the
# installation's setting bound.
AddressPolicy = Callable[[url_policy.IPAddress], str | None]


class AddressRefused(httpx2.ConnectError):
    """The URL policy refused the address a connection was about to be made to."""


class _Refused(OSError):
    """Raised inside aiohttp's connect (which collects OSErrors); turned into AddressRefused."""

    MARK = "refused by the URL policy"

    def __init__(self, why: str) -> None:
        super().__init__(errno.EACCES, f"{self.MARK}: {why}")


@contextmanager
def _as_httpx(request: httpx2.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        refused = refusal_in(exc)
        if refused is not None:
            raise AddressRefused(refused, request=request) from None
        raise httpx2.ConnectError(str(exc), request=request) from exc
    except aiohttp.ConnectionTimeoutError as exc:  # before ServerTimeoutError: it is one
        raise httpx2.ConnectTimeout(str(exc), request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx2.ReadTimeout(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:  # e.g. a connection reset while reading
        raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from exc


def refusal_in(exc: aiohttp.ClientConnectorError) -> str | None:
    """The policy's reason when every address of the connection was refused by it (aiohappyeyeballs
    raises the one error, or an OSError whose message joins them all)."""
    os_error = exc.os_error
    if isinstance(os_error, _Refused):
        return os_error.strerror
    if _Refused.MARK in str(os_error):
        return str(os_error)
    return None


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, else closed


class AiohttpPool(httpx2.AsyncBaseTransport):
    """One aiohttp session (built on first use, inside the event loop) shared by every client."""

    def __init__(
        self, max_connections: int, policy: AddressPolicy, keepalive_s: float = 5.0
    ) -> None:
        self._max_connections = max_connections
        self._policy = policy
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _socket(self, addr_info: AddrInfoType) -> socket.socket:
        """A socket for one address aiohttp is about to connect to, if the policy allows it."""
        family, type_, proto, _, sockaddr = addr_info
        address = url_policy.parse_address(str(sockaddr[0]))
        why = "not an IP address" if address is None else self._policy(address)
        if why is not None:
            raise _Refused(why)
        return socket.socket(family=family, type=type_, proto=proto)

    def http(self) -> aiohttp.ClientSession:
        """The aiohttp session itself, for requests written directly on it (`mcp_wire`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=self._keepalive_s,
                    socket_factory=self._socket,
                ),
                auto_decompress=False,  # httpx2 decodes Content-Encoding itself
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _as_httpx(request):
            response = await self.http().request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx2 has quoted it already
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx2 (and the SDK above it) decide on redirects
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
