"""LangGraph Agent Server for the benchmark: `langgraph dev` (in-memory runtime) serving the graphs
of tests/bench/langgraph_graph.py, started in this process so that a profile can patch it.

    .venv-langgraph/bin/python -m tests.bench.langgraph_server --port P [--profile best|shipped]
        [--jobs N] [--workdir DIR]

It writes a langgraph.json into its working directory, runs the CLI's own `dev` command
(`langgraph dev --config … --no-browser --no-reload --port P --n-jobs-per-worker N`) and prints
`listening <port>` once `GET /ok` answers. Runs in .venv-langgraph (langgraph-api pins protobuf < 7
and grpcio < 1.82, which Parley's generated code cannot run on), so it never imports Parley.

Profiles:

- `shipped`: `langgraph dev` as installed (one background job, INFO logs).
- `best` (the benchmark's default), LangGraph at its best on this workload:
  1. the one patch, `PATCH` below. As shipped, the queue loop that hands pending runs to workers
     calls `Runs.next(wait=True)` after a poll that found nothing, which sleeps 0.5 s before it
     looks; a run created during that sleep is not older than the `now` taken before it, so it
     waits for the next poll too: on an idle server each run starts 0.5-1 s late. The patch ends
     that wait as soon as a run is created (an asyncio.Event that `Runs.put` sets, still bounded
     by the same 0.5 s so the loop's stats and sweeps keep their pace) and takes the poll's `now`
     after it. It does not spin: a plain `sleep(0)` would burn the very core the server is
     measured on. Nothing else is changed and no file in site-packages is edited;
  2. `--n-jobs-per-worker 10`, the server's own default (`langgraph dev` forces 1), so runs of
     different threads overlap as they do in a deployed server;
  3. `LOG_LEVEL=WARNING` (the server's documented logging setting): no INFO lines per request and
     run (three per turn as shipped), as `parley up` writes none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

GRAPHS = ("no_tool", "one_tool")
BEST_JOBS = 10
BEST_ENV = {"LOG_LEVEL": "WARNING"}
PATCH = (
    "langgraph_runtime_inmem.ops.Runs.next(wait=True): its asyncio.sleep(0.5) before polling is"
    " replaced by waiting (≤ 0.5 s) for an asyncio.Event that Runs.put sets when a run is created"
)


def patch_queue_poll() -> None:
    """The `best` profile's one patch (see the module docstring)."""
    from langgraph_runtime_inmem import ops

    original_next = ops.Runs.next
    original_put = ops.Runs.put
    created: list[asyncio.Event] = []  # made lazily, on the server's event loop

    def event() -> asyncio.Event:
        if not created:
            created.append(asyncio.Event())
        return created[0]

    async def put(*args, **kwargs):
        result = await original_put(*args, **kwargs)
        event().set()
        return result

    async def next_run(wait: bool, limit: int = 1):
        if wait:
            woken = event()
            if not woken.is_set():
                try:
                    await asyncio.wait_for(woken.wait(), 0.5)
                except TimeoutError:
                    pass
            woken.clear()
        async for item in original_next(wait=False, limit=limit):
            yield item

    ops.Runs.next = staticmethod(next_run)
    ops.Runs.put = staticmethod(put)


def patch_when_serving() -> None:
    """Applies the patch when the CLI hands the app to uvicorn, i.e. after `run_server` has set
    the environment that langgraph_api reads at import: modules load in their shipped order."""
    import uvicorn

    serve = uvicorn.run

    def run(*args, **kwargs):
        patch_queue_poll()
        print(f"patched: {PATCH}", flush=True)
        return serve(*args, **kwargs)

    uvicorn.run = run


def write_config(directory: Path) -> Path:
    graph_file = Path(__file__).with_name("langgraph_graph.py").resolve()
    config = {
        "dependencies": ["."],
        "graphs": {name: f"{graph_file}:{name}" for name in GRAPHS},
    }
    path = directory / "langgraph.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def announce_when_ready(port: int, deadline_s: float = 60.0) -> None:
    """Prints `listening <port>` once the server answers `GET /ok` (bounded)."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=1) as response:
                if response.status == 200:
                    print(f"listening {port}", flush=True)
                    return
        except OSError:
            pass
        time.sleep(0.05)
    print("not ready", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", choices=("best", "shipped"), default="best")
    parser.add_argument(
        "--workdir",
        help="for langgraph.json and the runtime's dumps (default: a new temporary directory)",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help=f"--n-jobs-per-worker (best: {BEST_JOBS})"
    )
    args = parser.parse_args()
    # Nothing calls home: no version check, no CLI analytics, no LangSmith tracing.
    os.environ.update(
        LANGGRAPH_NO_VERSION_CHECK="true", LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false"
    )
    jobs = args.jobs
    if args.profile == "best":
        patch_when_serving()
        os.environ.update(BEST_ENV)
        jobs = BEST_JOBS if jobs is None else jobs
    settings = " ".join(f"{k}={v}" for k, v in BEST_ENV.items()) if args.profile == "best" else ""
    print(f"profile {args.profile}: n_jobs_per_worker={jobs or 1} {settings}".rstrip(), flush=True)
    from langgraph_cli.cli import cli

    # The working directory also receives the in-memory runtime's periodic dumps (.langgraph_api).
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="langgraph-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir)
    os.chdir(workdir)
    threading.Thread(target=announce_when_ready, args=(args.port,), daemon=True).start()
    argv = ["dev", "--config", str(config), "--no-browser", "--no-reload"]
    argv += ["--host", "127.0.0.1", "--port", str(args.port)]
    if jobs is not None:
        argv += ["--n-jobs-per-worker", str(jobs)]
    cli.main(args=argv, prog_name="langgraph", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
