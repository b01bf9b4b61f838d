"""Parley as separate processes, started as an operator starts them (`parley up`, `parley migrate`,
`parley serve …`), for the tests that kill them with SIGKILL and start them again. Each process
keeps its command and environment, so a restart is the same process again (same ports, same
runner name); its stderr goes to a log file the failure message quotes. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes import bedrock as fb
from tests.internal import INTERNAL_SECRET
from tests.ports import free_port

from .conftest import SECRET

PARLEY = str(Path(sys.executable).with_name("parley"))


def base_env(bedrock_url: str, **settings: str) -> dict[str, str]:
    """The environment without the caller's PARLEY_*/AWS_* settings, with both secrets, boto3
    pointed at the fake Bedrock, and `settings` (PARLEY_… names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    return {
        **env,
        **fb.aws_environ(bedrock_url),
        "PARLEY_JWT_SECRET": SECRET,
        "PARLEY_INTERNAL_SECRET": INTERNAL_SECRET,
        **settings,
    }


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    ready: str  # a line on stdout that says it serves
    starts: int = 0
    serving: bool = False  # it said so, and has not been stopped or killed since
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, deadline_s: float = 60.0) -> None:
        self.starts += 1
        with open(self.log, "a") as stderr:
            stderr.write(f"--- start {self.starts}\n")
            stderr.flush()
            self._process = process = await asyncio.create_subprocess_exec(
                *self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # its own process group: a kill reaches all of it
            )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(deadline_s):
                while self.ready not in (line := (await process.stdout.readline()).decode()):
                    if not line:
                        raise AssertionError(f"{self.name} exited before serving: {self.tail()}")
        except TimeoutError:
            self.kill_now()
            raise AssertionError(
                f"{self.name} did not serve in {deadline_s} s: {self.tail()}"
            ) from None
        self._drain = asyncio.create_task(_drain(process.stdout))
        self.serving = True

    def kill_now(self) -> None:
        """SIGKILL to its process group: no cleanup, no graceful stop."""
        self.serving = False
        if self.running:
            assert self._process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

    async def kill(self) -> None:
        self.kill_now()
        await self._reap()

    async def stop(self) -> None:
        self.serving = False
        if self.running:
            assert self._process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self._process.wait()
            except TimeoutError:
                self.kill_now()
        await self._reap()

    async def _reap(self) -> None:
        if self._process is not None:
            await self._process.wait()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:] if self.log.exists() else "(no log)"


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def parley_up(cwd: Path, env: dict[str, str], name: str = "parley-up") -> Process:
    return Process(name, [PARLEY, "up"], env, cwd, "try:")


def parley_serve(service: str, cwd: Path, env: dict[str, str], name: str) -> Process:
    return Process(name, [PARLEY, "serve", service], env, cwd, f"parley {service} is serving")


async def parley_migrate(cwd: Path, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        PARLEY, "migrate", env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, (out + err).decode()


@dataclass
class Deployment:
    """Parley at scale on one PostgreSQL: `parley migrate`, then api, tooling, runner and gateway
    processes (`parley serve`), each on ports of its own for its whole life."""

    processes: dict[str, Process]  # "api-1", "tooling-1", "runner-2", "gateway-1", …
    gateways: list[str]  # base URLs, in the order of their processes
    cwd: Path
    env: dict[str, str]  # what every process has in common (`parley migrate`'s)

    def of(self, service: str) -> list[Process]:
        return [p for name, p in self.processes.items() if name.startswith(f"{service}-")]

    async def start(self) -> None:
        """`parley migrate`, the api processes (a gateway reads the API's descriptors at start),
        then the rest at once."""
        await parley_migrate(self.cwd, self.env)
        api = self.of("api")
        await asyncio.gather(*(p.start() for p in api))
        await asyncio.gather(*(p.start() for p in self.processes.values() if p not in api))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes.values()))


def deployment(
    cwd: Path,
    bedrock_url: str,
    database_url: str,
    *,
    apis: int = 2,
    gateways: int = 2,
    runners: int = 2,
    pinned: bool = False,
    **settings: str,
) -> Deployment:
    """Every process's environment. Balanced (the default): each gateway lists every api
    address and each runner every store address, its own first for an api (which listens on the
    first address of its own setting). `pinned`: gateway i dials only api i, runner i only the
    store of api i (so what crosses processes is known by construction)."""
    public = [f"127.0.0.1:{free_port()}" for _ in range(apis)]
    store = [f"127.0.0.1:{free_port()}" for _ in range(apis)]
    common = base_env(
        bedrock_url,
        PARLEY_DATABASE_URL=database_url,
        PARLEY_TOOLING_ADDR=f"127.0.0.1:{free_port()}",
        **settings,
    )

    def own_first(addresses: list[str], i: int) -> str:
        return ",".join([addresses[i], *addresses[:i], *addresses[i + 1 :]])

    def listed(addresses: list[str], i: int) -> str:
        return addresses[i % len(addresses)] if pinned else own_first(addresses, i % apis)

    processes: dict[str, Process] = {}

    def add(service: str, i: int, **env: str) -> None:
        name = f"{service}-{i + 1}"
        merged = {**common, "PARLEY_METRICS_PORT": str(free_port()), **env}
        processes[name] = parley_serve(service, cwd, merged, name)

    for i in range(apis):
        add("api", i, PARLEY_API_ADDR=own_first(public, i), PARLEY_STORE_ADDR=own_first(store, i))
    add("tooling", 0)
    for i in range(runners):
        add(
            "runner",
            i,
            PARLEY_STORE_ADDR=listed(store, i),
            PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
        )
    urls = []
    for i in range(gateways):
        port = free_port()
        add("gateway", i, PARLEY_API_ADDR=listed(public, i), PARLEY_HTTP_PORT=str(port))
        urls.append(f"http://127.0.0.1:{port}")
    return Deployment(processes, urls, cwd, common)
