"""Execution clusters through the REST gateway and the real runner: a conversation moving between
Bedrock, an OpenAI-compatible server and Snowflake Cortex with tool calls in its history, data
planes and clusters kept per company, GET /agents/models, titles by the model on the run's own
cluster, and a cluster's runner_concurrency and pending count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from prometheus_client import REGISTRY

from services.common import catalogue
from services.common.catalogue import Catalogue
from services.runner.titling import TITLE_PROMPT, title_from
from tests import catalogues
from tests.catalogues import ACME, ACME_DATA_PLANE
from tests.fakes import bedrock as fb
from tests.fakes import chat_completions as fc
from tests.spec_examples import (
    BOOKING_TOOL,
    DATA_PLANE,
    DOCS_SEARCH,
    DOCS_SERVER,
    example_defaults,
)

from .runner_suite import RunnerSuite, running_runner_suite, unique, wait_until

ACME_USER = (ACME, 70)


@pytest_asyncio.fixture(scope="module")
async def mrs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[RunnerSuite]:
    """`shared` on Bedrock, `local` (openai), `snowflake` (cortex), and ACME's own `acme`."""
    async with running_runner_suite(
        await make_database_url(), mcp_allow_private_networks=True, catalogue=catalogues.clusters
    ) as running:
        yield running


