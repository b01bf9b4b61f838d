"""The pagination envelope of GET /agents/conversations and `since` paging of messages."""

from __future__ import annotations

import itertools

import pytest
from agents.v1 import message_pb2, run_pb2

from tests.blocks import text

from .conftest import Suite
from .problems import assert_problem

_users = itertools.count(100)


async def _user_with(suite: Suite, count: int) -> tuple[tuple[int, int], list[str]]:
    user = (7, next(_users))
    ids = [(await suite.create_conversation(user=user, name=f"c{i}"))["id"] for i in range(count)]
    return user, ids


async def _page(suite: Suite, user: tuple[int, int], **params: object) -> dict:
    response = await suite.http.get(
        "/agents/conversations", params=params, headers=suite.headers(*user)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_empty_list(suite: Suite) -> None:
    user, _ = await _user_with(suite, 0)
    assert await _page(suite, user) == {
        "prev_page": None,
        "current_page": 1,
        "next_page": None,
        "total_records": 0,
        "total_pages": 0,
        "records": [],
    }


async def test_pages_newest_first(suite: Suite) -> None:
    user, ids = await _user_with(suite, 5)
    first = await _page(suite, user, page=1, per_page=2)
    assert (
        first["prev_page"],
        first["current_page"],
        first["next_page"],
        first["total_records"],
        first["total_pages"],
    ) == (None, 1, 2, 5, 3)
    middle = await _page(suite, user, page=2, per_page=2)
    last = await _page(suite, user, page=3, per_page=2)
    assert (middle["prev_page"], middle["next_page"]) == (1, 3)
    assert (last["prev_page"], last["next_page"], len(last["records"])) == (2, None, 1)
    seen = [c["id"] for page in (first, middle, last) for c in page["records"]]
    assert seen == list(reversed(ids))
    record = first["records"][0]
    assert record["name"] == "c4" and record["version"] == 0 and "defaults" in record


async def test_exact_multiple_and_beyond_the_end(suite: Suite) -> None:
    user, _ = await _user_with(suite, 4)
    last = await _page(suite, user, page=2, per_page=2)
    assert (last["next_page"], last["total_pages"], len(last["records"])) == (None, 2, 2)
    beyond = await _page(suite, user, page=5, per_page=2)
    assert beyond["records"] == [] and beyond["next_page"] is None
    assert beyond["current_page"] == 5 and beyond["total_records"] == 4


async def test_default_and_maximum_per_page(suite: Suite) -> None:
    user, _ = await _user_with(suite, 3)
    assert len((await _page(suite, user))["records"]) == 3
    capped = await _page(suite, user, per_page=100000)
    assert capped["total_pages"] == 1 and len(capped["records"]) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"per_page": 0},
        {"per_page": -5},
        {"page": "abc"},
        {"per_page": "1.5"},
        {"page": "99999999999999"},
        {"colour": "blue"},
    ],
)
async def test_bad_paging_parameters(suite: Suite, params: dict) -> None:
    response = await suite.http.get("/agents/conversations", params=params, headers=suite.headers())
    assert_problem(response, 400, "invalid-request", detail_has=next(iter(params)))


async def test_since_paging(fresh_suite: Suite) -> None:
    suite = fresh_suite
    conversation = await suite.create_conversation()
    run = (await suite.start_run(conversation["id"])).json()
    await suite.claim()
    turns = [
        message_pb2.Message(role=message_pb2.ROLE_ASSISTANT, content_blocks=[text(f"t{i}")])
        for i in range(6)
    ]
    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=1,
        final_text="t5",
        usage=run_pb2.Usage(),
        submitted_inference_job_ids=["j"],
    )
    assert (await suite.commit(run["id"], done, *turns)).version == 7
    path = f"/agents/conversations/{conversation['id']}/messages"

    seen, since = [], 0
    for _ in range(10):
        page = (
            await suite.http.get(
                path, params={"since": since, "per_page": 3}, headers=suite.headers()
            )
        ).json()
        assert page["current_version"] == 7
        seen += [m["sequence_no"] for m in page["messages"]]
        if page["next_since"] is None:
            break
        since = page["next_since"]
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    at_head = (await suite.http.get(path, params={"since": 7}, headers=suite.headers())).json()
    assert at_head == {"current_version": 7, "messages": [], "next_since": None}
    assert_problem(
        await suite.http.get(path, params={"since": -1}, headers=suite.headers()),
        400,
        "invalid-request",
        detail_has="since",
    )
