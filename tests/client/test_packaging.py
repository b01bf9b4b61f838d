"""parley-client is its own distribution: it imports nothing of Parley's server packages and
declares only what it imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_PACKAGES = {"agents", "services", "gateway", "tests"}


def _imported_roots() -> set[str]:
    roots: set[str] = set()
    for source in (CLIENT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def test_the_client_imports_no_server_package() -> None:
    assert not _imported_roots() & SERVER_PACKAGES
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, parley_client; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({sorted(SERVER_PACKAGES)!r})))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=CLIENT,
    )
    assert loaded.stdout.strip() == "[]"


def test_the_client_declares_exactly_its_third_party_imports() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "parley-client"
    declared = {d.split(">")[0].split("=")[0].strip() for d in project["dependencies"]}
    third_party = _imported_roots() - set(sys.stdlib_module_names) - {"parley_client"}
    assert third_party == declared == {"httpx", "pydantic"}
