"""`parley up | serve <service> | migrate | health [service…] | token | job <id>`.

`up` migrates the database and runs all four services in one process (the embedded default);
they call each other in process (services/common/inprocess.py) and still serve gRPC. `serve`
runs one service, for one-container-per-service deployments, on a database `migrate` has brought
to head. `health` probes services for healthchecks. `job` prints an inference job's record, for
operators tracing a run's iterations.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable

from services.common import logs, tracing
from services.common.auth import DEFAULT_SCOPE, mint_token
from services.common.config import KEPT_DIR, Settings, load_settings, log_options
from services.common.grpc_server import Running
from services.common.version import VERSION

SERVICES = ("api", "runner", "tooling", "gateway")
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
FAKE_MODEL_ON = "built-in echo model (--fake-model): every run answers without a provider"
FAKE_MODEL_OFF = "; without their credentials start with --fake-model for an echo model"
PROVIDER_NAMES = {"bedrock": "AWS Bedrock", "cortex": "Snowflake Cortex", "openai": "OpenAI API"}
GC_GEN0_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def _starters(settings: Settings) -> dict[str, Callable[[], Awaitable[Running]]]:
    # Imported lazily so `parley token` stays instant.
    from gateway import app as gateway_app
    from services.api import server as api_server
    from services.runner import server as runner_server
    from services.common import addresses
    from services.tooling import server as tooling_server

    def bind(setting: str) -> str:
        """A serving process listens on the port of the first address of its own setting."""
        return f"{settings.host}:{addresses.parse(setting).first_port}"

    return {
        "api": lambda: api_server.start(
            settings, bind(settings.api_addr), bind(settings.store_addr)
        ),
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
        _tune_gc()
        on_ready()
        await stop.wait()
    finally:
        for service in reversed(running):
            await service.stop()
        await asyncio.to_thread(tracing.shutdown)  # the last spans, off the loop
        await _drain_leftover_tasks()


def _tune_gc() -> None:
    """Start-up made ~10^5 long-lived objects (modules, descriptors, SQLAlchemy's statement
    caches): freeze them out of the collector, and collect the young generation less often, so
    a turn's short-lived garbage does not pay for scanning them (~5 % of a one_tool turn's CPU in
    an A/B of `make bench QUICK=1`, measured relative to the load client's CPU)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


async def _drain_leftover_tasks(timeout_s: float = 5.0) -> None:
    """Every service has stopped; cancel what is left (titling jobs, library internals) and wait
    a bounded time. A stop signal must always stop Parley: a task that ignores cancellation is
    logged with its stack, and calls still blocking a thread are abandoned (a run they served
    resumes on another runner when its lease expires), so the process exits without them."""
    log = logging.getLogger("parley.cli")
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leftover:
        task.cancel()
    pending: set[asyncio.Task[object]] = set()
    if leftover:
        _, pending = await asyncio.wait(leftover, timeout=timeout_s)
    # Idle default-executor threads (asyncio.to_thread) end here; a thread still blocked in a
    # call does not, and is counted below.
    shutdown = asyncio.ensure_future(asyncio.get_running_loop().shutdown_default_executor())
    await asyncio.wait({shutdown}, timeout=timeout_s)
    for task in pending:
        stack = task.get_stack()
        where = "".join(traceback.format_stack(stack[-1])) if stack else "(no stack)"
        log.warning("task %s ignored cancellation at shutdown:\n%s", task.get_name(), where)
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if pending or busy:
        if busy:
            log.warning("abandoning %d calls still running in worker threads", len(busy))
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: the local server at 127.0.0.1:5432 (unless PARLEY_DATABASE_URL)",
    )


def _choose_db(args: argparse.Namespace) -> None:
    if args.db == "postgres":
        os.environ.setdefault("PARLEY_DATABASE_URL", POSTGRES_URL)


