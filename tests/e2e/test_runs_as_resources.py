"""Runs as resources through the REST gateway with the real runner on the fake Bedrock: prompt
cache points and the cache figures they earn, each run's cost from the fake's usage at the
catalogue price, the listings, usage totals, client-chosen run ids with Parley-Start-Outcome,
and all of it in /openapi.json."""

from __future__ import annotations

import uuid

import pytest

from services.common import catalogue
from tests.fakes import bedrock as fb
from tests.spec_examples import example_defaults

from .runner_suite import RunnerSuite, unique

MODEL = example_defaults()["model"]
LONG_SYSTEM = "You are a meticulous assistant. " * 200  # ~6,400 characters: worth caching


def cost_usd(usage: dict[str, int]) -> float:
    """The run's cost by hand, at the packaged catalogue's price for the model."""
    price = catalogue.packaged().models[MODEL].price
    assert price is not None and price.cache_read_per_mtok and price.cache_write_per_mtok
    return (
        usage["prompt_tokens"] * price.input_per_mtok
        + usage["completion_tokens"] * price.output_per_mtok
        + usage["cache_read_input_tokens"] * price.cache_read_per_mtok
        + usage["cache_write_input_tokens"] * price.cache_write_per_mtok
    ) / 1e6


async def test_cache_points_cache_figures_cost_listing_and_usage(rs: RunnerSuite) -> None:
    user = (uuid.uuid4().int % 10**6 + 10, 1)
    conversation = await rs.create_conversation(user, system_prompt=LONG_SYSTEM)
    question = unique("cache me")
    rs.bedrock.on(question, fb.text("one", tokens=(40, 5)), fb.text("two", tokens=(60, 7)))
    done = []
    for n in range(2):
        r = await rs.post_run(
            conversation["id"],
            user,
            expected_version=2 * n,
            payload={"kind": "user_message", "text": question if n == 0 else "again"},
        )
        assert r.status_code == 202 and r.headers["parley-start-outcome"] == "accepted", r.text
        done.append(await rs.wait_run(r.json()["id"], user=user))
    sent = rs.bedrock.requests_for(question)
    assert [c.body["system"][-1] for c in sent] == [{"cachePoint": {"type": "default"}}] * 2
    (prefix, _), *_ = fb.cache_prefixes(sent[0].body)
    assert prefix >= fb.CACHE_MIN_TOKENS
    assert [(c.cache_read, c.cache_write) for c in sent] == [(0, prefix), (prefix, 0)]
    for run, call, scripted in zip(done, sent, ((40, 5), (60, 7)), strict=True):
        usage = run["usage"]
        assert usage == {
            "prompt_tokens": scripted[0],
            "completion_tokens": scripted[1],
            "cache_read_input_tokens": call.cache_read,
            "cache_write_input_tokens": call.cache_write,
            "total_tokens": sum(scripted) + call.cache_read + call.cache_write,
        }
        assert run["total_cost_usd"] == pytest.approx(cost_usd(usage), abs=1e-9)
        assert run["cache_hit_rate"] == pytest.approx(
            call.cache_read / (scripted[0] + call.cache_read + call.cache_write)
        )
        assert run["duration_ms"] >= 0 and run["execution_started_at"] >= run["started_at"]
        assert run["metadata"] == {} and len(run["trace_id"]) == 32
    assert done[0]["cache_hit_rate"] == 0

    headers = rs.headers(*user)
    listed = await rs.http.get("/agents/runs", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["runs"]] == [done[1]["id"], done[0]["id"]]
    assert "live" not in listed.json()["runs"][0] and listed.json()["next_before"] is None
    path = f"/agents/conversations/{conversation['id']}/runs"
    page = (await rs.http.get(path, params={"limit": 1}, headers=headers)).json()
    assert [r["id"] for r in page["runs"]] == [done[1]["id"]]
    rest = await rs.http.get(
        path, params={"before": page["next_before"], "status": "completed"}, headers=headers
    )
    assert rest.status_code == 200, rest.text
    assert [r["id"] for r in rest.json()["runs"]] == [done[0]["id"]]
    assert rest.json()["next_before"] is None
    elsewhere = await rs.http.get(
        "/agents/runs", params={"before": page["next_before"]}, headers=headers
    )
    assert elsewhere.status_code == 400  # a cursor belongs to its listing
    bad = await rs.http.get("/agents/runs", params={"before": "x"}, headers=headers)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"

    usage = (await rs.http.get("/agents/usage", headers=headers)).json()
    expected = sum(cost_usd(run["usage"]) for run in done)
    assert usage == {
        "models": [
            {
                "model": MODEL,
                "runs": 2,
                "input_tokens": 100,
                "output_tokens": 12,
                "cache_read_input_tokens": prefix,
                "cache_write_input_tokens": prefix,
                "total_cost_usd": pytest.approx(expected, abs=1e-9),
            }
        ],
        "total_cost_usd": pytest.approx(expected, abs=1e-9),
    }


