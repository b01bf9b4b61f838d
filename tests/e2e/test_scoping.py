"""Identity: 401 without a valid token, 403 without the scope, 404 for anyone else's objects."""

from __future__ import annotations

import uuid

import pytest

from services.common.auth import READ_SCOPE, WRITE_SCOPE

from .conftest import Suite
from .problems import assert_problem


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer garbage", "Basic dXNlcjpw"])
async def test_missing_or_bad_token_is_401(suite: Suite, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (
        ("GET", "/agents/conversations"),
        ("POST", "/agents/conversations"),
        ("GET", f"/agents/runs/{uuid.uuid4()}"),
    ):
        response = await suite.http.request(
            method, path, headers=headers, json={} if method == "POST" else None
        )
        assert_problem(response, 401, "unauthenticated")


async def test_scopes_are_enforced(suite: Suite) -> None:
    reader = suite.headers(scope=READ_SCOPE)
    writer = suite.headers(scope=WRITE_SCOPE)
    assert_problem(
        await suite.http.post("/agents/conversations", json={}, headers=reader),
        403,
        "permission-denied",
        detail_has=WRITE_SCOPE,
    )
    assert_problem(
        await suite.http.get("/agents/conversations", headers=writer),
        403,
        "permission-denied",
        detail_has=READ_SCOPE,
    )
    assert (await suite.http.get("/agents/conversations", headers=reader)).status_code == 200


@pytest.mark.parametrize(
    "intruder", [(1, 2), (2, 1)], ids=["same-company-other-user", "other-company-same-user-id"]
)
async def test_other_users_objects_are_404_like_missing_ones(
    suite: Suite, intruder: tuple[int, int]
) -> None:
    conversation = await suite.create_conversation(user=(1, 1), name="private")
    run = (await suite.start_run(conversation["id"])).json()
    them = suite.headers(*intruder)
    cid, rid = conversation["id"], run["id"]
    missing_c, missing_r = str(uuid.uuid4()), str(uuid.uuid4())
    for path, slug in (
        (f"/agents/conversations/{cid}", "conversation-not-found"),
        (f"/agents/conversations/{cid}/messages", "conversation-not-found"),
        (f"/agents/runs/{rid}", "run-not-found"),
        (f"/agents/runs/{rid}/inference_jobs", "run-not-found"),
    ):
        theirs = assert_problem(await suite.http.get(path, headers=them), 404, slug)
        missing_path = path.replace(cid, missing_c).replace(rid, missing_r)
        absent = assert_problem(await suite.http.get(missing_path, headers=them), 404, slug)
        assert theirs["title"] == absent["title"]
        assert theirs["detail"].replace(cid, "X").replace(rid, "X") == absent["detail"].replace(
            missing_c, "X"
        ).replace(missing_r, "X")
    assert_problem(await suite.start_run(cid, user=intruder), 404, "conversation-not-found")
    listed = (
        await suite.http.get("/agents/conversations", params={"per_page": 200}, headers=them)
    ).json()
    assert cid not in {c["id"] for c in listed["records"]}


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "1", "%20", "00000000-0000-0000-0000-00000000000g"]
)
async def test_malformed_ids_are_404(suite: Suite, bad_id: str) -> None:
    assert_problem(
        await suite.http.get(f"/agents/conversations/{bad_id}", headers=suite.headers()),
        404,
        "conversation-not-found",
    )
    assert_problem(
        await suite.http.get(f"/agents/runs/{bad_id}", headers=suite.headers()),
        404,
        "run-not-found",
    )
    assert_problem(
        await suite.http.get(f"/agents/runs/{bad_id}/inference_jobs", headers=suite.headers()),
        404,
        "run-not-found",
    )
