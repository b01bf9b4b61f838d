"""The benchmark's human-readable report: every target beside its measurement (pass/fail), Parley
beside LangGraph Agent Server (issue 19) with the ratio of each figure, every cell as a markdown
table, a latency-distribution PNG, and a py-spy profile summary."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

SERVICES = (
    ("gateway", "/gateway/"),
    ("api (store)", "/services/api/"),
    ("runner", "/services/runner/"),
    ("tooling", "/services/tooling/"),
    ("common", "/services/common/"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


# --- profile ------------------------------------------------------------------------------------


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame.strip())
        out.append((m.group("func"), m.group("file")) if m else (frame.strip(), ""))
    return out


def _service(file: str) -> str | None:
    path = "/" + file.lstrip("/")
    for name, marker in SERVICES:
        if marker in path:
            return name
    return None


def _package(file: str) -> str:
    """The top-level package of a frame's file (py-spy prints paths relative to sys.path)."""
    service = _service(file)
    if service:
        return f"parley:{service}"
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif "/lib/python3" in file:
        file = file.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return file.lstrip("/").split("/", 1)[0].removesuffix(".py") or "?"


# Libraries whose inclusive share (any frame of the sample's stack) the report shows; the MCP
# client path is the union of the SDK and its HTTP/async stack.
INCLUSIVE = {
    "SQLAlchemy + sqlite3/asyncpg + greenlet": (
        "sqlalchemy/",
        "sqlite3/",
        "asyncpg/",
        "greenlet",
    ),
    "MCP client (mcp SDK, anyio, httpx2, httpcore2)": ("mcp/", "anyio/", "httpx2/", "httpcore2/"),
    "boto3/botocore (Converse)": ("botocore/", "boto3/", "urllib3/"),
    "protobuf json_format": ("json_format",),
    "gRPC (Python parts)": ("grpc/",),
    "uvicorn": ("uvicorn/",),
    "logging": ("logging/",),
    "prometheus_client": ("prometheus_client/",),
    "PyJWT": ("jwt/",),
}


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summarize_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: the share of samples per Parley service (the innermost
    Parley frame of each sample), per package of the leaf frame, and the top Parley functions and
    leaf functions."""
    per_service: Counter[str] = Counter()
    per_package: Counter[str] = Counter()
    parley_funcs: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    per_service_pkg: dict[str, Counter[str]] = {}
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = _frames(stack)
        for label, markers in INCLUSIVE.items():
            if any(marker in stack for marker in markers):
                inclusive[label] += n
        leaf_func, leaf_file = frames[-1]
        pkg = _package(leaf_file)
        per_package[pkg] += n
        leaves[f"{leaf_func} ({_short(leaf_file)})"] += n
        owner = "outside any Parley frame (event loop, gRPC/uvicorn machinery)"
        for func, file in reversed(frames):
            service = _service(file)
            if service:
                owner = service
                parley_funcs[f"{service}: {_short(file)}:{func}"] += n
                break
        per_service[owner] += n
        per_service_pkg.setdefault(owner, Counter())[pkg] += n

    def share(counter: Counter[str], k: int = top) -> list[list[Any]]:
        return [[name, n, round(100 * n / max(1, total), 1)] for name, n in counter.most_common(k)]

    return {
        "samples": total,
        "per_service": share(per_service),
        "per_service_top_packages": {
            owner: share(pkgs, 5) for owner, pkgs in per_service_pkg.items()
        },
        "per_leaf_package": share(per_package),
        "inclusive_libraries": share(inclusive, len(INCLUSIVE)),
        "top_parley_functions": share(parley_funcs),
        "top_leaf_functions": share(leaves),
    }


# --- targets ------------------------------------------------------------------------------------


def _get(cells: dict[str, Any], name: str, *path: str) -> Any:
    value: Any = cells.get(name)
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, target, measured, verdict) for each of issue 6's targets."""
    cells = result["cells"]
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    for scenario, limit in (("no_tool", 8.0), ("one_tool", 15.0)):
        p50 = _get(cells, f"sequential/sqlite/{scenario}/sse", "latency", "p50_ms")
        rows.append(
            (
                f"`{scenario}` turn p50, SSE wait",
                f"≤ {limit:.0f} ms",
                _fmt(p50, " ms"),
                verdict(None if p50 is None else p50 <= limit),
            )
        )
    tput = {
        int(k.rsplit("=", 1)[1]): v
        for k, v in cells.items()
        if k.startswith("throughput/sqlite/one_tool/n=")
    }
    cpu_cell = tput.get(32) or (tput[max(tput)] if tput else None)
    cpu = cpu_cell.get("parley_cpu_ms_per_turn") if cpu_cell else None
    seq_cpu = _get(cells, "sequential/sqlite/one_tool/sse", "parley_cpu_ms_per_turn")
    where = f"N={cpu_cell['concurrency']}" if cpu_cell else ""
    rows.append(
        (
            "Parley CPU per `one_tool` turn",
            "≤ 10 ms",
            f"{_fmt(cpu, ' ms')} ({where}); sequential {_fmt(seq_cpu, ' ms')}",
            verdict(None if cpu is None else cpu <= 10.0),
        )
    )
    if tput:
        best_n = max(tput, key=lambda n: tput[n]["turns_per_s"])
        best = tput[best_n]["turns_per_s"]
        top_n = max(tput)
        at_top = tput[top_n]["turns_per_s"]
        no_collapse = at_top >= 0.8 * best
        rows.append(
            (
                "`one_tool` throughput, best N",
                "≥ 120 turns/s, and no collapse at N = 128 (≥ 80 % of best)",
                f"{best:.1f}/s at N={best_n}; {at_top:.1f}/s at N={top_n}",
                verdict(best >= 120 and no_collapse if top_n >= 128 else None),
            )
        )
    else:
        rows.append(("`one_tool` throughput, best N", "≥ 120 turns/s", "n/a", "n/a"))
    get_cpu = _get(cells, "get_run_cpu", "parley_cpu_ms_per_get")
    rows.append(
        (
            "CPU per `GET /agents/runs/{id}`",
            "≤ 0.5 ms",
            _fmt(get_cpu, " ms", 2),
            verdict(None if get_cpu is None else get_cpu <= 0.5),
        )
    )
    inflight = cells.get("inflight/as shipped")
    if inflight:
        wall = inflight.get("all_terminal_s")
        ok = (
            inflight["runs"] >= 2000
            and wall is not None
            and wall <= 5.0
            and inflight["rss_peak_mb"] <= 400
            and inflight["errors"] == 0
        )
        measured = (
            f"{inflight['runs']} runs: {inflight['terminal']} terminal, "
            f"{'all in ' + _fmt(wall, ' s') if wall is not None else 'NOT all'}; "
            f"peak RSS {inflight['rss_peak_mb']:.0f} MB; {inflight['errors']} errors"
        )
        rows.append(
            (
                "2,000 in-flight runs, 1 s model (as shipped)",
                "all terminal within 5 s wall, peak RSS ≤ 400 MB, 0 errors",
                measured,
                verdict(ok) if inflight["runs"] >= 2000 else f"{verdict(ok)} (reduced run)",
            )
        )
    disc = _get(cells, "discovery", "servers", "3", "p50_ms")
    rows.append(
        (
            "discovery of 3 servers × 200 ms",
            "≤ 250 ms per run",
            _fmt(disc, " ms (p50)"),
            verdict(None if disc is None else disc <= 250),
        )
    )
    one, two = cells.get("scaleout/postgres/each=1"), cells.get("scaleout/postgres/each=2")
    if one and two:
        once = one["exactly_once_violations"] == 0 and two["exactly_once_violations"] == 0
        measured = (
            f"1 of each {one['turns_per_s']:.1f}/s, 2 of each {two['turns_per_s']:.1f}/s "
            f"(×{two['turns_per_s'] / max(one['turns_per_s'], 1e-9):.2f}); inference jobs = "
            f"iterations: {one['inference_jobs']}={one['iterations']}, "
            f"{two['inference_jobs']}={two['iterations']}; violations "
            f"{one['exactly_once_violations'] + two['exactly_once_violations']}"
        )
        rows.append(
            (
                "1 and 2 api + gateway + runner processes on PostgreSQL",
                "every run executed once (inference jobs = iterations); both throughputs shown",
                measured,
                verdict(once),
            )
        )
    else:
        rows.append(("1 and 2 of each process on PostgreSQL", "…", "not run", "n/a"))
    chaos = cells.get("chaos/postgres")
    if chaos:
        rows.append(
            (
                "kill -9 of api, gateway and runner processes under load (2 of each)",
                "0 lost, 0 duplicated",
                chaos["summary"],
                verdict(chaos["lost"] == 0 and chaos["duplicated"] == 0),
            )
        )
    pickups = [
        p
        for name, cell in cells.items()
        if name.startswith("sequential/sqlite/")
        for p in cell.get("pickups_ms", [])
    ]
    p95 = _pct(pickups, 0.95)
    rows.append(
        (
            "pickup delay (accepted → running) p95, idle",
            "≤ 2 ms",
            f"{_fmt(p95, ' ms', 2)} (n={len(pickups)}, p50 {_fmt(_pct(pickups, 0.5), ' ms', 2)})",
            verdict(None if p95 is None else p95 <= 2.0),
        )
    )
    return rows