async def test_a_conversation_moves_from_bedrock_to_openai_to_cortex_and_back(
    mrs: RunnerSuite, docs_url: str
) -> None:
    """Each run overrides execution_cluster; each provider gets the whole history, tool calls
    and results included, in its own shapes, and the ids one provider made are taken by the next
    (a vLLM-style `functions.search:0` is mapped for Converse, the same for call and result)."""
    question = unique("Plan the offsite: check the docs, then book a slot.")
    mrs.bedrock.on(
        question,
        fb.tool_uses(("tooluse_b1", DOCS_SEARCH, {"query": "offsite"})),
        fb.text("Found the offsite guide."),
    )
    mrs.chat.on(
        question,
        fc.tool_calls(("functions.search:0", DOCS_SEARCH, {"query": "venues"})),  # openai
        fc.text("Venues found."),
        fc.tool_calls(("call:c/1", "confirm_booking", {"proposed_slot": "Friday"})),  # cortex
    )
    conversation = await mrs.create_conversation(
        defaults=example_defaults(
            max_iterations=5, tools=[BOOKING_TOOL], mcp_servers=[{**DOCS_SERVER, "url": docs_url}]
        )
    )
    first = await mrs.start_run(conversation["id"], question)
    assert (await mrs.wait_run(first["id"]))["status"] == "completed"
    second = await mrs.start_run(
        conversation["id"],
        "Now venues.",
        expected_version=4,
        config_override={"execution_cluster": "local"},
    )
    assert (await mrs.wait_run(second["id"]))["final_text"] == "Venues found."
    third = await mrs.start_run(
        conversation["id"],
        "Book Friday.",
        expected_version=8,
        config_override={"execution_cluster": "snowflake"},
    )
    paused = await mrs.wait_run(third["id"])
    assert paused["status"] == "requires_action", paused
    assert paused["pending_tool_calls"][0]["tool_use_id"] == "call:c/1"
    mrs.bedrock.on(question, fb.text("Booked for Friday."))
    resumed = await mrs.start_run(
        conversation["id"],
        expected_version=10,
        payload={"kind": "tool_outputs", "outputs": [{"tool_use_id": "call:c/1", "content": "ok"}]},
        config_override={"execution_cluster": "shared"},
    )
    done = await mrs.wait_run(resumed["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] == "Booked for Friday."

    openai_calls = [r for r in mrs.chat.requests_for(question) if not r.cortex]
    cortex_calls = [r for r in mrs.chat.requests_for(question) if r.cortex]
    assert len(openai_calls) == 2 and len(cortex_calls) == 1
    # The OpenAI-compatible server got Bedrock's calls as tool_calls and tool messages.
    history = openai_calls[0].body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "user"]
    assert history[1]["tool_calls"][0]["id"] == "tooluse_b1"
    assert history[2]["tool_call_id"] == "tooluse_b1"
    assert openai_calls[0].body["model"] == catalogues.OPENAI_OPUS
    # Cortex got both providers' calls.
    ids = [m["tool_calls"][0]["id"] for m in cortex_calls[0].body["messages"] if "tool_calls" in m]
    assert ids == ["tooluse_b1", "functions.search:0"]
    assert cortex_calls[0].body["model"] == "claude-opus-4-6"
    # Bedrock, at the end, got every call with a Converse id, paired with its result.
    last = mrs.bedrock.requests_for(question)[-1].body["messages"]
    uses = [b["toolUse"]["toolUseId"] for m in last for b in m["content"] if "toolUse" in b]
    results = [
        b["toolResult"]["toolUseId"] for m in last for b in m["content"] if "toolResult" in b
    ]
    assert uses == results and uses[0] == "tooluse_b1"
    assert fb.refusal({"messages": last}) is None
    assert "functions.search:0" not in uses and "call:c/1" not in uses
    # The message stream keeps the ids as each provider made them.
    stream = await mrs.messages(conversation["id"])
    made = [
        b["tool_use_id"]
        for m in stream["messages"]
        for b in m["content_blocks"]
        if b["type"] == "tool_use"
    ]
    assert made == ["tooluse_b1", "functions.search:0", "call:c/1"]


async def _problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"].endswith(f"/errors/{slug}"), body
    return body


async def test_data_planes_and_clusters_are_per_company(mrs: RunnerSuite) -> None:
    async def create(user: tuple[int, int], **defaults: Any) -> Any:
        return await mrs.http.post(
            "/agents/conversations",
            json={"defaults": example_defaults(**defaults)},
            headers=mrs.headers(*user),
        )

    unknown = "00000000-0000-4000-8000-000000000bad"
    theirs = await _problem(
        await create((1, 1), data_plane_id=ACME_DATA_PLANE), 400, "unknown-data-plane"
    )
    missing = await _problem(await create((1, 1), data_plane_id=unknown), 400, "unknown-data-plane")
    assert theirs["detail"] == missing["detail"].replace(unknown, ACME_DATA_PLANE)
    theirs = await _problem(
        await create((1, 1), execution_cluster="acme"), 400, "unknown-execution-cluster"
    )
    missing = await _problem(
        await create((1, 1), execution_cluster="nowhere"), 400, "unknown-execution-cluster"
    )
    assert theirs["detail"] == missing["detail"].replace("nowhere", "acme")
    assert "acme" not in missing["detail"].replace("`nowhere`", "")  # theirs is not listed

    # ACME runs on its own data plane and cluster.
    question = unique("ACME only.")
    mrs.chat.on(question, fc.text("on acme"))
    made = await create(ACME_USER, data_plane_id=ACME_DATA_PLANE, execution_cluster="acme")
    assert made.status_code == 200, made.text
    run = await mrs.post_run(
        made.json()["id"], ACME_USER, payload={"kind": "user_message", "text": question}
    )
    assert run.status_code == 202, run.text
    done = await mrs.wait_run(run.json()["id"], user=ACME_USER)
    assert done["final_text"] == "on acme"
    assert mrs.chat.requests_for(question)[0].path == fc.OPENAI_PATH

    # Another company's run may not move to ACME's cluster either.
    conversation = await mrs.create_conversation()
    moved = await mrs.post_run(conversation["id"], config_override={"execution_cluster": "acme"})
    await _problem(moved, 400, "unknown-execution-cluster")


async def test_a_model_the_clusters_provider_has_no_id_for_is_refused(mrs: RunnerSuite) -> None:
    r = await mrs.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(model="amazon.nova-pro", execution_cluster="local")},
        headers=mrs.headers(),
    )
    body = await _problem(r, 400, "model-not-available-on-cluster")
    assert "`local`" in body["detail"] and "anthropic.claude-opus-4.6" in body["detail"]
    conversation = await mrs.create_conversation(defaults=example_defaults(model="amazon.nova-pro"))
    moved = await mrs.post_run(
        conversation["id"], config_override={"execution_cluster": "snowflake"}
    )
    await _problem(moved, 400, "model-not-available-on-cluster")


