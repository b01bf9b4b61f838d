"""The router's matching (pure: no sockets): precedence, `**` at any depth, verbs, 404 vs 405."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.http_rule import parse
from gateway.routes import Endpoint, ProblemError, Request, Router


async def _handler(request: Request) -> None:  # never called: only matching is tested
    raise AssertionError


ROUTER = Router(
    [
        Endpoint(method, parse(template), _handler)
        for method, template in (
            ("GET", "/a/{id}"),
            ("GET", "/a/b"),
            ("POST", "/a/{id}:cancel"),
            ("GET", "/files/{path=**}"),
            ("DELETE", "/a/{id}"),
            ("GET", "/"),
        )
    ],
    "https://docs.example",
)


def _match(method: str, path: str) -> tuple[str, dict[str, str]]:
    endpoint, bindings = ROUTER._match({"method": method, "path": path})
    return endpoint.template.template, bindings


@pytest.mark.parametrize(
    ("method", "path", "template", "bindings"),
    [
        ("GET", "/a/b", "/a/b", {}),
        ("GET", "/a/c", "/a/{id}", {"id": "c"}),
        ("DELETE", "/a/b", "/a/{id}", {"id": "b"}),
        ("POST", "/a/r1:cancel", "/a/{id}:cancel", {"id": "r1"}),
        ("GET", "/files", "/files/{path=**}", {"path": ""}),
        ("GET", "/files/x", "/files/{path=**}", {"path": "x"}),
        ("GET", "/files/1/2/3/4/5/6/7", "/files/{path=**}", {"path": "1/2/3/4/5/6/7"}),
        ("GET", "/", "/", {}),
    ],
)
def test_matches(method: str, path: str, template: str, bindings: dict[str, str]) -> None:
    assert _match(method, path) == (template, bindings)


def _problem(method: str, path: str) -> Any:
    with pytest.raises(ProblemError) as info:
        ROUTER._match({"method": method, "path": path})
    return info.value


@pytest.mark.parametrize("path", ["/a", "/a/b/c", "/a/b/c/d/e/f/g/h", "/b/c", "relative"])
def test_unknown_paths_are_404(path: str) -> None:
    assert _problem("GET", path).problem.status == 404


def test_known_path_other_method_is_405_with_allow() -> None:
    error = _problem("PUT", "/a/b")
    assert error.problem.status == 405
    assert dict(error.headers) == {b"allow": b"DELETE, GET"}