async def test_prompt_caching_off_sends_no_cache_point(rs: RunnerSuite) -> None:
    conversation = await rs.create_conversation(system_prompt=LONG_SYSTEM)
    question = unique("no cache")
    rs.bedrock.on(question, fb.text("ok"))
    run = await rs.start_run(
        conversation["id"], question, config_override={"prompt_caching": False}
    )
    done = await rs.wait_run(run["id"])
    assert done["effective_config"]["prompt_caching"] is False
    (sent,) = rs.bedrock.requests_for(question)
    assert sent.body["system"] == [{"text": LONG_SYSTEM}]
    assert done["usage"]["cache_read_input_tokens"] == 0 and done["cache_hit_rate"] == 0


async def test_client_chosen_run_id_over_rest(rs: RunnerSuite) -> None:
    conversation = await rs.create_conversation()
    question = unique("chosen id")
    rs.bedrock.on(question, fb.text("ok"))
    body = {
        "run_id": str(uuid.uuid4()),
        "client_op_id": str(uuid.uuid4()),
        "metadata": {"ticket": "T-9"},
        "payload": {"kind": "user_message", "text": question},
    }
    first = await rs.post_run(conversation["id"], **body)
    again = await rs.post_run(conversation["id"], **body)
    assert (first.status_code, first.headers["parley-start-outcome"]) == (202, "accepted")
    assert (again.status_code, again.headers["parley-start-outcome"]) == (200, "duplicate")
    assert first.json()["id"] == again.json()["id"] == body["run_id"]
    assert again.json()["metadata"] == {"ticket": "T-9"}
    other = await rs.create_conversation()
    conflict = await rs.post_run(other["id"], **body)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["type"].endswith("/errors/run-id-conflict")
    await rs.wait_run(body["run_id"])


async def test_openapi_has_the_listings_usage_and_the_outcome_header(rs: RunnerSuite) -> None:
    spec = (await rs.http.get("/openapi.json")).json()
    for path in ("/agents/runs", "/agents/conversations/{id}/runs", "/agents/usage"):
        assert "get" in spec["paths"][path], path
    start = spec["paths"]["/agents/conversations/{id}/runs"]["post"]
    assert "Parley-Start-Outcome" in start["responses"]["202"]["headers"]
    params = {p["name"] for p in spec["paths"]["/agents/runs"]["get"]["parameters"]}
    assert {"status", "created_after", "created_before", "limit", "before"} <= params


@pytest.mark.parametrize(
    ("point", "refused"),
    [
        ({"type": "default"}, False),
        ({"type": "default", "ttl": "1h"}, False),
        ({"type": "ephemeral"}, True),
        ({"type": "default", "ttl": "2h"}, True),
        ({"type": "default", "scope": "x"}, True),
    ],
)
def test_the_fake_refuses_malformed_cache_points(point: dict[str, str], refused: bool) -> None:
    body = {"system": [{"text": "s"}, {"cachePoint": point}], "messages": []}
    assert (fb.refusal(body) is not None) == refused
    many = {"system": [{"text": "s"}, *[{"cachePoint": {"type": "default"}}] * 5]}
    assert "maximum of 4" in (fb.refusal(many) or "")