# --- side by side with LangGraph (issue 19) -------------------------------------------------------

PEER_NOTE = (
    "Same machine, same invocation, same load client (aiohttp, three requests a turn: create,"
    " start a run, follow its event stream to the end); each server pinned to one core, the load"
    " client and the fakes to the other. LangGraph Agent Server is `langgraph dev` (in-memory"
    " runtime) in its best-case profile (below); its model is a zero-latency function and its tool"
    " an in-process function, while Parley's model is the fake Converse server over HTTP, its tool"
    " a real MCP server over HTTP and its store durable SQLite. The machine is shared and drifts:"
    " absolute figures are noisy, only the ratios measured in one run count."
)


def _peer_tput(cells: dict[str, Any], server: str, length: str) -> dict[int, dict[str, Any]]:
    prefix = f"peer/{server}/one_tool/{length}/n="
    return {int(k[len(prefix) :]): v for k, v in cells.items() if k.startswith(prefix)}


def _best(tput: dict[int, dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
    if not tput:
        return None
    n = max(tput, key=lambda k: tput[k]["turns_per_s"])
    return n, tput[n]


def _ratio(parley: float | None, langgraph: float | None) -> float | None:
    if parley is None or not langgraph:
        return None
    return parley / langgraph


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def peer_lengths(cells: dict[str, Any]) -> list[tuple[str, float]]:
    seen: dict[str, float] = {}
    for name, cell in cells.items():
        if name.startswith("peer/parley/one_tool/"):
            seen.setdefault(cell["length"], cell["seconds"])
    return sorted(seen.items(), key=lambda item: item[1])


def peer_targets(result: dict[str, Any]) -> list[list[str]]:
    """(measure, Parley, LangGraph, Parley ÷ LangGraph, target, verdict) for issue 19's targets;
    the throughput, CPU and no-collapse rows once per cell length."""
    cells = result["cells"]
    rows: list[list[str]] = []

    def seq(server: str, scenario: str, *path: str) -> Any:
        return _get(cells, f"peer/{server}/sequential/{scenario}", *path)

    for length, seconds in peer_lengths(cells):
        ns = ", ".join(str(n) for n in sorted(_peer_tput(cells, "parley", length)))
        where = f"{length} cells, {seconds:g} s, of N = {ns}"
        p = _best(_peer_tput(cells, "parley", length))
        lg = _best(_peer_tput(cells, "langgraph", length))
        ratio = _ratio(p[1]["turns_per_s"] if p else None, lg[1]["turns_per_s"] if lg else None)
        rows.append([
            f"`one_tool` throughput, best N ({where})",
            f"{p[1]['turns_per_s']:.1f}/s (N={p[0]})" if p else "n/a",
            f"{lg[1]['turns_per_s']:.1f}/s (N={lg[0]})" if lg else "n/a",
            _x(ratio), "≥ 2.0×", _verdict(None if ratio is None else ratio >= 2.0),
        ])  # fmt: skip
        pc = p[1].get("server_cpu_ms_per_turn") if p else None
        lc = lg[1].get("server_cpu_ms_per_turn") if lg else None
        ratio = _ratio(pc, lc)
        rows.append([
            f"server CPU per `one_tool` turn at saturation (each at its best N; {where})",
            f"{_fmt(pc, ' ms', 2)} (N={p[0]})" if p else "n/a",
            f"{_fmt(lc, ' ms', 2)} (N={lg[0]})" if lg else "n/a",
            _x(ratio), "≤ 0.5×", _verdict(None if ratio is None else ratio <= 0.5),
        ])  # fmt: skip
        collapse = []
        for server, best in (("parley", p), ("langgraph", lg)):
            at_top = _peer_tput(cells, server, length).get(128)
            if best and at_top:
                share = at_top["turns_per_s"] / best[1]["turns_per_s"]
                text = f"{share:.2f}× ({at_top['turns_per_s']:.1f} vs "
                text += f"{best[1]['turns_per_s']:.1f}/s at N={best[0]})"
                collapse.append((share, text))
            else:
                collapse.append((None, "n/a"))
        rows.append([
            f"throughput at N = 128 vs best N ({where})", collapse[0][1], collapse[1][1], "",
            "≥ 0.95× (Parley's)",
            _verdict(None if collapse[0][0] is None else collapse[0][0] >= 0.95),
        ])  # fmt: skip
    for scenario in ("one_tool", "no_tool"):
        pv = seq("parley", scenario, "latency", "p50_ms")
        lv = seq("langgraph", scenario, "latency", "p50_ms")
        ratio = _ratio(pv, lv)
        rows.append([
            f"`{scenario}` p50, sequential", _fmt(pv, " ms", 2), _fmt(lv, " ms", 2), _x(ratio),
            "≤ 0.6×", _verdict(None if ratio is None else ratio <= 0.6),
        ])  # fmt: skip
    pv = _get(cells, "peer/parley/get_run", "server_cpu_ms_per_get")
    lv = _get(cells, "peer/langgraph/get_run", "server_cpu_ms_per_get")
    ratio = _ratio(pv, lv)
    rows.append([
        "CPU per `GET /agents/runs/{id}` vs per LangGraph `GET /threads/{t}/runs/{r}`",
        _fmt(pv, " ms", 3), _fmt(lv, " ms", 3), _x(ratio), "≤ 0.5×",
        _verdict(None if ratio is None else ratio <= 0.5),
    ])  # fmt: skip
    inflight = cells.get("inflight/as shipped")
    if inflight:
        wall = inflight.get("all_terminal_s")
        ok = (
            wall is not None
            and wall <= 5.0
            and inflight["rss_peak_mb"] <= 400
            and inflight["errors"] == 0
        )
        full = inflight["runs"] >= 2000
        rows.append([
            "2,000 runs in flight, 1 s model (Parley only; unpinned, as the in-flight cell runs)",
            f"{inflight['runs']} runs: {inflight['terminal']} terminal, "
            f"{'all in ' + _fmt(wall, ' s') if wall is not None else 'NOT all'}; peak RSS "
            f"{inflight['rss_peak_mb']:.0f} MB; {inflight['errors']} errors",
            "—", "", "all terminal ≤ 5 s wall, ≤ 400 MB, 0 errors",
            _verdict(ok) if full else f"{_verdict(ok)} (reduced run: {inflight['runs']} runs)",
        ])  # fmt: skip
    else:
        rows.append(["2,000 runs in flight, 1 s model (Parley only)", "not run", "—", "",
                     "all terminal ≤ 5 s wall, ≤ 400 MB, 0 errors", "n/a"])  # fmt: skip
    return rows


def peer_section(result: dict[str, Any]) -> list[str]:
    cells = result["cells"]
    if not any(name.startswith("peer/") for name in cells):
        return []
    parts = ["", "## Targets (issue 19): Parley beside LangGraph Agent Server", "", PEER_NOTE, ""]
    if result.get("langgraph"):
        parts += [f"**{result['langgraph']}**", ""]
    parts += [
        _table(
            ["measure", "Parley", "LangGraph (best case)", "Parley ÷ LangGraph", "target",
             "verdict"],
            peer_targets(result),
        ),
        "",
        f"Pinning: {result.get('peer_pinning', 'n/a')}.",
    ]  # fmt: skip
    if result.get("langgraph_profile"):
        parts += [
            "",
            "LangGraph's best-case profile (tests/bench/langgraph_server.py), as it said:",
        ]
        parts += [f"- {line}" for line in result["langgraph_profile"]]
    shipped = cells.get("peer/langgraph-shipped/sequential/one_tool")
    if shipped:
        best = _get(cells, "peer/langgraph/sequential/one_tool", "latency", "p50_ms")
        parts += [
            f"- why: LangGraph as shipped (`langgraph dev`, no patch, one job, INFO logs) took"
            f" {_fmt(shipped['latency']['p50_ms'], ' ms')} p50 per sequential `one_tool` turn"
            f" ({shipped['turns']} turns), against {_fmt(best, ' ms')} in its best case."
        ]

    def pair(name: str, *path: str, digits: int = 2) -> list[str]:
        pv = _get(cells, f"peer/parley/{name}", *path)
        lv = _get(cells, f"peer/langgraph/{name}", *path)
        return [_fmt(pv, "", digits), _fmt(lv, "", digits), _x(_ratio(pv, lv))]

    rows = []
    for scenario in ("no_tool", "one_tool"):
        name = f"sequential/{scenario}"
        rows += [
            [f"`{scenario}` sequential", "p50 ms", *pair(name, "latency", "p50_ms")],
            [f"`{scenario}` sequential", "p95 ms", *pair(name, "latency", "p95_ms")],
            [f"`{scenario}` sequential", "p99 ms", *pair(name, "latency", "p99_ms")],
            [f"`{scenario}` sequential", "server CPU ms/turn",
             *pair(name, "server_cpu_ms_per_turn")],
            [f"`{scenario}` sequential", "turns", *pair(name, "turns", digits=0)],
        ]  # fmt: skip
    rows += [
        ["GET run (8 pollers)", "server CPU ms/GET",
         *pair("get_run", "server_cpu_ms_per_get", digits=3)],
        ["GET run (8 pollers)", "p50 ms", *pair("get_run", "latency", "p50_ms")],
        ["GET run (8 pollers)", "GETs", *pair("get_run", "gets", digits=0)],
    ]  # fmt: skip
    parts += [
        "",
        "### Sequential turns and GET cost, side by side",
        "",
        _table(["cell", "measure", "Parley", "LangGraph", "Parley ÷ LangGraph"], rows),
    ]
    rows = []
    for length, seconds in peer_lengths(cells):
        p, lg = _peer_tput(cells, "parley", length), _peer_tput(cells, "langgraph", length)
        for n in sorted(set(p) | set(lg)):
            pc, lc = p.get(n, {}), lg.get(n, {})

            def trio(*path: str, digits: int = 1, pc=pc, lc=lc) -> list[str]:
                pv, lv = _get({"c": pc}, "c", *path), _get({"c": lc}, "c", *path)
                return [_fmt(pv, "", digits), _fmt(lv, "", digits), _x(_ratio(pv, lv))]

            def quarters(cell: dict[str, Any]) -> str:
                q = cell.get("quarters_turns_per_s")
                return f"{q[0]:.0f} → {q[-1]:.0f}" if q else "n/a"

            def busy(cell: dict[str, Any]) -> str:
                if "server_core_busy" not in cell:
                    return "n/a"
                return f"{cell['server_core_busy']:.2f} / {cell['client_core_busy']:.2f}"

            rows.append([
                f"{length} {seconds:g} s", n, *trio("turns_per_s"),
                *trio("server_cpu_ms_per_turn", digits=2), *trio("latency", "p50_ms"),
                quarters(pc), quarters(lc), busy(pc), busy(lc),
                f"{pc.get('errors', 'n/a')} / {lc.get('errors', 'n/a')}",
            ])  # fmt: skip
    parts += [
        "",
        "### `one_tool` throughput, side by side (fresh server per cell)",
        "",
        "Quarters: turns/s finished in the first and the last quarter of the cell. Busy: CPU"
        " seconds per wall second on the servers' core (the server) / on the other core (load"
        " client + fakes); 1.00 is a full core.",
        "",
        _table(
            ["cell", "N", "Parley turns/s", "LangGraph turns/s", "÷", "Parley CPU ms/turn",
             "LangGraph CPU ms/turn", "÷", "Parley p50 ms", "LangGraph p50 ms", "÷",
             "Parley quarters", "LangGraph quarters", "Parley busy", "LangGraph busy",
             "errors P / LG"],
            rows,
        ),
    ]  # fmt: skip
    return parts


def machine_speed(result: dict[str, Any]) -> list[str]:
    """The calibration cell: the performance-floor note's reference blocks measured now, and the
    main CPU and latency figures divided by the factor (what they would be on the machine the
    note measured, which is where issue 6's targets were set). Verdicts stay on the raw figures."""
    cells = result["cells"]
    cal = cells.get("calibration")
    if not cal:
        return []
    factor = cal["factor"]
    rows = [
        [block, f"{cal['note_ms'][block]:.2f}", f"{ms:.2f}", f"{ms / cal['note_ms'][block]:.2f}×"]
        for block, ms in cal["measured_ms"].items()
    ]
    scaled = [
        ("`no_tool` p50 SSE", _get(cells, "sequential/sqlite/no_tool/sse", "latency", "p50_ms")),
        ("`one_tool` p50 SSE", _get(cells, "sequential/sqlite/one_tool/sse", "latency", "p50_ms")),
        (
            "CPU per `one_tool` turn (sequential)",
            _get(cells, "sequential/sqlite/one_tool/sse", "parley_cpu_ms_per_turn"),
        ),
        ("CPU per GET", _get(cells, "get_run_cpu", "parley_cpu_ms_per_get")),
    ]
    # A smoke run's few calls can all fall inside one tick of the CPU clock: no factor then.
    divided = "; ".join(
        f"{name} {_fmt(v / factor, ' ms', 2)}" for name, v in scaled if v and factor
    )
    return [
        "",
        "## Machine speed (calibration)",
        "",
        "The performance-floor note's reference blocks (client + server CPU per call, one at a"
        " time, in processes of their own), measured at the start of this run:",
        "",
        _table(["block", "note (ms)", "now (ms)", "now / note"], rows),
        "",
        f"Factor (geometric mean): **{factor:.2f}×**. Divided by it, as on the note's machine: "
        f"{divided or 'n/a'}.",
    ]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- markdown -----------------------------------------------------------------------------------


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def streaming_report(cells: dict[str, Any]) -> list[str]:
    """The streaming cells (tests/bench/streaming.py) as a table, with the coalescing rule."""
    cpu = cells.get("streaming/cpu")
    if not cpu:
        return []
    rows = [
        (
            "CPU per no_tool turn, stream off (Converse)",
            _fmt(cpu["parley_cpu_ms_per_turn_stream_off"], " ms"),
        ),
        (
            "CPU per no_tool turn, stream on (ConverseStream, one chunk)",
            _fmt(cpu["parley_cpu_ms_per_turn_stream_on"], " ms"),
        ),
        ("stream on / off (target <= 1.20)", _fmt(cpu["stream_on_over_off"], "", 3)),
    ]
    for name, cell in cells.items():
        if name.startswith("streaming/long/"):
            pace = f"{cell['tokens_per_s']} tokens/s" if cell["tokens_per_s"] else "all at once"
            head = f"{cell['tokens']}-token reply, {pace}:"
            rows += [
                (
                    f"{head} store writes for its deltas (the commit has the rest)",
                    str(cell["store_writes_for_deltas"]),
                ),
                (f"{head} message.delta events a client read", str(cell["delta_events"])),
                (f"{head} time to first token at the runner", _fmt(cell["ttft_runner_ms"], " ms")),
                (
                    f"{head} first message.delta at the client, from POST run",
                    _fmt(cell["first_delta_at_client_ms"], " ms"),
                ),
            ]
    rule = (
        f"Coalescing rule (services/runner/outbox.py): a delta waits until the oldest waiting one "
        f"is {cpu['flush_after_ms']:.0f} ms old or {cpu['flush_chars']:,} characters wait, "
        "then all that waits goes in one store write, one write in flight per run; what is left "
        "goes with the turn's own write."
    )
    table = ["| figure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
    return ["## Streaming (issue 18)", "", *table, "", rule, ""]


def markdown(result: dict[str, Any]) -> str:
    cells = result["cells"]
    m = result["machine"]
    parts = [
        f"# Parley benchmark ({result['mode']})",
        "",
        f"{m['cpus']} CPUs, Python {m['python']}, {m['platform']}; started {result['started_at']};"
        f" bench wall {_fmt(result.get('bench_wall_s'), ' s', 0)}; total errors "
        f"**{result['errors']}**; event streams ended without a terminal event "
        f"**{result.get('sse_incomplete', 0)}**. CPU columns are per turn: Parley (whole process"
        " tree), the fake Converse server, the fake MCP server and the load client, each"
        " measured apart.",
    ]
    parts += peer_section(result)
    parts += [
        "",
        "## Targets (issue 6)",
        "",
        _table(["measure", "target", "measured", "verdict"], [list(r) for r in targets(result)]),
    ]
    parts += machine_speed(result)
    parts += ["", *streaming_report(cells)]
    if result.get("postgres"):
        parts += ["", f"**{result['postgres']}**"]

    seq = [
        [
            c["db"], c["scenario"], c["wait"], c["turns"],
            _fmt(c["latency"]["p50_ms"]), _fmt(c["latency"]["p95_ms"]),
            _fmt(c["latency"]["p99_ms"]),
            _fmt(c.get("parley_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("fake_converse_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("fake_mcp_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("client_cpu_ms_per_turn"), "", 2),
            _fmt(c["pickup_ms"]["p95"], "", 2), c["errors"],
        ]
        for name, c in cells.items()
        if name.startswith("sequential/")
    ]  # fmt: skip
    parts += [
        "",
        "## Sequential latency (one client; ms)",
        "",
        _table(
            ["db", "scenario", "wait", "turns", "p50", "p95", "p99", "Parley CPU/turn",
             "fake Converse CPU/turn", "fake MCP CPU/turn", "client CPU/turn", "pickup p95",
             "errors"],
            seq,
        ),
    ]  # fmt: skip
    tput = [
        [
            c["db"], c["scenario"], c["concurrency"], c["turns"], _fmt(c["turns_per_s"]),
            _fmt(c["latency"]["p50_ms"]), _fmt(c["latency"]["p95_ms"]),
            _fmt(c["latency"]["p99_ms"]), _fmt(c.get("parley_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("fake_converse_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("fake_mcp_cpu_ms_per_turn"), "", 2),
            _fmt(c.get("client_cpu_ms_per_turn"), "", 2),
            f"{c['rss_idle_mb']:.0f} / {c['rss_peak_mb']:.0f}", c["errors"],
        ]
        for name, c in cells.items()
        if name.startswith("throughput/")
    ]  # fmt: skip
    parts += [
        "",
        "## Throughput (N concurrent clients, SSE wait, fresh server per cell)",
        "",
        _table(
            ["db", "scenario", "N", "turns", "turns/s", "p50 ms", "p95 ms", "p99 ms",
             "Parley CPU ms/turn", "fake Converse", "fake MCP", "client", "RSS idle/peak MB",
             "errors"],
            tput,
        ),
    ]  # fmt: skip
    get = cells.get("get_run_cpu")
    if get:
        parts += [
            "",
            "## CPU per `GET /agents/runs/{id}` (finished one_tool run, 8 pollers)",
            "",
            _table(
                ["GETs", "Parley CPU ms/GET", "client CPU ms/GET", "p50 ms", "p99 ms", "errors"],
                [
                    [
                        get["gets"],
                        _fmt(get["parley_cpu_ms_per_get"], "", 3),
                        _fmt(get["client_cpu_ms_per_get"], "", 3),
                        _fmt(get["latency"]["p50_ms"], "", 2),
                        _fmt(get["latency"]["p99_ms"], "", 2),
                        get["errors"],
                    ]
                ],
            ),
        ]
    infl = [
        [
            c["variant"], c["runs"], c["model_delay_s"], c["terminal"],
            _fmt(c.get("all_terminal_s"), " s")
            if c.get("all_terminal_s") is not None
            else f"{c.get('not_terminal_at_deadline', '?')} late at {c['deadline_s']:.0f} s",
            _fmt(c["wall_s"], " s"),
            f"{c['rss_idle_mb']:.0f} / {c['rss_peak_mb']:.0f}", _fmt(c["parley_cpu_s"], " s"),
            c["errors"], "; ".join(c.get("error_samples", []))[:160],
        ]
        for name, c in cells.items()
        if name.startswith("inflight/")
    ]  # fmt: skip
    if infl:
        parts += [
            "",
            "## In-flight scale (runs started at once, slow fake model)",
            "",
            _table(
                ["variant", "runs", "model s/call", "terminal", "all terminal after",
                 "cell wall", "RSS idle/peak MB", "Parley CPU", "errors", "first errors"],
                infl,
            ),
        ]  # fmt: skip
    disc = cells.get("discovery")
    if disc:
        parts += [
            "",
            "## MCP discovery per run (servers answering tools/list after 200 ms each)",
            "",
            _table(
                ["servers", "p50 ms", "p95 ms", "min ms", "max ms"],
                [
                    [k, v["p50_ms"], v["p95_ms"], v["min_ms"], v["max_ms"]]
                    for k, v in disc["servers"].items()
                ],
            ),
        ]
    scale = [
        [
            c["each"], c["concurrency"], c["turns"], _fmt(c["turns_per_s"]),
            _fmt(c["latency"]["p50_ms"]), _fmt(c["latency"]["p95_ms"]),
            _fmt(c.get("parley_cpu_ms_per_turn"), "", 2), c["runs_in_db"],
            c["inference_jobs"], c["iterations"], _fmt(c["inference_jobs_per_run"], "", 2),
            c["converse_calls_in_window"], c["exactly_once_violations"], c["errors"],
            ", ".join(f"{k} {v:.2f}" for k, v in c.get("cores_by_process", {}).items()),
        ]
        for name, c in cells.items()
        if name.startswith("scaleout/")
    ]  # fmt: skip
    if scale:
        parts += [
            "",
            "## Scale-out: `parley serve` api, gateway and runner ×N + tooling, one PostgreSQL",
            "",
            _table(
                ["of each", "N", "turns", "turns/s", "p50 ms", "p95 ms", "Parley CPU ms/turn",
                 "runs in db", "inference jobs", "iterations", "jobs/run",
                 "Converse calls in window", "exactly-once violations", "errors",
                 "cores used by process"],
                scale,
            ),
        ]  # fmt: skip
    prof = cells.get("profile")
    if prof and prof.get("samples"):
        parts += [
            "",
            f"## Where the time goes: py-spy on `parley up`, one_tool turns by 4 clients "
            f"({prof['samples']} samples, {prof['turns']} turns; raw stacks in {prof['raw']})",
            "",
            "Share of Parley's sampled CPU by the innermost Parley frame of each sample:",
            "",
            _table(["owner", "samples", "%"], prof["per_service"]),
            "",
            "Inclusive share of libraries (the sample's stack contains them; rows overlap):",
            "",
            _table(["library", "samples", "%"], prof.get("inclusive_libraries", [])),
            "",
            "Top packages under each owner (leaf frame's package):",
            "",
            _table(
                ["owner", "top packages (%)"],
                [
                    [owner, ", ".join(f"{p} {pc}%" for p, _, pc in pkgs)]
                    for owner, pkgs in prof["per_service_top_packages"].items()
                ],
            ),
            "",
            "Top Parley functions (innermost Parley frame; includes what they call):",
            "",
            _table(["function", "samples", "%"], prof["top_parley_functions"]),
            "",
            "Top leaf functions (self time):",
            "",
            _table(["function", "samples", "%"], prof["top_leaf_functions"]),
        ]
    elif prof:
        parts += ["", f"Profile: {prof.get('skipped', 'no samples')}"]
    errs = [
        f"- {name}: {'; '.join(c.get('error_samples', []))[:400]}"
        for name, c in cells.items()
        if c.get("errors")
    ]
    if errs:
        parts += ["", "## Errors", "", *errs]
    incomplete = [
        f"- {name}: {c['sse_incomplete']} (e.g. runs {', '.join(c['sse_incomplete_runs'][:3])})"
        for name, c in cells.items()
        if c.get("sse_incomplete")
    ]
    if incomplete:
        parts += [
            "",
            "## Event streams that ended without their terminal event",
            "",
            "The stream closed cleanly before `run.completed`/`run.requires_action`/`run.failed`;"
            " the client then read the run by GET (it was terminal and right, so the turn is not"
            " an error). A Parley bug, counted here:",
            "",
            *incomplete,
        ]
    return "\n".join(parts) + "\n"


# --- plot ---------------------------------------------------------------------------------------


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["cells"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for name, c in cells.items():
        if name.startswith("sequential/") and c.get("latencies_ms"):
            values = sorted(c["latencies_ms"])
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax1.plot(values, ys, label=f"{c['db']} {c['scenario']} {c['wait']}")
    ax1.set_xscale("log")
    ax1.set_xlabel("turn latency (ms, log)")
    ax1.set_ylabel("fraction of turns ≤ x")
    ax1.set_title("Sequential turn latency (CDF)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    tput = sorted(
        (c["concurrency"], c["turns_per_s"], c["latency"]["p50_ms"] or 0)
        for name, c in cells.items()
        if name.startswith("throughput/sqlite/one_tool/")
    )
    if tput:
        ns = [t[0] for t in tput]
        ax2.plot(ns, [t[1] for t in tput], "o-", label="turns/s")
        ax2.set_xscale("log", base=2)
        ax2.set_xlabel("concurrent clients N")
        ax2.set_ylabel("one_tool turns/s (SQLite, SSE)")
        ax2.axhline(120, color="red", linestyle="--", label="target 120/s")
        twin = ax2.twinx()
        twin.plot(ns, [t[2] for t in tput], "s--", color="gray", label="p50 ms")
        twin.set_ylabel("p50 latency ms")
        ax2.legend(loc="upper left", fontsize=8)
        ax2.set_title("Throughput vs concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
