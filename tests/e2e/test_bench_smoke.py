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
from tests.bench.client import TurnError, check_langgraph
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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One `--smoke` run of the whole bench (its output directory and bench.json), shared by the
    tests below."""
    out = tmp_path_factory.mktemp("bench-smoke")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    proc = subprocess.run(
        # --out relative to the bench's working directory, as `make bench` passes it (the
        # cells' own processes run in directories of their own)
        [sys.executable, "-m", "tests.bench.run", "--smoke", "--out", out.name],
        check=False,
        cwd=out.parent,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, json.loads((out / "bench.json").read_text())


@pytest.mark.timeout(180)
def test_bench_smoke_runs_and_every_turn_is_right(smoke: tuple[Path, dict]) -> None:
    tmp_path, result = smoke
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
    if "postgres" not in result:  # PostgreSQL answered: two of each process ran against it
        cell = cells["scaleout/postgres/each=2"]
        assert cell["turns"] > 0 and cell["exactly_once_violations"] == 0
        assert cell["inference_jobs"] == cell["iterations"]
        listing = cells["listing/postgres"]["at_1000"]  # pages of GET /agents/runs, explained
        assert listing["all_api_cpu_ms_per_page"] >= 0
        assert listing["explain"]["deep_page"]["plan"].startswith("Limit")
    assert cells["streaming/cpu"]["turns_each"] > 0 and cells["streaming/cpu"]["errors"] == 0
    long = cells["streaming/long/unpaced"]  # its 1,000 tokens arrived whole, in order
    assert long["errors"] == 0 and long["delta_events"] >= 1
    report_text = (tmp_path / "report.md").read_text()
    assert "## Targets (issue 6)" in report_text and "pickup delay" in report_text
    assert "## Streaming (issue 18)" in report_text
    assert (tmp_path / "latency.png").stat().st_size > 0


def _peer_cells_ran(cells: dict, server: str) -> None:
    for name in ("sequential/no_tool", "sequential/one_tool", "one_tool/short/n=4"):
        cell = cells[f"peer/{server}/{name}"]
        assert cell["turns"] > 0 and cell["errors"] == 0, (name, cell.get("error_samples"))
        assert cell["server_cpu_s"] > 0
    get = cells[f"peer/{server}/get_run"]
    assert get["gets"] > 0 and get["errors"] == 0


@pytest.mark.timeout(180)
def test_bench_smoke_runs_parley_pinned_for_the_side_by_side(smoke: tuple[Path, dict]) -> None:
    """The peer group's Parley half always runs: `parley up` on one core, the client on the
    other, and the report's issue-19 table is there (its LangGraph column n/a without it)."""
    tmp_path, result = smoke
    _peer_cells_ran(result["cells"], "parley")
    if (os.cpu_count() or 1) >= 2:
        assert result["peer_pinning"].startswith("server (parley up")
    assert "## Targets (issue 19)" in (tmp_path / "report.md").read_text()


@pytest.mark.timeout(180)
def test_bench_smoke_runs_langgraph_beside_parley(smoke: tuple[Path, dict]) -> None:
    """With .venv-langgraph (`make bench` builds it; `make test` does not), LangGraph Agent
    Server answers the same turns, every one checked, in its best-case profile."""
    tmp_path, result = smoke
    if "langgraph" in result:
        pytest.skip(result["langgraph"])
    _peer_cells_ran(result["cells"], "langgraph")
    assert any(line.startswith("patched: ") for line in result["langgraph_profile"])
    text = (tmp_path / "report.md").read_text()
    assert "LangGraph's best-case profile" in text and "Runs.next" in text


def test_peer_targets_compare_parley_with_langgraph() -> None:
    """The issue-19 verdicts are Parley ÷ LangGraph against each target, per cell length."""

    def tput(turns_per_s: float, cpu: float) -> dict:
        return {"turns_per_s": turns_per_s, "server_cpu_ms_per_turn": cpu, "length": "short",
                "seconds": 3.0}  # fmt: skip

    def seq(p50: float) -> dict:
        return {"latency": {"p50_ms": p50}}

    cells = {
        "peer/parley/one_tool/short/n=8": tput(250.0, 3.0),
        "peer/parley/one_tool/short/n=128": tput(240.0, 3.1),
        "peer/langgraph/one_tool/short/n=8": tput(100.0, 8.0),
        "peer/langgraph/one_tool/short/n=128": tput(50.0, 9.0),
        "peer/parley/sequential/one_tool": seq(5.0),
        "peer/langgraph/sequential/one_tool": seq(10.0),
        "peer/parley/sequential/no_tool": seq(7.0),
        "peer/langgraph/sequential/no_tool": seq(10.0),
        "peer/parley/get_run": {"server_cpu_ms_per_get": 0.2},
        "peer/langgraph/get_run": {"server_cpu_ms_per_get": 0.5},
    }
    rows = {row[0].split(" (")[0]: row for row in report.peer_targets({"cells": cells})}
    assert rows["`one_tool` throughput, best N"][3:] == ["2.50×", "≥ 2.0×", "PASS"]
    assert rows["server CPU per `one_tool` turn at saturation"][3] == "0.38×"
    assert rows["server CPU per `one_tool` turn at saturation"][5] == "PASS"
    assert rows["throughput at N = 128 vs best N"][1].startswith("0.96×")
    assert rows["throughput at N = 128 vs best N"][5] == "PASS"
    assert rows["`one_tool` p50, sequential"][3:] == ["0.50×", "≤ 0.6×", "PASS"]
    assert rows["`no_tool` p50, sequential"][3:] == ["0.70×", "≤ 0.6×", "FAIL"]
    get = next(row for name, row in rows.items() if name.startswith("CPU per `GET"))
    assert get[3:] == ["0.40×", "≤ 0.5×", "PASS"]
    assert rows["2,000 runs in flight, 1 s model"][5] == "n/a"


def test_langgraph_turn_check_counts_each_model_message_once() -> None:
    """A LangGraph join can deliver an event both replayed and live; the turn's check counts
    model messages by id, and a wrong answer or an error event fails the turn."""
    call = {"model": {"messages": [{"id": "m1", "content": "", "tool_calls": [{"id": "t"}]}]}}
    tool = {"tools": {"messages": [{"id": "t1", "content": "echo:ping"}]}}
    done = {"model": {"messages": [{"id": "m2", "content": "done: echo:ping"}]}}
    events = [("metadata", {}), ("updates", call), ("updates", call), ("updates", tool),
              ("updates", done)]  # fmt: skip
    check_langgraph("r", events, "done: echo:ping", 2)
    with pytest.raises(TurnError):
        check_langgraph("r", events[:-1], "done: echo:ping", 2)
    with pytest.raises(TurnError):
        check_langgraph("r", [*events, ("error", {"message": "boom"})], "done: echo:ping", 2)


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
