"""The spec's examples 1-4, unchanged (`execution_cluster: "shared"`), on an installation whose
`shared` cluster is Snowflake Cortex, then one where it is an OpenAI-compatible server: the
runner's chat-completions provider calls the fake Chat Completions server, which refuses what the
real services refuse. Each checks the shapes the spec shows and what reached the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from tests import catalogues
from tests.fakes import chat_completions as fc
from tests.spec_examples import (
    BOOKING_TOOL,
    DOCS_SEARCH,
    DOCS_SERVER,
    EXAMPLE_4_SCHEMA,
    TEXT_SCHEMA,
    example_defaults,
)

from .runner_suite import RunnerSuite, running_runner_suite, unique
from .sse import deltas_text, read_events

SYSTEM = "You are a helpful assistant. Answer concisely."


@pytest_asyncio.fixture(scope="module", params=["cortex", "openai"])
async def crs(
    request: pytest.FixtureRequest, make_database_url: Callable[[], Awaitable[str]]
) -> AsyncIterator[RunnerSuite]:
    provider = request.param
    async with running_runner_suite(
        await make_database_url(),
        mcp_allow_private_networks=True,
        catalogue=lambda url: catalogues.clusters(url, shared=provider),
    ) as running:
        yield running


def provider_of(rs: RunnerSuite) -> str:
    return rs.settings.catalogue.clusters["shared"].provider


def expected_wire(rs: RunnerSuite) -> tuple[str, str, str]:
    """(path, model id, max-tokens field) the cluster's provider sends."""
    if provider_of(rs) == "cortex":
        return fc.CORTEX_PATH, "claude-opus-4-6", "max_completion_tokens"
    return fc.OPENAI_PATH, catalogues.OPENAI_OPUS, "max_tokens"


async def test_example_1_hello_world(crs: RunnerSuite) -> None:
    question = unique("What is 2 + 2?")
    answer = fc.Gate(fc.text("4", tokens=(169, 8)))
    crs.chat.on(question, answer)
    conversation = await crs.create_conversation(name="hello world", system_prompt=SYSTEM)
    run = await crs.start_run(conversation["id"], question)
    assert run["status"] == "pending"
    assert run["effective_config"]["execution_cluster"] == "shared"
    assert run["effective_config"]["output_format_schema"] == TEXT_SCHEMA
    await asyncio.wait_for(answer.arrived.wait(), 10)
    assert (await crs.get_run(run["id"]))["status"] == "running"
    answer.release()

    done = await crs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] == "4" and done["iterations_used"] == 1
    assert done["usage"] == {
        "prompt_tokens": 169,
        "completion_tokens": 8,
        "total_tokens": 177,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
    }
    stream = await crs.messages(conversation["id"])
    assert [(m["role"], m["content_blocks"]) for m in stream["messages"]] == [
        ("user", [{"type": "text", "text": question}]),
        ("assistant", [{"type": "text", "text": "4"}]),
    ]
    path, model, max_tokens = expected_wire(crs)
    (request,) = crs.chat.requests_for(question)
    assert request.path == path
    assert request.body == {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
        ],
        max_tokens: 1024,
        "temperature": 0.0,
        "stream": True,  # `stream` defaults to true: the answer's deltas come as they are made
        "stream_options": {"include_usage": True},
    }
    assert crs.bedrock.requests == []  # nothing went to Bedrock


async def test_example_2_mcp_search_loop(crs: RunnerSuite, docs_url: str) -> None:
    question = unique("Search the Narrative docs for information about rate limiting.")
    searches = [
        fc.tool_calls((f"call_s{n}", DOCS_SEARCH, {"query": f"rate limiting {n}"}))
        for n in range(5)
    ]
    crs.chat.on(question, *searches, fc.text("According to the Narrative.io documentation, 429."))
    conversation = await crs.create_conversation(
        name="docs search",
        defaults=example_defaults(
            max_iterations=8, max_tokens=2048, mcp_servers=[{**DOCS_SERVER, "url": docs_url}]
        ),
    )
    run = await crs.start_run(conversation["id"], question, tool_choice={"kind": "auto"})
    done = await crs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["iterations_used"] == 6
    assert done["final_text"].startswith("According to the Narrative.io documentation")
    assert done["usage"]["prompt_tokens"] == 5 * 150 + 169
    stream = await crs.messages(conversation["id"])
    assert [m["role"] for m in stream["messages"]] == [
        "user",
        *(["assistant", "tool"] * 5),
        "assistant",
    ]
    first_result = stream["messages"][2]["content_blocks"][0]
    assert first_result["tool_use_id"] == "call_s0" and "Rate limiting" in str(first_result)
    requests = crs.chat.requests_for(question)
    assert [t["function"]["name"] for t in requests[0].body["tools"]] == [DOCS_SEARCH]
    assert requests[0].body["tool_choice"] == "auto"
    assert "tool_choice" not in requests[1].body  # the run's tool_choice is the first call's
    last = requests[-1].body["messages"]
    assert [m["role"] for m in last] == ["user"] + ["assistant", "tool"] * 5
    assert (
        last[2]
        == {
            "role": "tool",
            "tool_call_id": "call_s0",
            "content": last[2]["content"],
        }
        and "Rate limiting" in last[2]["content"]
    )


