"""How fast this machine is right now, measured against the performance-floor note
(`shared/notes/performance-floor.md`), whose building-block figures issue 6's targets were set
beside. This VM's speed drifts (±15-30 % within minutes, and further between days), so the
report prints, next to every CPU and latency figure, the factor by which two of the note's
reference blocks cost more here today than the note measured:

- an async HTTP POST of ~1 KB with httpx2 to a uvicorn + httptools + uvloop echo server, client
  and server CPU together (note: 0.54 ms);
- a gRPC unary call of ~1 KB, one at a time, uvloop on both sides, client and server CPU
  together (note: 0.74 ms).

Both servers run in their own process (`python -m tests.bench.calibrate http|grpc`, printing
`listening <port>`); the load side is the benchmark's own process, otherwise idle meanwhile.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx2

from tests.bench import stack

PAYLOAD = b"x" * 1024
NOTE_MS = {"http_post": 0.54, "grpc_unary": 0.74}  # the performance-floor note's figures
GRPC_METHOD = "/bench.Echo/Echo"


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _serve_http() -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"listening {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        _echo_app, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])


async def _serve_grpc() -> None:
    server = grpc.aio.server()
    echo = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening {port}", flush=True)
    await server.wait_for_termination()


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def _start(kind: str, log_dir: Path) -> stack.Proc:
    proc, _ = stack.spawn(
        f"calibrate-{kind}",
        stack.python("tests.bench.calibrate", kind),
        stack.base_env(),
        r"listening (\d+)",
        log_dir=log_dir,
    )
    return proc


async def _cpu_per_call(server: stack.Proc, call: Any, n: int) -> float:
    for _ in range(min(n, 50)):
        await call()
    cpu = stack.own_cpu_seconds() + server.cpu_seconds()
    for _ in range(n):
        await call()
    return (stack.own_cpu_seconds() + server.cpu_seconds() - cpu) / n * 1000


async def measure(log_dir: Path, n: int) -> dict[str, Any]:
    """CPU ms per call of each reference block, and the factor: their geometric mean of
    measured / note."""
    http_server, grpc_server = _start("http", log_dir), _start("grpc", log_dir)
    try:
        url = f"http://127.0.0.1:{stack.listening_port(http_server)}/"
        async with httpx2.AsyncClient() as http:
            http_ms = await _cpu_per_call(http_server, lambda: http.post(url, content=PAYLOAD), n)
        target = f"127.0.0.1:{stack.listening_port(grpc_server)}"
        async with grpc.aio.insecure_channel(target) as channel:
            unary = channel.unary_unary(GRPC_METHOD)
            grpc_ms = await _cpu_per_call(grpc_server, lambda: unary(PAYLOAD, timeout=10), n)
    finally:
        http_server.stop()
        grpc_server.stop()
    measured = {"http_post": http_ms, "grpc_unary": grpc_ms}
    ratios = [measured[k] / NOTE_MS[k] for k in NOTE_MS]
    return {
        "errors": 0,
        "calls": n,
        "measured_ms": measured,
        "note_ms": NOTE_MS,
        "factor": math.prod(ratios) ** (1 / len(ratios)),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("http", "grpc"))
    kind = parser.parse_args().server
    if kind == "http":
        _serve_http()
    else:
        import uvloop

        uvloop.run(_serve_grpc())
    sys.exit(0)