def _up(args: argparse.Namespace) -> None:
    _choose_db(args)
    settings = load_settings(embedded=True)
    if args.fake_model:
        settings = settings.with_overrides(fake_model=True)
    settings = _listen_flags(settings, args)
    tracing.configure("parley")
    token = mint_token(settings.jwt_secret, company_id=1, user_id=1, ttl_seconds=30 * 86400)

    def ready() -> None:
        print(f"Parley is up on {settings.database_url}", flush=True)
        print(f"  gateway:       http://{settings.host}:{settings.http_port}")
        print(f"  data plane id: {settings.default_data_plane_id}")
        print(f"  model:         {_models_line(settings)}")
        print(f"  token:         {token}")
        url = f"http://{settings.host}:{settings.http_port}"
        print(f"  try:           export API={url} TOKEN={token}", flush=True)

    async def main() -> None:
        from services.api.db import migrate

        await migrate.upgrade(settings.database_url)  # the embedded default migrates itself
        await _run_until_signalled(settings, SERVICES, ready)

    _run(main())


def _migrate(args: argparse.Namespace) -> None:
    """Upgrade the database to head; safe to start several at once (they take turns)."""
    from sqlalchemy.engine import make_url

    from services.api.db import migrate

    _choose_db(args)
    url = load_settings(embedded=False, require_secrets=False).database_url
    outcome = asyncio.run(migrate.upgrade(url))
    print(
        f"parley migrate: {make_url(url).render_as_string(hide_password=True)} "
        f"{outcome.describe()}",
        flush=True,
    )


def _health(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """One line; exit status 0 when every probed service is serving, 1 otherwise."""
    from services.common import health

    unknown = [s for s in args.services if s not in health.SERVICES]
    if unknown:
        parser.error(f"unknown service {unknown[0]!r} (choose from {', '.join(health.SERVICES)})")
    if args.addr and len(args.services) != 1:
        parser.error("--addr probes one service: name it (e.g. `parley health api --addr …`)")
    settings = load_settings(embedded=False, require_secrets=False)
    if args.addr:
        probes = [health.probe(settings, args.services[0], args.addr, args.timeout)]
    elif args.services:
        probes = [health.probe_here(settings, s, args.timeout) for s in args.services]
    else:
        probes = health.probe_local(settings, args.timeout)
    if not probes:
        ports = ", ".join(health.local_addr(settings, s) for s in health.SERVICES)
        print(f"nothing serves on this host's Parley addresses ({ports})", flush=True)
        raise SystemExit(1)
    print("; ".join(probe.line() for probe in probes), flush=True)
    raise SystemExit(0 if all(probe.serving for probe in probes) else 1)


def _models_line(settings: Settings) -> str:
    """What answers runs: the echo model, or each cluster's provider."""
    if settings.fake_model:
        return FAKE_MODEL_ON
    clusters = settings.catalogue.clusters.values()
    return (
        ", ".join(f"{PROVIDER_NAMES[c.provider]} (cluster {c.name})" for c in clusters)
        + FAKE_MODEL_OFF
    )


def _serve(args: argparse.Namespace) -> None:
    if args.cluster and args.service != "runner":
        raise SystemExit("parley serve: --cluster is for the runner (parley serve runner)")
    settings = load_settings(embedded=False).with_overrides(runner_clusters=tuple(args.cluster))
    settings = _listen_flags(settings, args)
    tracing.configure(f"parley-{args.service}")
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
    """Signs with the secret the server checks: PARLEY_JWT_SECRET, else the one `parley up` keeps
    in ./.parley/. It never makes one: a token signed with a new secret no server knows would be
    refused with no hint why."""
    settings = load_settings(embedded=True, require_secrets=False)
    if not settings.jwt_secret:
        kept = (KEPT_DIR / "jwt_secret").resolve()
        raise SystemExit(
            f"parley token: no JWT secret: PARLEY_JWT_SECRET is unset and {kept} does not exist; "
            "run it in the folder where `parley up` runs, or set PARLEY_JWT_SECRET to the "
            "server's"
        )
    print(mint_token(settings.jwt_secret, args.company_id, args.user_id, args.scope, args.ttl))


def _listen_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """--host and --port (the gateway's HTTP port) over PARLEY_HOST and PARLEY_HTTP_PORT."""
    changes: dict[str, object] = {}
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None) is not None:
        changes["http_port"] = args.port
    return settings.with_overrides(**changes) if changes else settings


def _listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", choices=tuple(logs.LEVELS), default=argparse.SUPPRESS, help="as above"
    )
    parser.add_argument("--host", help="bind address of every listener (PARLEY_HOST)")
    parser.add_argument(
        "--port", type=int, help="the gateway's HTTP port (PARLEY_HTTP_PORT; default 8080)"
    )


