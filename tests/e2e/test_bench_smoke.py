"""The benchmark never rots: its smoke path (a few turns per cell, `parley up` and `parley serve`
in their own processes, the fakes in theirs) runs inside `make test`. Only that it runs and that
every turn's result was right are asserted, never a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import report
from tests.bench.fake_converse import answer

REPO = Path(__file__).resolve().parents[2]


def test_fake_converse_answers_by_the_request() -> None:
    assert answer({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})["output"][
        "message"
    ]["content"] == [{"text": "4"}]
    tools = {"tools": [{"toolSpec": {"name": "bench-echo"}}]}
    first = answer(
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "toolConfig": tools}
    )
    assert first["stopReason"] == "tool_use"
    assert first["output"]["message"]["content"][0]["toolUse"]["name"] == "bench-echo"
    result = {"toolResult": {"toolUseId": "t", "content": [{"text": "echo:ping"}]}}
    second = answer({"messages": [{"role": "user", "content": [result]}], "toolConfig": tools})
    assert second["output"]["message"]["content"] == [{"text": "done: echo:ping"}]


def test_profile_summary_attributes_samples_to_services() -> None:
    raw = (
        "run (uvloop/__init__.py:1);handle (/work/main/gateway/app.py:10);"
        "dumps (site-packages/orjson.py:3) 3\n"
        "run (uvloop/__init__.py:1);claim (/work/main/services/api/lifecycle.py:5);"
        "execute (site-packages/sqlalchemy/engine/base.py:9) 1\n"
    )
    summary = report.summarize_profile(raw)
    assert summary["samples"] == 4
    assert summary["per_service"][0][:2] == ["gateway", 3]
    assert ["api (store)", 1, 25.0] in summary["per_service"]


@pytest.mark.timeout(180)
def test_bench_smoke_runs_and_every_turn_is_right(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--smoke", "--out", str(tmp_path)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "bench.json").read_text())
    cells = result["cells"]
    assert result["errors"] == 0
    for scenario in ("no_tool", "one_tool", "caller_tool"):
        for wait in ("sse", "poll"):
            cell = cells[f"sequential/sqlite/{scenario}/{wait}"]
            assert cell["turns"] > 0 and cell["errors"] == 0
    assert cells["throughput/sqlite/one_tool/n=4"]["turns"] > 0
    assert cells["get_run_cpu"]["gets"] > 0
    inflight = cells["inflight/as shipped"]
    assert inflight["terminal"] == inflight["runs"] and inflight["errors"] == 0
    if "postgres" not in result:  # PostgreSQL answered: two runners ran against it
        cell = cells["scaleout/postgres/runners=2"]
        assert cell["turns"] > 0 and cell["exactly_once_violations"] == 0
        assert cell["inference_jobs"] == cell["iterations"]
    report_text = (tmp_path / "report.md").read_text()
    assert "## Targets (issue 6)" in report_text and "pickup delay" in report_text
    assert (tmp_path / "latency.png").stat().st_size > 0


def _comparison(module: str) -> str:
    """Runs a tests/bench comparison script with a few iterations; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", module, "--n", "20"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "relative to Parley's way" in result.stdout
    return result.stdout


def test_store_transaction_comparison_runs() -> None:
    """tests/bench/store_tx.py (the measurement behind the store's one-hop transactions) runs
    every row; its figures are printed, not asserted."""
    out = _comparison("tests.bench.store_tx")
    assert "aiosqlite not installed" not in out
    assert out.count("ms CPU") == 5


def test_converse_call_comparison_runs() -> None:
    """tests/bench/converse_call.py (the measurement behind the provider's async calls) runs every
    row against the fake Converse server; its figures are printed, not asserted."""
    assert _comparison("tests.bench.converse_call").count("ms CPU") == 6


def test_mcp_call_comparison_runs() -> None:
    """tests/bench/mcp_call.py (the measurement behind the tool router's aiohttp pool) runs every
    row against the fake MCP server; its figures are printed, not asserted."""
    assert _comparison("tests.bench.mcp_call").count("ms CPU") == 6
