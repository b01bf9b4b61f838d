"""Assertions on RFC 7807 answers, shared by the end-to-end tests."""

from __future__ import annotations

import httpx

from .conftest import DOCS

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "log_id"}


def assert_problem(
    response: httpx.Response, status: int, slug: str, *, detail_has: str = ""
) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert set(body) == PROBLEM_FIELDS, body
    assert body["type"] == f"{DOCS}/errors/{slug}", body
    assert body["status"] == status and body["title"] and body["log_id"], body
    assert body["instance"] == response.request.url.path, body
    assert detail_has.lower() in body["detail"].lower(), body
    return body
