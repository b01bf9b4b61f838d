"""A property-based fuzz of the REST surface: schemathesis over the live /openapi.json.

The whole suite (api, runner, tooling, gateway; boto3 pointed at the fake Bedrock, which refuses
every unscripted call, so runs end quickly) runs on loopback in a thread of this process, with a
real token. Schemathesis drives it with positive and negative data through its phases and every
check but `positive_data_acceptance` (a schema cannot say which models, data planes or paused runs
exist). The gateway's own request counter says how many requests it answered and how many were
5xx. `make test` runs a bounded cell (tests/fuzz/test_rest_fuzz.py); the long cell is

    python -m tests.fuzz.rest --requests 10000 [--seed N] [--database-url URL]

and prints "N requests, K x 5xx, F conformance failures".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.api.db import migrate
from services.common.auth import DEFAULT_SCOPE, mint_token
from tests.e2e.conftest import SECRET
from tests.e2e.runner_suite import running_runner_suite

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]
# The coverage phase (boundary values of every constraint) costs schemathesis most of a run's CPU.
ALL_PHASES = "examples,coverage,fuzzing,stateful"
QUICK_PHASES = "examples,fuzzing,stateful"
_FAILURES = re.compile(r"(\d+) unique failures")


@dataclass
class Outcome:
    requests: int  # answered by the gateway, by its own counter
    server_errors: int  # of which 5xx
    failures: int  # unique failures schemathesis reported (its report says which)
    report: str


@contextmanager
def running_stack(database_url: str) -> Iterator[str]:
    """The suite on loopback in a background thread, on `database_url` brought to head as
    `parley migrate` does (the api does not migrate); yields the gateway's base URL."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop = asyncio.new_event_loop()
    found: dict[str, object] = {}

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            await migrate.upgrade(database_url)
            async with running_runner_suite(database_url, mcp_allow_private_networks=True) as s:
                found["url"] = str(s.http.base_url).rstrip("/")
                ready.set()
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting thread
            found["error"] = exc
            ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    try:
        if not ready.wait(60) or "error" in found:
            raise RuntimeError(f"the suite did not start: {found.get('error')}")
        yield str(found["url"])
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def _answered(base_url: str) -> tuple[int, int]:
    """(all requests, 5xx) the gateway has answered, from its Prometheus counter."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    total = errors = 0
    for line in text.splitlines():
        if not line.startswith("parley_gateway_requests_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        count = int(float(value))
        total += count
        if 'status="5' in labels:
            errors += count
    return total, errors


def schemathesis_run(
    base_url: str, *, max_examples: int, seed: int, phases: str = ALL_PHASES
) -> subprocess.CompletedProcess[str]:
    token = mint_token(SECRET, 1, 1, DEFAULT_SCOPE)
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        *CHECKS,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--suppress-health-check",
        "all",
        "--phases",
        phases,
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.run(
            args, cwd=tmp, env=env, capture_output=True, text=True, timeout=3600, check=False
        )


def fuzz(
    base_url: str, *, requests: int, max_examples: int, seed: int, phases: str = ALL_PHASES
) -> Outcome:
    """Schemathesis runs (seed, seed + 1, ...) until the gateway has answered `requests`."""
    start_total, start_errors = _answered(base_url)
    failures, reports = 0, []
    while True:
        done = schemathesis_run(base_url, max_examples=max_examples, seed=seed, phases=phases)
        if done.returncode != 0:
            found = _FAILURES.search(done.stdout)
            failures += int(found.group(1)) if found else 1  # no count: an error, not a check
            reports.append(done.stdout[-20000:] + done.stderr[-5000:])
        total, errors = _answered(base_url)
        if total - start_total >= requests or failures:
            break
        seed += 1
    return Outcome(total - start_total, errors - start_errors, failures, "\n".join(reports))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--max-examples", type=int, default=300, help="per operation and run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/fuzz.db"
        with running_stack(url) as base_url:
            outcome = fuzz(
                base_url, requests=args.requests, max_examples=args.max_examples, seed=args.seed
            )
    if outcome.report:
        print(outcome.report)
    print(
        f"{outcome.requests} requests, {outcome.server_errors} x 5xx, "
        f"{outcome.failures} conformance failures"
    )
    return 0 if outcome.server_errors == 0 and outcome.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
