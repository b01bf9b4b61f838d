"""services/api's modules import each other without cycles, and no other service's package (the
four rooms): read from the source, so a new cycle fails `make test`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "services.api"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each services.api module -> the services.api modules it imports (anywhere in it)."""
    modules = {_module(p): p for p in (ROOT / "services" / "api").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name and t != PACKAGE}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_services_api_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "services.api.run_queue" in graph and graph["services.api.runs"]
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_the_run_queue_does_not_depend_on_the_history_above_it() -> None:
    """The queue knows leases and the event log; runs, reports and conversations use it."""
    queue = import_graph()["services.api.run_queue"]
    above = {"runs", "run_reports", "conversations", "servicer", "store_servicer", "server"}
    assert queue.isdisjoint({f"{PACKAGE}.{name}" for name in above})


def test_services_api_imports_no_other_service() -> None:
    for path in (ROOT / "services" / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("services.runner", "services.tooling", "gateway")), (
                    path,
                    name,
                )