async def test_models_lists_per_company_with_clusters_providers_and_prices(
    mrs: RunnerSuite,
) -> None:
    r = await mrs.http.get("/agents/models", headers=mrs.headers())
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    assert [m["id"] for m in models] == [
        "anthropic.claude-opus-4.6",
        "anthropic.claude-haiku-4.5",
        "amazon.nova-pro",
    ]
    assert models[0] == {
        "id": "anthropic.claude-opus-4.6",
        "providers": ["bedrock", "cortex", "openai"],
        "execution_clusters": ["shared", "snowflake", "local"],
        "price": {
            "input_per_mtok": 5.0,
            "output_per_mtok": 25.0,
            "cache_read_per_mtok": 0.5,
            "cache_write_per_mtok": 6.25,
            "as_of": "2026-11-01",
        },
    }
    assert models[1]["price"] is None
    assert models[2]["providers"] == ["bedrock"] and models[2]["execution_clusters"] == ["shared"]
    acme = (await mrs.http.get("/agents/models", headers=mrs.headers(*ACME_USER))).json()
    assert acme["models"][0]["execution_clusters"] == ["shared", "snowflake", "local", "acme"]
    assert (await mrs.http.get("/agents/models")).status_code == 401


async def _named(mrs: RunnerSuite, conversation_id: str) -> str:
    for _ in range(500):  # 10 s
        name = (await mrs.conversation(conversation_id))["name"]
        if name is not None:
            return str(name)
        await asyncio.sleep(0.02)
    raise AssertionError("the conversation was never named")


async def test_the_title_comes_from_a_small_model_on_the_runs_own_cluster(
    mrs: RunnerSuite,
) -> None:
    question = unique("Find me a meeting time for tomorrow afternoon.")
    mrs.bedrock.on(question, fb.text("How about 3 pm?"))
    mrs.bedrock.title(question, fb.text("Tomorrow Afternoon Meeting", tokens=(40, 4)))
    conversation = await mrs.create_conversation()
    await mrs.wait_run((await mrs.start_run(conversation["id"], question))["id"])
    assert await _named(mrs, conversation["id"]) == "Tomorrow Afternoon Meeting"
    (asked,) = [r for r in mrs.bedrock.title_requests if r.first_user_text == question]
    assert asked.model_id == "us.anthropic.claude-haiku-4-5-20251001-v1:0"  # shared's titling_model
    assert asked.body["system"] == [{"text": TITLE_PROMPT}]
    assert asked.body["inferenceConfig"]["maxTokens"] == 20
    assert not [r for r in mrs.chat.title_requests if r.first_user_text == question]

    # On a chat-completions cluster without a titling_model: the run's own model, there.
    other = unique("Summarise the Q3 report for the board.")
    mrs.chat.on(other, fc.text("Done."))
    mrs.chat.title(other, fc.text("Q3 Report Summary"))
    local = await mrs.create_conversation(defaults=example_defaults(execution_cluster="local"))
    await mrs.wait_run((await mrs.start_run(local["id"], other))["id"])
    assert await _named(mrs, local["id"]) == "Q3 Report Summary"
    (asked_chat,) = [r for r in mrs.chat.title_requests if r.first_user_text == other]
    assert asked_chat.path == fc.OPENAI_PATH and asked_chat.body["model"] == catalogues.OPENAI_OPUS
    assert asked_chat.body["messages"][0] == {"role": "system", "content": TITLE_PROMPT}
    assert asked_chat.body["max_tokens"] == 20


