"""Malformed input of every kind gets a 4xx problem+json; nothing reaches a 500."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Suite, example_defaults
from .problems import assert_problem

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{", "json"),
        (b"", "defaults"),  # an empty body is an empty request
        (b"null", "object"),
        (b"[]", "object"),
        (b'"a string"', "object"),
        (b"\xff\xfe", "json"),
        (b'{"name": 5, "defaults": {}}', "name"),
        (b'{"defaults": {"model": ["x"]}}', "defaults.model"),
        (b'{"defaults": {"max_iterations": "three"}}', "max_iterations"),
        (b'{"defaults": {"max_iterations": 2.5}}', "max_iterations"),
        (b'{"defaults": {"max_iterations": 99999999999999999999}}', "max_iterations"),
        (b'{"defaults": {"temperature": "hot"}}', "temperature"),
        (b'{"defaults": {"mcp_servers": {"alias": "x"}}}', "mcp_servers"),
        (b'{"defaults": {"mcp_servers": [5]}}', "mcp_servers"),
        (b'{"defaults": {"tools": [{"name": "a", "input_schema": []}]}}', "input_schema"),
        (b'{"defaults": {}, "surprise": true}', "surprise"),
        (b'{"defaults": {"modle": "typo"}}', "modle"),
        (b'{"name": "\\ud800", "defaults": {}}', ""),
    ],
)
async def test_bad_bodies_for_create(suite: Suite, body: bytes, detail: str) -> None:
    response = await suite.http.post(
        "/agents/conversations", content=body, headers={**suite.headers(), **JSON_HEADERS}
    )
    assert_problem(response, 400, "invalid-request", detail_has=detail)


async def test_wrong_content_type(suite: Suite) -> None:
    response = await suite.http.post(
        "/agents/conversations",
        content=b"name=x",
        headers={**suite.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported-media-type")


async def test_oversized_body(suite: Suite) -> None:
    big = b'{"name": "' + b"x" * (2 << 20) + b'", "defaults": {}}'
    response = await suite.http.post(
        "/agents/conversations", content=big, headers={**suite.headers(), **JSON_HEADERS}
    )
    assert_problem(response, 413, "request-too-large")


async def test_unknown_route_and_method(suite: Suite) -> None:
    assert_problem(
        await suite.http.get("/agents/nothing-here", headers=suite.headers()), 404, "not-found"
    )
    response = await suite.http.delete(f"/agents/runs/{uuid.uuid4()}", headers=suite.headers())
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("depth", "detail"),
    [(100, "nested deeper than"), (5000, "not valid JSON")],  # the codec's guard, the parser's
)
async def test_deeply_nested_json(suite: Suite, depth: int, detail: str) -> None:
    nested = "[" * depth + "]" * depth
    body = ('{"defaults": {"output_format_schema": {"a": ' + nested + "}}}").encode()
    response = await suite.http.post(
        "/agents/conversations", content=body, headers={**suite.headers(), **JSON_HEADERS}
    )
    assert_problem(response, 400, "invalid-request", detail_has=detail)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "defaults",
                    "model",
                    "tools",
                    "mcp_servers",
                    "payload",
                    "kind",
                    "text",
                    "outputs",
                    "tool_choice",
                    "client_op_id",
                    "expected_version",
                    "config_override",
                    "alias",
                    "url",
                    "input_schema",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=json_values)
async def test_random_json_never_reaches_a_500(suite: Suite, body: object) -> None:
    conversation_id = (
        (await suite.create_conversation())["id"]
        if isinstance(body, dict) and body.get("kind")
        else str(uuid.uuid4())
    )
    for path in ("/agents/conversations", f"/agents/conversations/{conversation_id}/runs"):
        response = await suite.http.post(path, json=body, headers=suite.headers())
        assert response.status_code < 500, (path, body, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_valid_body_still_works_after_the_battery(suite: Suite) -> None:
    conversation = await suite.create_conversation(defaults=example_defaults())
    assert (await suite.start_run(conversation["id"])).status_code == 202


@pytest.mark.parametrize(
    ("path", "headers", "status", "detail"),
    [
        ("/events?after_seq=-1", {}, 400, "after_seq"),
        ("/events?after_seq=abc", {}, 400, "after_seq"),
        ("/events?after_seq=1.5", {}, 400, "after_seq"),
        ("/events?after=3", {}, 400, "after"),
        ("/events", {"Last-Event-ID": "not-a-number"}, 400, "last-event-id"),
    ],
)
async def test_bad_event_stream_requests(
    suite: Suite, path: str, headers: dict, status: int, detail: str
) -> None:
    conversation = await suite.create_conversation()
    run = (await suite.start_run(conversation["id"])).json()
    response = await suite.http.get(
        f"/agents/runs/{run['id']}{path}", headers={**suite.headers(), **headers}
    )
    assert_problem(response, status, "invalid-request", detail_has=detail)


@pytest.mark.parametrize(
    ("body", "status"), [(b"", 200), (b"{}", 200), (b'{"reason": "x"}', 400), (b"[", 400)]
)
async def test_cancel_bodies(suite: Suite, body: bytes, status: int) -> None:
    conversation = await suite.create_conversation()
    run = (await suite.start_run(conversation["id"])).json()
    response = await suite.http.post(
        f"/agents/runs/{run['id']}/cancel",
        content=body,
        headers={**suite.headers(), **JSON_HEADERS},
    )
    assert response.status_code == status, response.text
    if status == 200:  # a pending run (no runner in this suite) is cancelled at once
        assert response.json()["status"] == "failed"
        assert response.json()["error"]["type"] == "AgentLoopCancelled"
    else:
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "value",
    [
        "Bearer caf\u00e9".encode("latin-1"),  # a byte over 0x7f
        "Bearer \u00ff\u00fe".encode("latin-1"),
        "Bearer tok\u00e9n".encode(),  # UTF-8: two bytes over 0x7f
    ],
)
async def test_non_ascii_authorization_is_401_not_500(suite: Suite, value: bytes) -> None:
    """gRPC metadata values are printable ASCII: such a header cannot be a token."""
    for path in ("/agents/conversations", f"/agents/runs/{uuid.uuid4()}/events"):
        response = await suite.http.get(path, headers={"Authorization": value})
        assert_problem(response, 401, "unauthenticated", detail_has="authorization")
