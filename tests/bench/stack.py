"""Processes for the benchmark, started as a user would start them, each in its own process group:
`parley up` (or `parley serve <service>`), the fake Converse server, the fake MCP server, and
LangGraph Agent Server (`langgraph dev`, from its own virtualenv) for the side-by-side cells.
CPU and RSS are read per process tree with psutil, so Parley, its peer, the fakes and the load
client are measured apart; `pin` puts every thread of a process tree on given cores. Every wait
here has a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# LangGraph Agent Server's own virtualenv (`make bench` builds it from pyproject's `peer` extra):
# langgraph-api pins protobuf < 7 and grpcio < 1.82, which Parley's generated code cannot run on.
LANGGRAPH_VENV = REPO / ".venv-langgraph"
LANGGRAPH_PYTHON = LANGGRAPH_VENV / "bin" / "python"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
JWT_SECRET = "bench-secret-0123456789abcdef0123456789"
INTERNAL_SECRET = "bench-internal-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env() -> dict[str, str]:
    """The caller's environment without any PARLEY_*/AWS_* setting (AWS_BEARER_TOKEN_BEDROCK
    would switch botocore to bearer auth, which refuses http:// endpoints)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}


def aws_env(converse_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": converse_url,
        "AWS_ACCESS_KEY_ID": "AKIDBENCHBENCHBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",  # botocore reads this one, Parley AWS_REGION first
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def pin(self, cores: set[int]) -> None:
        """Every thread of every process of the tree on `cores` (threads and processes started
        later inherit it from the thread that starts them)."""
        for proc in self.tree():
            pin_threads(proc.pid, cores)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    ready: str,
    *,
    cwd: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 60.0,
) -> tuple[Proc, re.Match[str]]:
    """Start `args` in its own process group; wait (bounded) for a stdout line matching `ready`.
    stdout keeps being drained in a thread; stderr goes to `<log_dir>/<name>.log`."""
    log_path = (log_dir / f"{name}.log") if log_dir else None
    stderr = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    popen = subprocess.Popen(
        args,
        env=env,
        cwd=cwd or REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    if log_path:
        stderr.close()  # type: ignore[union-attr]
    proc = Proc(name, popen, log_path=log_path)
    found: list[re.Match[str]] = []
    got = threading.Event()
    pattern = re.compile(ready)

    def drain() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            proc.lines.append(line.rstrip("\n"))
            if not found:
                match = pattern.search(line)
                if match:
                    found.append(match)
                    got.set()
        got.set()

    threading.Thread(target=drain, daemon=True, name=f"drain-{name}").start()
    if not got.wait(timeout) or not found:
        proc.stop()
        tail = "\n".join(proc.lines)
        if log_path and log_path.exists():
            tail += "\n" + log_path.read_text()[-3000:]
        raise RuntimeError(f"{name} did not become ready within {timeout}s:\n{tail}")
    return proc, found[0]


def pin_threads(pid: int, cores: set[int]) -> None:
    """sched_setaffinity is per thread on Linux: set it on each of the process's threads."""
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(tid), cores)


def pin_self(cores: set[int]) -> None:
    """This process (the load client, and the threads it has) on `cores`."""
    pin_threads(os.getpid(), cores)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_fake_converse(log_dir: Path, delay: float = 0.0, name: str = "fake-converse") -> Proc:
    proc, _ = spawn(
        name,
        python("tests.bench.fake_converse", "--delay", str(delay)),
        base_env(),
        r"listening (\d+)",
        log_dir=log_dir,
    )
    return proc


def start_fake_mcp(log_dir: Path) -> Proc:
    proc, _ = spawn(
        "fake-mcp", python("tests.bench.fake_mcp"), base_env(), r"listening (\d+)", log_dir=log_dir
    )
    return proc


