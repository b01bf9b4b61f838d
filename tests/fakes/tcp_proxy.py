"""A TCP proxy on loopback between a client and the gateway: the network a client lives with.

It forwards bytes both ways (one thread per direction per connection) and reads the HTTP/1.1
request heads going up, so that a test can, for the next requests matching a method and path:
drop the answer after the request reached the gateway (`drop_response`: the client sees the
connection close, the server did the work), or answer itself as a load balancer would
(`answer`: 429, 503 without the gateway seeing the request). `cut()` closes every open
connection at once, mid-stream. `requests` records every request that went up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

import orjson


@dataclass(frozen=True)
class SeenRequest:
    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def json(self) -> object:
        return orjson.loads(self.body)


@dataclass
class _Rule:
    method: str
    path: str
    times: int
    answer: bytes | None  # None: forward, then drop the answer


@dataclass(eq=False)
class _Connection:
    client: socket.socket
    upstream: socket.socket | None = None
    drop_answer: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[SeenRequest] = []
        self._rules: list[_Rule] = []
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    # --- what a test asks for ---------------------------------------------------------------

    def drop_response(self, method: str, path: str, times: int = 1) -> None:
        with self._lock:
            self._rules.append(_Rule(method, path, times, None))

    def answer(
        self,
        method: str,
        path: str,
        status: int,
        problem: dict[str, object],
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = orjson.dumps(problem)
        head = [f"HTTP/1.1 {status} Proxy Says So", "content-type: application/problem+json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head += [f"content-length: {len(body)}", "connection: close", "", ""]
        with self._lock:
            self._rules.append(_Rule(method, path, times, "\r\n".join(head).encode() + body))

    def cut(self) -> int:
        """Close every open connection now; returns how many there were."""
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            connection.close()
        return len(connections)

    def seen(self, method: str, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    # --- forwarding -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(client)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: _Connection) -> None:
        try:
            connection.upstream = socket.create_connection(self._upstream, timeout=10)
            connection.upstream.settimeout(None)
        except OSError:
            connection.close()
            return
        threading.Thread(target=self._down, args=(connection,), daemon=True).start()
        self._up(connection)

    def _up(self, connection: _Connection) -> None:
        """Client to gateway, one request at a time (a client does not pipeline)."""
        buffer = b""
        try:
            while not connection.closed.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:])
                }
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = connection.client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                seen = SeenRequest(method, target, headers, body)
                rule = self._take_rule(seen)
                with self._lock:
                    self.requests.append(seen)
                if rule is not None and rule.answer is not None:
                    connection.client.sendall(rule.answer)
                    connection.close()
                    return
                connection.drop_answer = rule is not None
                assert connection.upstream is not None
                connection.upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            connection.close()

    def _down(self, connection: _Connection) -> None:
        """Gateway to client, as bytes; a dropped answer closes the connection instead."""
        assert connection.upstream is not None
        try:
            while True:
                chunk = connection.upstream.recv(65536)
                if not chunk:
                    return
                if connection.drop_answer:
                    return
                connection.client.sendall(chunk)
        except OSError:
            pass
        finally:
            connection.close()

    def _take_rule(self, request: SeenRequest) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.method == request.method and rule.path == request.path:
                    rule.times -= 1
                    return rule
        return None