def _job(args: argparse.Namespace) -> None:
    """Print an inference job's record (request and response as sent/received) as JSON. It
    reads the store's internal listener with an operator credential minted from the internal
    secret: PARLEY_INTERNAL_SECRET, PARLEY_INTERNAL_SECRET_FILE, or `parley up`'s kept one."""
    import json

    settings = load_settings(embedded=True, require_secrets=False)
    if not settings.internal_secret:
        raise SystemExit(
            "parley job: no internal secret: PARLEY_INTERNAL_SECRET and "
            f"PARLEY_INTERNAL_SECRET_FILE are unset and {KEPT_DIR / 'internal_secret'} does not "
            "exist; set PARLEY_INTERNAL_SECRET to the api service's, or run where `parley up` runs"
        )

    async def fetch() -> None:
        import grpc
        from agents.v1 import store_service_pb2, store_service_pb2_grpc

        from gateway import codec
        from services.common import channels
        from services.common.internal_auth import InternalCredential, Role

        operator = InternalCredential(settings.internal_secret, Role.OPERATOR, ttl_seconds=60)
        async with channels.dial(settings, "store") as channel:
            try:
                job = await store_service_pb2_grpc.StoreServiceStub(channel).GetInferenceJob(
                    store_service_pb2.GetInferenceJobRequest(id=args.job_id),
                    timeout=10,
                    metadata=operator.metadata(),
                )
            except grpc.aio.AioRpcError as exc:
                raise SystemExit(f"parley job: {exc.code().name}: {exc.details()}") from None
        record = codec.to_value(job)  # the same JSON rendering as the REST surface
        record["request"] = json.loads(record.pop("request_json", "null") or "null")
        record["response"] = json.loads(record.pop("response_json", "null") or "null")
        print(json.dumps(record, indent=2))

    asyncio.run(fetch())


def _run(main: Awaitable[None]) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"parley {VERSION}")
    parser.add_argument(
        "--log-level",
        choices=tuple(logs.LEVELS),
        help="debug, info, warning or error (PARLEY_LOG_LEVEL; default info)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole suite in one process")
    _db_option(up)
    _listen_options(up)
    up.add_argument(
        "--fake-model",
        action="store_true",
        help="answer every run with the built-in, deterministic echo model instead of Bedrock "
        "(as PARLEY_FAKE_MODEL=true does): a first run without AWS credentials",
    )
    up.set_defaults(func=_up)
    serve = sub.add_parser("serve", help="run one service (on a database `parley migrate` made)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument(
        "--cluster",
        action="append",
        default=[],
        metavar="NAME",
        help="runner only: claim only the runs of this execution cluster (repeatable; "
        "default: every cluster of the catalogue)",
    )
    _listen_options(serve)
    serve.set_defaults(func=_serve)
    migrate = sub.add_parser("migrate", help="upgrade the database to head (concurrent-safe)")
    _db_option(migrate)
    migrate.set_defaults(func=_migrate)
    health = sub.add_parser(
        "health", help="probe services: exit 0 when serving (a HEALTHCHECK or exec probe)"
    )
    health.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="api, store, runner, tooling or gateway; none: every service listening here",
    )
    health.add_argument("--addr", metavar="HOST:PORT", help="probe this address instead")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    health.set_defaults(func=lambda args: _health(args, health))
    token = sub.add_parser("token", help="print a bearer token signed with the configured secret")
    token.add_argument("--company-id", type=int, required=True)
    token.add_argument("--user-id", type=int, required=True)
    token.add_argument("--scope", default=DEFAULT_SCOPE)
    token.add_argument("--ttl", type=int, default=86400, help="seconds")
    token.set_defaults(func=_token)
    job = sub.add_parser("job", help="print an inference job's raw request and response")
    job.add_argument("job_id")
    job.set_defaults(func=_job)
    args = parser.parse_args(argv)
    level, fmt = log_options(os.environ)
    if args.log_level:
        os.environ["PARLEY_LOG_LEVEL"] = level = args.log_level  # the settings agree
    logs.configure(level, fmt)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
