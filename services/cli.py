"""`parley up | serve <service> | token`.

`up` runs all four services in one process (the embedded default); they still talk real gRPC on
loopback. `serve` runs one service, for one-container-per-service deployments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from services.common.auth import DEFAULT_SCOPE, mint_token
from services.common.config import Settings, load_settings
from services.common.grpc_server import Running

SERVICES = ("api", "runner", "tooling", "gateway")
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def _starters(settings: Settings) -> dict[str, Callable[[], Awaitable[Running]]]:
    # Imported lazily so `parley token` stays instant.
    from gateway import app as gateway_app
    from services.api import server as api_server
    from services.runner import server as runner_server
    from services.tooling import server as tooling_server

    def bind(addr: str) -> str:
        return f"{settings.host}:{_port(addr)}"

    return {
        "api": lambda: api_server.start(settings, bind(settings.api_addr)),
        "runner": lambda: runner_server.start(settings, bind(settings.runner_addr)),
        "tooling": lambda: tooling_server.start(settings, bind(settings.tooling_addr)),
        "gateway": lambda: gateway_app.start(
            settings, settings.api_addr, settings.host, settings.http_port
        ),
    }


async def _run_until_signalled(
    settings: Settings, names: tuple[str, ...], on_ready: Callable[[], None]
) -> None:
    starters = _starters(settings)
    running: list[Running] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for name in names:  # api first: the gateway reads its descriptors by reflection
            running.append(await starters[name]())
        on_ready()
        await stop.wait()
    finally:
        for service in reversed(running):
            await service.stop()


def _up(args: argparse.Namespace) -> None:
    import os

    if args.db == "postgres":
        os.environ.setdefault("PARLEY_DATABASE_URL", POSTGRES_URL)
    settings = load_settings(embedded=True)
    token = mint_token(settings.jwt_secret, company_id=1, user_id=1, ttl_seconds=30 * 86400)

    def ready() -> None:
        print(f"Parley is up on {settings.database_url}", flush=True)
        print(f"  gateway:       http://{settings.host}:{settings.http_port}")
        print(f"  data plane id: {settings.default_data_plane_id}")
        print(f"  token:         {token}")
        url = f"http://{settings.host}:{settings.http_port}"
        print(f"  try:           export API={url} TOKEN={token}", flush=True)

    _run(_run_until_signalled(settings, SERVICES, ready))


def _serve(args: argparse.Namespace) -> None:
    settings = load_settings(embedded=False)
    if args.service != "gateway":  # the gateway serves /metrics itself
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
    _run(
        _run_until_signalled(
            settings,
            (args.service,),
            lambda: print(f"parley {args.service} is serving", flush=True),
        )
    )


def _token(args: argparse.Namespace) -> None:
    settings = load_settings(embedded=True)
    print(mint_token(settings.jwt_secret, args.company_id, args.user_id, args.scope, args.ttl))


def _run(main: Awaitable[None]) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration plugin
    parser = argparse.ArgumentParser(prog="parley", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole suite in one process")
    up.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: the local server at 127.0.0.1:5432 (unless PARLEY_DATABASE_URL)",
    )
    up.set_defaults(func=_up)
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(func=_serve)
    token = sub.add_parser("token", help="print a bearer token signed with the configured secret")
    token.add_argument("--company-id", type=int, required=True)
    token.add_argument("--user-id", type=int, required=True)
    token.add_argument("--scope", default=DEFAULT_SCOPE)
    token.add_argument("--ttl", type=int, default=86400, help="seconds")
    token.set_defaults(func=_token)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
