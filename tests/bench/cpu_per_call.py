"""CPU per call of an async callable, one at a time and several at once, for the comparison
scripts (converse_call.py, mcp_call.py): figures from one run, printed as ratios to Parley's way."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any


async def measure(
    name: str, call: Callable[[], Awaitable[Any]], n: int, concurrency: tuple[int, ...]
) -> dict[int, float]:
    """This process's CPU ms per call at each concurrency (after a warm-up round)."""
    out: dict[int, float] = {}
    for callers in concurrency:
        per_caller = max(1, n // callers)

        async def caller(per_caller: int = per_caller) -> None:
            for _ in range(per_caller):
                await call()

        await asyncio.gather(*(caller() for _ in range(callers)))  # warm-up
        cpu = time.process_time()
        await asyncio.gather(*(caller() for _ in range(callers)))
        out[callers] = (time.process_time() - cpu) / (per_caller * callers) * 1000
    cells = "  ".join(f"c{c}: {ms:6.3f} ms CPU" for c, ms in out.items())
    print(f"{name:<44} {cells}", flush=True)
    return out


def print_ratios(results: dict[str, dict[int, float]], parley: str = "parley") -> None:
    print("CPU relative to Parley's way:")
    for name, cells in results.items():
        ratios = "  ".join(f"c{c}: {ms / results[parley][c]:5.2f}x" for c, ms in cells.items())
        print(f"  {name:<8} {ratios}")


@contextmanager
def fake_server(module: str) -> Iterator[int]:
    """One of the benchmark's fake servers (`tests.bench.fake_converse`, `…fake_mcp`) in its own
    process, for as long as the block runs; yields its port."""
    fake = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        yield int(fake.stdout.readline().split()[1])
    finally:
        fake.terminate()
        fake.wait(10)
