"""PARLEY_CORS_ORIGINS through the real gateway: preflights from an allowed origin are answered
with the API's methods and headers, its requests (streams included) can read the answer and
`x-request-id`, and any other origin gets no CORS header, so a browser refuses it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .conftest import Suite, running_suite

ALLOWED = "https://console.example"
OTHER = "https://evil.example"


@pytest_asyncio.fixture(scope="module")
async def cors_suite(database_url: str) -> AsyncIterator[Suite]:
    async with running_suite(database_url, cors_origins=(ALLOWED, "http://127.0.0.1:3000")) as s:
        yield s


def _preflight(origin: str, method: str = "POST", headers: str = "authorization,content-type"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered(cors_suite: Suite) -> None:
    r = await cors_suite.http.options("/agents/conversations", headers=_preflight(ALLOWED))
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
    allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "last-event-id"} <= allowed
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers
    stream = await cors_suite.http.options(
        "/agents/runs/x/events", headers=_preflight(ALLOWED, "GET", "authorization,last-event-id")
    )
    assert (
        stream.status_code == 204
        and "last-event-id" in stream.headers["access-control-allow-headers"]
    )


async def test_an_allowed_origin_reads_answers_and_the_request_id(cors_suite: Suite) -> None:
    created = await cors_suite.http.post(
        "/agents/conversations",
        json={"defaults": {"model": "anthropic.claude-opus-4.6", "data_plane_id": "x"}},
        headers={**cors_suite.headers(), "Origin": ALLOWED},
    )
    assert created.status_code == 400  # problems are readable cross-origin too
    assert created.headers["access-control-allow-origin"] == ALLOWED
    assert created.headers["access-control-expose-headers"] == "x-request-id, parley-start-outcome"
    assert created.headers["vary"] == "Origin"
    listed = await cors_suite.http.get(
        "/agents/conversations", headers={**cors_suite.headers(), "Origin": "http://127.0.0.1:3000"}
    )
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    conversation = await cors_suite.create_conversation()
    run = (await cors_suite.start_run(conversation["id"])).json()
    await cors_suite.http.post(f"/agents/runs/{run['id']}/cancel", headers=cors_suite.headers())
    async with cors_suite.http.stream(
        "GET",
        f"/agents/runs/{run['id']}/events",
        headers={**cors_suite.headers(), "Origin": ALLOWED},
    ) as events:
        assert events.status_code == 200
        assert events.headers["access-control-allow-origin"] == ALLOWED
        assert "run.failed" in (await events.aread()).decode()


async def test_other_origins_get_no_cors_headers(cors_suite: Suite) -> None:
    for origin in (OTHER, ALLOWED + ".evil.example", "null", ALLOWED.replace("https", "http")):
        pre = await cors_suite.http.options("/agents/conversations", headers=_preflight(origin))
        assert pre.status_code == 405, origin  # not answered as a preflight: the router's 405
        assert not [h for h in pre.headers if h.startswith("access-control-")], origin
        got = await cors_suite.http.get(
            "/agents/conversations", headers={**cors_suite.headers(), "Origin": origin}
        )
        assert got.status_code == 200
        assert not [h for h in got.headers if h.startswith("access-control-")], origin
        assert got.headers["vary"] == "Origin"


async def test_every_answer_varies_by_origin(cors_suite: Suite) -> None:
    got = await cors_suite.http.get("/agents/conversations", headers=cors_suite.headers())
    assert got.headers["vary"] == "Origin"
    assert not [h for h in got.headers if h.startswith("access-control-")]


async def test_no_cors_headers_by_default(suite: Suite) -> None:
    pre = await suite.http.options("/agents/conversations", headers=_preflight(ALLOWED))
    assert pre.status_code == 405
    got = await suite.http.get(
        "/agents/conversations", headers={**suite.headers(), "Origin": ALLOWED}
    )
    assert not [h for h in got.headers if h.startswith("access-control-")]
    assert "vary" not in got.headers
