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
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes import bedrock as fb
from tests.internal import INTERNAL_SECRET

from .conftest import SECRET

PARLEY = str(Path(sys.executable).with_name("parley"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def kill_now(self) -> None:
        """SIGKILL to its process group: no cleanup, no graceful stop."""
        if self.running:
            assert self._process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

    async def kill(self) -> None:
        self.kill_now()
        await self._reap()

    async def stop(self) -> None:
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
