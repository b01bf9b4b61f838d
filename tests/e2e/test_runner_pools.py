"""Executor pools: two `parley serve runner --cluster NAME` processes, one per cluster, on one
store (SQLite and PostgreSQL). Each runner claims only its cluster's runs and holds only its
cluster's credential; a run whose cluster has no runner stays pending, even while the other
runner is idle, until a runner for it comes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.common import catalogue
from tests import catalogues
from tests.fakes import chat_completions as fc
from tests.internal import INTERNAL_SECRET
from tests.spec_examples import DATA_PLANE, example_defaults

from .conftest import SECRET
from .runner_suite import RunnerSuite, running_runner_suite, unique

POOLS = f"""
[[data_planes]]
id = "{DATA_PLANE}"
companies = ["*"]

[[clusters]]
name = "pool-a"
provider = "openai"
base_url = "CHAT_URL/v1"
api_key_env = "{catalogues.KEY_ENV}"
companies = ["*"]

[[clusters]]
name = "pool-b"
provider = "cortex"
base_url = "CHAT_URL"
token_env = "{catalogues.PAT_ENV}"
companies = ["*"]

[[models]]
id = "anthropic.claude-opus-4.6"
cortex = "claude-opus-4-6"
openai = "{catalogues.OPENAI_OPUS}"
"""


def spawn_runner(
    rs: RunnerSuite, catalogue_file: Path, cluster: str, credential: str, log: Path
) -> subprocess.Popen[bytes]:
    """`parley serve runner --cluster <cluster>` holding only that cluster's credential."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PARLEY_", "AWS_")) and key not in catalogues.ENVIRON
    }
    env.update(
        {
            "PARLEY_JWT_SECRET": SECRET,
            "PARLEY_INTERNAL_SECRET": INTERNAL_SECRET,
            "PARLEY_STORE_ADDR": rs.settings.store_addr,
            "PARLEY_TOOLING_ADDR": rs.settings.tooling_addr,
            "PARLEY_RUNNER_ADDR": "127.0.0.1:0",
            "PARLEY_METRICS_PORT": "0",
            "PARLEY_CATALOGUE": str(catalogue_file),
            credential: catalogues.ENVIRON[credential],
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "runner", "--cluster", cluster],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


async def test_each_runner_takes_only_its_clusters_runs(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    catalogue_file = tmp_path / "catalogue.toml"

    def pools(chat_url: str) -> catalogue.Catalogue:
        text = POOLS.replace("CHAT_URL", chat_url)
        catalogue_file.write_text(text)
        return catalogue.parse(text, str(catalogue_file))

    async with running_runner_suite(
        await make_database_url(), with_runner=False, catalogue=pools
    ) as rs:

        async def run(cluster: str, reply: str) -> tuple[str, str]:
            """A run on `cluster` (in a conversation of its own) the fake answers `reply`."""
            question = unique(f"Which pool? {reply}")
            rs.chat.on(question, fc.text(reply))
            defaults = example_defaults(execution_cluster=cluster)
            conversation = await rs.create_conversation(defaults=defaults)
            return str((await rs.start_run(conversation["id"], question))["id"]), question

        logs = tmp_path / "runner-a.log", tmp_path / "runner-b.log"
        runner_a = spawn_runner(rs, catalogue_file, "pool-a", catalogues.KEY_ENV, logs[0])
        runner_b = spawn_runner(rs, catalogue_file, "pool-b", catalogues.PAT_ENV, logs[1])
        try:
            runs = [await run("pool-a", f"a{i}") for i in range(3)]
            runs += [await run("pool-b", f"b{i}") for i in range(3)]
            done = [await rs.wait_run(run_id, deadline_s=60) for run_id, _ in runs]
            assert [d["final_text"] for d in done] == ["a0", "a1", "a2", "b0", "b1", "b2"], done
            for (_, question), d in zip(runs, done, strict=True):
                # a pool-a run went out through runner A's provider (openai, with its key), a
                # pool-b run through runner B's (cortex, with the PAT): neither holds the other's
                (request,) = rs.chat.requests_for(question)
                on_b = d["final_text"].startswith("b")
                assert request.cortex == on_b
                expected = fc.PAT if on_b else catalogues.LOCAL_KEY
                assert request.headers["authorization"] == f"Bearer {expected}"

            stop(runner_b)  # pool-b has no runner now
            waiting, _ = await run("pool-b", "b-late")
            after, _ = await run("pool-a", "a-late")  # queued after it, for the idle runner A
            assert (await rs.wait_run(after, deadline_s=30))["final_text"] == "a-late"
            assert (await rs.get_run(waiting))["status"] == "pending"  # A never took it

            runner_b = spawn_runner(rs, catalogue_file, "pool-b", catalogues.PAT_ENV, logs[1])
            assert (await rs.wait_run(waiting, deadline_s=30))["final_text"] == "b-late"
        except BaseException:
            for log in logs:
                print(f"--- {log.name}\n{log.read_text()}")
            raise
        finally:
            stop(runner_a)
            stop(runner_b)


async def test_an_unknown_cluster_stops_the_runner_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    env.update({"PARLEY_JWT_SECRET": SECRET, "PARLEY_INTERNAL_SECRET": INTERNAL_SECRET})
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "serve", "runner", "--cluster", "nowhere"],
        env={**env, "PARLEY_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--cluster nowhere: no such execution cluster" in result.stderr, result.stderr
    assert "it has: shared" in result.stderr