async def test_a_failed_or_nonsense_title_falls_back_and_never_holds_the_run(
    mrs: RunnerSuite,
) -> None:
    failing = unique("Why is the build red?")
    mrs.bedrock.on(failing, fb.text("A flaky test."))
    mrs.bedrock.title(
        failing,
        fb.error(500, "InternalServerException", "boom"),
        fb.error(500, "InternalServerException"),
    )
    conversation = await mrs.create_conversation()
    await mrs.wait_run((await mrs.start_run(conversation["id"], failing))["id"])
    assert await _named(mrs, conversation["id"]) == title_from(failing)

    held = unique("Draft a reply to the landlord about the broken heating.")
    gate = fb.Gate(fb.text("Sure! Here is a title for you:\nLandlord Heating Reply"))
    mrs.bedrock.on(held, fb.text("Dear landlord, ..."))
    mrs.bedrock.title(held, gate)
    slow = await mrs.create_conversation()
    run = await mrs.start_run(slow["id"], held)
    await asyncio.wait_for(gate.arrived.wait(), 10)
    done = await mrs.wait_run(run["id"])  # the run ends while its title is still being asked
    assert done["status"] == "completed"
    assert (await mrs.conversation(slow["id"]))["name"] is None
    gate.release()  # a two-line answer is no title: the message's first words are
    assert await _named(mrs, slow["id"]) == title_from(held)


def _pending(cluster: str) -> float:
    return REGISTRY.get_sample_value("parley_api_runs_pending", {"cluster": cluster}) or 0.0


def _capped_catalogue(chat_url: str) -> Catalogue:
    """Clusters of names no other test uses (the pending gauge is per process)."""
    return catalogue.parse(
        f"""
[[data_planes]]
id = "{DATA_PLANE}"
companies = ["*"]

[[clusters]]
name = "capped"
provider = "openai"
base_url = "{chat_url}/v1"
api_key_env = "{catalogues.KEY_ENV}"
companies = ["*"]
runner_concurrency = 1

[[clusters]]
name = "uncapped"
provider = "openai"
base_url = "{chat_url}/v1"
api_key_env = "{catalogues.KEY_ENV}"
companies = ["*"]

[[models]]
id = "anthropic.claude-opus-4.6"
openai = "{catalogues.OPENAI_OPUS}"
""",
        "capped.toml",
    )


async def test_runner_concurrency_caps_a_clusters_runs_and_others_go_on(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    """`capped` takes one run at a time per runner: its second run waits (counted pending)
    while the first is in flight, and a run of another cluster, queued after it, goes first."""
    async with running_runner_suite(await make_database_url(), catalogue=_capped_catalogue) as rs:
        one, two, other = unique("First."), unique("Second."), unique("Other cluster.")
        gate = fc.Gate(fc.text("one"))
        rs.chat.on(one, gate)
        rs.chat.on(two, fc.text("two"))
        rs.chat.on(other, fc.text("other"))
        capped = example_defaults(execution_cluster="capped")
        first = await rs.start_run((await rs.create_conversation(defaults=capped))["id"], one)
        await asyncio.wait_for(gate.arrived.wait(), 10)
        second = await rs.start_run((await rs.create_conversation(defaults=capped))["id"], two)
        await wait_until(lambda: _pending("capped") == 1)
        uncapped = example_defaults(execution_cluster="uncapped")
        elsewhere = await rs.create_conversation(defaults=uncapped)
        run = await rs.start_run(elsewhere["id"], other)
        assert (await rs.wait_run(run["id"]))["final_text"] == "other"
        assert (await rs.get_run(second["id"]))["status"] == "pending"  # still capped
        gate.release()
        assert (await rs.wait_run(first["id"]))["final_text"] == "one"
        assert (await rs.wait_run(second["id"]))["final_text"] == "two"
        await wait_until(lambda: _pending("capped") == 0)
        assert _pending("uncapped") == 0


async def test_the_fake_model_answers_every_cluster(
    make_database_url: Callable[[], Awaitable[str]],
) -> None:
    async with running_runner_suite(
        await make_database_url(), fake_model=True, catalogue=catalogues.clusters
    ) as rs:
        for cluster in ("shared", "snowflake", "local"):
            conversation = await rs.create_conversation(
                defaults=example_defaults(execution_cluster=cluster)
            )
            run = await rs.start_run(conversation["id"], f"Hello {cluster}")
            assert (await rs.wait_run(run["id"]))["final_text"] == f"You said: Hello {cluster}"
        assert rs.chat.requests == [] and rs.bedrock.requests == []