async def test_example_3_pause_and_resume(crs: RunnerSuite) -> None:
    question = unique("Find me a meeting time for tomorrow afternoon.")
    call_id = "call_DWXPKZ50JDGib5GmShyUgJ"
    crs.chat.on(
        question,
        fc.tool_calls((call_id, "confirm_booking", {"proposed_slot": "tomorrow afternoon"})),
        fc.text("Great news! Your meeting has been confirmed for tomorrow afternoon."),
    )
    conversation = await crs.create_conversation(
        name="booking flow",
        system_prompt="You are a booking assistant.",
        defaults=example_defaults(max_iterations=5, tools=[BOOKING_TOOL]),
    )
    run = await crs.start_run(
        conversation["id"],
        question,
        tool_choice={"kind": "specific_tool", "name": "confirm_booking"},
    )
    paused = await crs.wait_run(run["id"])
    assert paused["status"] == "requires_action", paused
    assert paused["pending_tool_calls"] == [
        {
            "tool_use_id": call_id,
            "name": "confirm_booking",
            "arguments": {"proposed_slot": "tomorrow afternoon"},
            "kind": "caller",
            "server_alias": None,
        }
    ]
    (first,) = crs.chat.requests_for(question)
    assert first.body["tool_choice"] == {
        "type": "function",
        "function": {"name": "confirm_booking"},
    }
    outputs = [
        {"tool_use_id": call_id, "content": "User confirmed the proposed slot.", "is_error": False}
    ]
    resumed = await crs.start_run(
        conversation["id"], expected_version=2, payload={"kind": "tool_outputs", "outputs": outputs}
    )
    done = await crs.wait_run(resumed["id"])
    assert done["status"] == "completed", done
    assert done["final_text"].startswith("Great news!")
    _, second = crs.chat.requests_for(question)
    assert "tool_choice" not in second.body
    assert second.body["messages"][1:] == [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": "confirm_booking",
                        "arguments": '{"proposed_slot":"tomorrow afternoon"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "User confirmed the proposed slot."},
    ]
    stream = await crs.messages(conversation["id"], since=2)
    assert [m["role"] for m in stream["messages"]] == ["tool", "assistant"]


async def test_example_4_structured_output(crs: RunnerSuite) -> None:
    question = unique("User u-123 logged in and stayed for 1800 seconds.")
    answer = {"event": {"type": "login", "user_id": "u-123", "session_duration_seconds": 1800}}
    crs.chat.on(question, fc.json_text(answer))
    conversation = await crs.create_conversation(
        name="event logger",
        defaults=example_defaults(max_tokens=1024, output_format_schema=EXAMPLE_4_SCHEMA),
    )
    run = await crs.start_run(conversation["id"], question)
    done = await crs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] is None and done["final_structured_output"] == answer
    (request,) = crs.chat.requests_for(question)
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "final_answer", "schema": EXAMPLE_4_SCHEMA},
    }


async def test_models_lists_what_the_shared_cluster_runs(crs: RunnerSuite) -> None:
    r = await crs.http.get("/agents/models", headers=crs.headers())
    assert r.status_code == 200, r.text
    by_id: dict[str, Any] = {m["id"]: m for m in r.json()["models"]}
    assert "shared" in by_id["anthropic.claude-opus-4.6"]["execution_clusters"]
    assert "amazon.nova-pro" not in by_id  # Bedrock only: no cluster of this installation runs it


async def test_a_chat_completions_answer_streams_as_deltas(crs: RunnerSuite) -> None:
    """`stream` (on by default) is `stream: true` on chat completions: the answer's chunks reach
    the run's event stream as message.delta events, which concatenate to its text."""
    question = unique("Say a longer sentence.")
    said = "Streaming works on chat completions too."
    crs.chat.on(question, fc.text(said))
    conversation = await crs.create_conversation()
    done = await crs.wait_run((await crs.start_run(conversation["id"], question))["id"])
    assert done["final_text"] == said, done
    events = await read_events(crs, done["id"])
    assert deltas_text(events) == said
    (request,) = crs.chat.requests_for(question)
    assert request.body["stream"] is True
