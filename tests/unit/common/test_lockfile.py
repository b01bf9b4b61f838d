"""constraints.txt against pyproject.toml: the committed pair fits, and each way of going stale
is caught (a dependency added, a minimum raised) while a reformatted list is not."""

from __future__ import annotations

import re

from services.common import lockfile

PYPROJECT = lockfile.PYPROJECT.read_text()
CONSTRAINTS = lockfile.CONSTRAINTS.read_text()


def test_the_committed_constraints_fit_pyproject() -> None:
    assert lockfile.problems(PYPROJECT, CONSTRAINTS) == []


def test_a_new_dependency_makes_the_lock_stale() -> None:
    changed = PYPROJECT.replace("dependencies = [\n", 'dependencies = [\n  "rich>=13",\n', 1)
    assert changed != PYPROJECT
    found = lockfile.problems(changed, CONSTRAINTS)
    assert "rich is not pinned" in found
    assert any("changed since constraints.txt was written" in p for p in found)


def test_a_raised_minimum_the_pin_misses_makes_the_lock_stale() -> None:
    pin = next(line for line in CONSTRAINTS.splitlines() if line.startswith("grpcio=="))
    major = int(pin.split("==")[1].split(".")[0])
    changed, replaced = re.subn(r'"grpcio>=[^"]*"', f'"grpcio>={major + 1}"', PYPROJECT, count=1)
    assert replaced == 1
    found = lockfile.problems(changed, CONSTRAINTS)
    assert f"{pin} does not satisfy `grpcio>={major + 1}`" in found


def test_the_build_requirements_are_pinned_and_checked() -> None:
    """The image builds Parley's wheel in an isolated environment held to these pins too."""
    assert any(line.startswith("setuptools==") for line in CONSTRAINTS.splitlines())
    changed, replaced = re.subn(r'"setuptools>=[^"]*"', '"setuptools>=9999"', PYPROJECT, count=1)
    assert replaced == 1
    found = lockfile.problems(changed, CONSTRAINTS)
    assert any(p.startswith("setuptools==") and "does not satisfy" in p for p in found), found
    assert any("changed since constraints.txt was written" in p for p in found)


def test_formatting_and_order_do_not_count() -> None:
    project = PYPROJECT.split("dependencies = [\n", 1)
    head, rest = project[0], project[1]
    deps, tail = rest.split("]\n", 1)
    reordered = "\n".join(reversed([d for d in deps.splitlines() if d.strip()]))
    assert lockfile.digest(f"{head}dependencies = [\n{reordered}\n]\n{tail}") == lockfile.digest(
        PYPROJECT
    )


def test_render_heads_the_pins_with_the_digest() -> None:
    text = lockfile.render(PYPROJECT, {"grpcio": "1.70.0"})
    assert f"pyproject-dependencies-sha256: {lockfile.digest(PYPROJECT)}" in text
    assert text.endswith("grpcio==1.70.0\n")
