"""RFC 7807 problems as typed exceptions, each produced by the real server (or, for 429 and
5xx, by a proxy in front of it acting as a load balancer would)."""

from __future__ import annotations

import socket
import uuid

import pytest

from parley_client import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Parley,
    ParleyAPIError,
    ParleyConnectionError,
    ParleyError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    VersionConflict,
)
from tests.fakes.tcp_proxy import Proxy

from .conftest import Server, example_config


def _problem_fields(error: ParleyAPIError, status: int, slug: str, instance: str) -> None:
    assert error.status == status and error.slug == slug
    assert error.type.endswith(f"/docs/errors/{slug}")
    assert error.title and error.detail
    assert error.instance == instance
    assert error.log_id


def test_400_is_a_bad_request_error_with_every_problem_field(client: Parley) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.conversations.create(defaults=example_config(model="no-such-model"))
    _problem_fields(raised.value, 400, "unknown-model", "/agents/conversations")
    assert "no-such-model" in raised.value.detail
    assert isinstance(raised.value, ParleyAPIError) and isinstance(raised.value, ParleyError)


def test_401_is_an_authentication_error(parley_server: Server) -> None:
    with Parley(parley_server.url, "not-a-token") as anonymous:
        with pytest.raises(AuthenticationError) as raised:
            anonymous.conversations.list()
    _problem_fields(raised.value, 401, "unauthenticated", "/agents/conversations")


def test_403_is_a_permission_denied_error(parley_server: Server, user: int) -> None:
    reader = parley_server.token(user, scope="agent_conversations:read")
    with Parley(parley_server.url, reader) as read_only:
        assert read_only.conversations.list().total_records == 0
        with pytest.raises(PermissionDeniedError) as raised:
            read_only.conversations.create(defaults=example_config())
    _problem_fields(raised.value, 403, "permission-denied", "/agents/conversations")


def test_404_is_a_not_found_error_for_missing_and_foreign_objects(
    client: Parley, parley_server: Server
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as raised:
        client.conversations.get(missing)
    _problem_fields(raised.value, 404, "conversation-not-found", f"/agents/conversations/{missing}")
    with pytest.raises(NotFoundError):
        client.runs.get(missing)
    with pytest.raises(NotFoundError):
        list(client.runs.stream(missing))  # before the first event: a problem, not a stream
    theirs = client.conversations.create(defaults=example_config())
    with Parley(parley_server.url, parley_server.token(parley_server.new_user())) as other:
        with pytest.raises(NotFoundError):
            other.conversations.get(theirs.id)


def test_409_conflicts_and_the_distinct_version_conflict(client: Parley) -> None:
    conversation = client.conversations.create(defaults=example_config())
    done = client.runs.wait(client.runs.start(conversation.id, "hi").id)
    with pytest.raises(VersionConflict) as stale:
        client.runs.start(conversation.id, "again", expected_version=0)
    _problem_fields(
        stale.value, 409, "version-conflict", f"/agents/conversations/{conversation.id}/runs"
    )
    assert isinstance(stale.value, ConflictError)
    with pytest.raises(ConflictError) as finished:
        client.runs.cancel(done.id)
    assert type(finished.value) is ConflictError
    _problem_fields(finished.value, 409, "run-not-cancellable", f"/agents/runs/{done.id}/cancel")


def test_429_is_retried_after_retry_after_then_raised_once_retries_are_spent(
    parley_server: Server, proxy: Proxy, user: int
) -> None:
    problem = {"type": "about:blank", "title": "Too Many Requests", "status": 429}
    proxy.answer("GET", "/agents/conversations", 429, problem, headers={"retry-after": "0"})
    with Parley(proxy.url, parley_server.token(user), max_retries=1) as patient:
        assert patient.conversations.list().total_records == 0
    assert len(proxy.seen("GET", "/agents/conversations")) == 2
    proxy.answer("GET", "/agents/conversations", 429, {**problem, "detail": "slow down"})
    with Parley(proxy.url, parley_server.token(user), max_retries=0) as hasty:
        with pytest.raises(RateLimitError) as raised:
            hasty.conversations.list()
    assert raised.value.status == 429 and raised.value.detail == "slow down"


def test_5xx_is_a_server_error_once_retries_are_spent(
    parley_server: Server, proxy: Proxy, user: int
) -> None:
    proxy.answer(
        "GET",
        "/agents/conversations",
        502,
        {"title": "Bad Gateway", "status": 502, "detail": "upstream reset"},
        times=3,
    )
    with Parley(proxy.url, parley_server.token(user), max_retries=2) as client:
        with pytest.raises(ServerError) as raised:
            client.conversations.list()
    assert raised.value.status == 502 and raised.value.detail == "upstream reset"
    assert len(proxy.seen("GET", "/agents/conversations")) == 3


def test_nothing_listening_is_a_connection_error_after_the_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Parley(f"http://127.0.0.1:{port}", "t", max_retries=1) as client:
        with pytest.raises(ParleyConnectionError):
            client.conversations.list()
