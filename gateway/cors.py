"""Cross-origin requests from the browser origins PARLEY_CORS_ORIGINS names (none by default).

Pure ASGI, like Starlette's CORSMiddleware but only what the API needs: a preflight from an
allowed origin is answered here (204, the API's methods, the headers a client sends); any other
response to an allowed origin gets `Access-Control-Allow-Origin` and exposes `x-request-id`. A
disallowed origin gets no CORS header at all, so the browser refuses it. No cookies are used
(the token travels in `Authorization`), so credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from gateway.routes import Receive, Scope, Send

ALLOWED_HEADERS = ("authorization", "content-type", "last-event-id", "x-request-id")
EXPOSED_HEADERS = ("x-request-id", "parley-start-outcome")
MAX_AGE_S = 600
ANY = "*"


class Cors:
    """Wraps the gateway's app; `origins` are exact `scheme://host[:port]` values or `*`."""

    def __init__(self, app: Any, origins: Iterable[str], methods: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.any_origin = ANY in self.origins
        self.methods = ", ".join(sorted({*methods, "OPTIONS"}))
        self._allow_headers = ", ".join(ALLOWED_HEADERS).encode()
        self._expose = ", ".join(EXPOSED_HEADERS).encode()

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        # Every answer varies by Origin (a cache must not hand one origin's answer to another).
        allowed = origin is not None and self.allowed(origin)
        if (
            allowed
            and origin is not None
            and scope["method"] == "OPTIONS"
            and _header(scope, b"access-control-request-method") is not None
        ):
            await self._preflight(origin, send)
            return
        extra = [(b"vary", b"Origin")]
        if allowed and origin is not None:
            extra += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", self._expose),
            ]

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, send: Send) -> None:
        """The allowed methods and headers whatever was asked: the browser refuses the request
        itself when it asked for more."""
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", self.methods.encode()),
                    (b"access-control-allow-headers", self._allow_headers),
                    (b"access-control-max-age", str(MAX_AGE_S).encode()),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