def listening_port(proc: Proc) -> int:
    for line in proc.lines:
        match = re.search(r"listening (\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"{proc.name} printed no port")


@dataclass
class Parley:
    """A running Parley deployment: its processes, gateway URL and a bearer token."""

    procs: list[Proc]
    url: str
    token: str
    workdir: Path
    database_url: str
    pg_database: str | None = None
    urls: list[str] = field(default_factory=list)  # every gateway (`url` is the first)

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs)

    def rss_bytes(self) -> int:
        return sum(p.rss_bytes() for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def parley_up(
    converse_url: str,
    log_dir: Path,
    *,
    db: str = "sqlite",
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    name: str = "parley-up",
) -> Parley:
    """`parley up [--db postgres]` in a fresh working directory (so a fresh ./parley.db and a
    freshly generated JWT secret); the token is the one `parley up` prints."""
    workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    port = free_port()
    env = {
        **base_env(),
        **aws_env(converse_url),
        "PARLEY_HTTP_PORT": str(port),
        "PARLEY_API_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_STORE_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_RUNNER_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_TOOLING_ADDR": f"127.0.0.1:{free_port()}",
        **(extra_env or {}),
    }
    if database_url:
        env["PARLEY_DATABASE_URL"] = database_url
    args = [str(BIN / "parley"), "up", *(["--db", "postgres"] if db == "postgres" else [])]
    proc, _ = spawn(name, args, env, r"try:\s+export", cwd=workdir, log_dir=log_dir)
    token = next(line.split("token:", 1)[1].strip() for line in proc.lines if "token:" in line)
    url = f"http://127.0.0.1:{port}"
    return Parley([proc], url, token, workdir, database_url or "sqlite (./parley.db)")


def parley_serve(
    converse_url: str,
    database_url: str,
    runners: int,
    log_dir: Path,
    tag: str,
    *,
    apis: int = 1,
    gateways: int = 1,
) -> Parley:
    """`parley serve api×apis|tooling|runner×runners|gateway×gateways`, one process each, against
    one database: every gateway lists every api address and every runner every store address
    (round-robin), each api listening on the first address of its own lists."""
    from services.common.auth import mint_token

    public = [f"127.0.0.1:{free_port()}" for _ in range(apis)]
    store = [f"127.0.0.1:{free_port()}" for _ in range(apis)]
    http_ports = [free_port() for _ in range(gateways)]
    common = {
        **base_env(),
        **aws_env(converse_url),
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_INTERNAL_SECRET": INTERNAL_SECRET,
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_API_ADDR": ",".join(public),
        "PARLEY_STORE_ADDR": ",".join(store),
        "PARLEY_TOOLING_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_MCP_ALLOW_PRIVATE_NETWORKS": "true",  # the fake MCP server is on loopback
    }

    def own_first(addresses: list[str], i: int) -> str:
        return ",".join([addresses[i], *addresses[:i], *addresses[i + 1 :]])

    first = [
        ("api", {"PARLEY_API_ADDR": own_first(public, i), "PARLEY_STORE_ADDR": own_first(store, i)})
        for i in range(apis)
    ]
    plan = [("tooling", {})]
    plan += [("runner", {"PARLEY_RUNNER_ADDR": f"127.0.0.1:{free_port()}"}) for _ in range(runners)]
    plan += [("gateway", {"PARLEY_HTTP_PORT": str(port)}) for port in http_ports]
    procs: list[Proc] = []
    failures: list[BaseException] = []

    def start(i: int, service: str, extra: dict[str, str]) -> None:
        env = {**common, **extra, "PARLEY_METRICS_PORT": str(free_port())}
        try:
            proc, _ = spawn(
                f"{tag}-{service}-{i}",
                [str(BIN / "parley"), "serve", service],
                env,
                rf"parley {service} is serving",
                log_dir=log_dir,
            )
            procs.append(proc)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)

    def start_all(group: list[tuple[str, dict[str, str]]], offset: int) -> None:
        threads = [
            threading.Thread(target=start, args=(offset + i, service, extra))
            for i, (service, extra) in enumerate(group)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # `parley migrate` first, as a deployment's migrate job runs; then the api processes (the
    # gateways read their descriptors), then the others at once: a runner retries its ClaimRun
    # and WatchWork until a store answers.
    subprocess.run(
        [str(BIN / "parley"), "migrate"], env=common, check=True, capture_output=True, timeout=120
    )
    start_all(first, 0)
    if not failures:
        start_all(plan, len(first))
    if failures:
        for proc in reversed(procs):
            proc.stop()
        raise failures[0]
    procs.sort(key=lambda p: ["api", "tooling", "runner", "gateway"].index(p.name.split("-")[1]))
    token = mint_token(JWT_SECRET, company_id=1, user_id=1, ttl_seconds=86400)
    urls = [f"http://127.0.0.1:{port}" for port in http_ports]
    return Parley(procs, urls[0], token, Path("."), database_url, urls=urls)


@dataclass
class LangGraph:
    """A running LangGraph Agent Server (tests/bench/langgraph_server.py): its process and URL."""

    procs: list[Proc]
    url: str
    profile: str
    settings: list[str]  # what the launcher says of its profile and patch, from its output

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs)

    def rss_bytes(self) -> int:
        return sum(p.rss_bytes() for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def langgraph_missing() -> str | None:
    """Why LangGraph Agent Server cannot run here, or None."""
    if not LANGGRAPH_PYTHON.exists():
        return f"{LANGGRAPH_PYTHON} not found (`make bench` builds it from the peer extra)"
    imports = "import langgraph_api, langgraph_runtime_inmem, langgraph_cli"
    probe = subprocess.run(
        [str(LANGGRAPH_PYTHON), "-c", imports], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"langgraph-cli[inmem] not importable in {LANGGRAPH_VENV}: {probe.stderr[-300:]}"
    return None


def langgraph_up(log_dir: Path, *, profile: str = "best", name: str = "langgraph") -> LangGraph:
    """tests/bench/langgraph_server.py in .venv-langgraph, in the given profile, on a free port,
    working in `<log_dir>/<name>` (its langgraph.json, the runtime's dumps); no LangSmith setting
    of the caller's reaches it."""
    port = free_port()
    args = [str(LANGGRAPH_PYTHON), "-m", "tests.bench.langgraph_server", "--port", str(port)]
    # Fresh each time: the runtime would load a previous run's threads from its dumps there.
    workdir = (log_dir / name).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    args += ["--profile", profile, "--workdir", str(workdir)]
    env = {k: v for k, v in base_env().items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    env.pop("VIRTUAL_ENV", None)
    proc, _ = spawn(name, args, env, r"listening (\d+)", log_dir=log_dir)
    said = [line for line in proc.lines if line.startswith(("profile ", "patched: "))]
    return LangGraph([proc], f"http://127.0.0.1:{port}", profile, said)


async def create_pg_database() -> str:
    import asyncpg

    name = f"parley_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def pg_available() -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def pg_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


class RssSampler:
    """Peak RSS of some process trees, sampled every `period` seconds on the event loop."""

    def __init__(self, measure: list[Proc] | Parley | LangGraph, period: float = 0.1) -> None:
        self._measure = measure
        self._period = period
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> int:
        m = self._measure
        return sum(p.rss_bytes() for p in m) if isinstance(m, list) else m.rss_bytes()

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(self._now))
            await asyncio.sleep(self._period)

    def __enter__(self) -> RssSampler:
        self.peak = self._now()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, self._now())


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def monotonic() -> float:
    return time.perf_counter()
