"""The built-in echo model (`PARLEY_FAKE_MODEL`) through real runs: the spec's four examples
complete without AWS, with answers a test can predict, plausible usage and full job records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import pytest_asyncio
from agents.v1 import (
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    run_pb2,
    store_service_pb2,
    store_service_pb2_grpc,
)
from jsonschema import Draft202012Validator

from services.common.internal_auth import Role
from tests.internal import internal_channel
from tests.spec_examples import (
    BOOKING_TOOL,
    DOCS_SEARCH,
    DOCS_SERVER,
    EXAMPLE_4_SCHEMA,
    example_defaults,
)

from .problems import assert_problem
from .runner_suite import RunnerSuite, running_runner_suite


@pytest_asyncio.fixture(scope="module")
async def rs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[RunnerSuite]:
    async with running_runner_suite(
        await make_database_url(), fake_model=True, mcp_allow_private_networks=True
    ) as suite:
        yield suite


async def _job(rs: RunnerSuite, job_id: str) -> run_pb2.InferenceJob:
    async with internal_channel(f"127.0.0.1:{rs.store_port}", Role.OPERATOR) as channel:
        return await store_service_pb2_grpc.StoreServiceStub(channel).GetInferenceJob(
            store_service_pb2.GetInferenceJobRequest(id=job_id)
        )


async def test_example_1_echoes_and_records_its_job(rs: RunnerSuite) -> None:
    conversation = await rs.create_conversation(
        system_prompt="You are a helpful assistant. Answer concisely."
    )
    run = await rs.start_run(conversation["id"], "What is 2 + 2?")
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["final_text"] == "You said: What is 2 + 2?"
    usage = done["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert not rs.bedrock.requests  # Bedrock (here: its fake) is never called
    (job_id,) = done["submitted_inference_job_ids"]
    job = await _job(rs, job_id)
    assert job.provider == "echo" and job.provider_model_id == "us.anthropic.claude-opus-4-6-v1"
    request = json.loads(job.request_json)
    assert request["system"] == [{"text": "You are a helpful assistant. Answer concisely."}]
    assert request["messages"] == [{"role": "user", "content": [{"text": "What is 2 + 2?"}]}]
    response = json.loads(job.response_json)
    assert response["output"]["message"]["content"] == [{"text": "You said: What is 2 + 2?"}]
    assert response["usage"]["inputTokens"] == usage["prompt_tokens"] == job.usage.prompt_tokens
    messages = await rs.messages(conversation["id"])
    assert messages["current_version"] == 2


async def test_example_3_forced_caller_tool_then_the_answer_summarises_the_output(
    rs: RunnerSuite,
) -> None:
    conversation = await rs.create_conversation(
        defaults=example_defaults(tools=[BOOKING_TOOL], max_iterations=5)
    )
    run = await rs.start_run(
        conversation["id"],
        "Find me a meeting time for tomorrow afternoon.",
        tool_choice={"kind": "specific_tool", "name": "confirm_booking"},
    )
    paused = await rs.wait_run(run["id"])
    assert paused["status"] == "requires_action", paused
    (call,) = paused["pending_tool_calls"]
    assert call["name"] == "confirm_booking"
    assert call["arguments"] == {"proposed_slot": "Find me a meeting time for tomorrow afternoon."}
    version = (await rs.conversation(conversation["id"]))["version"]
    resumed = await rs.start_run(
        conversation["id"],
        expected_version=version,
        payload={
            "kind": "tool_outputs",
            "outputs": [
                {"tool_use_id": call["tool_use_id"], "content": "User confirmed the proposed slot."}
            ],
        },
    )
    done = await rs.wait_run(resumed["id"])
    assert done["final_text"] == "confirm_booking returned: User confirmed the proposed slot."


async def test_example_2_forced_mcp_tool_runs_and_is_summarised(
    rs: RunnerSuite, docs_url: str
) -> None:
    conversation = await rs.create_conversation(
        defaults=example_defaults(mcp_servers=[{**DOCS_SERVER, "url": docs_url}])
    )
    run = await rs.start_run(
        conversation["id"],
        "rate limiting",
        tool_choice={
            "kind": "specific_tool",
            "mcp_alias": DOCS_SERVER["alias"],
            "name": "search_narrative_i_o_knowledge_base",
        },
    )
    done = await rs.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert done["iterations_used"] == 2
    assert done["final_text"].startswith(f"{DOCS_SEARCH} returned: Results for 'rate limiting':")
    roles = [m["role"] for m in (await rs.messages(conversation["id"]))["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]


async def test_example_4_structured_mode_answers_a_valid_object(rs: RunnerSuite) -> None:
    conversation = await rs.create_conversation(
        defaults=example_defaults(output_format_schema=EXAMPLE_4_SCHEMA)
    )
    text = "User u-123 logged in and stayed for 1800 seconds."
    done = await rs.wait_run((await rs.start_run(conversation["id"], text))["id"])
    assert done["status"] == "completed" and done["final_text"] is None
    structured = done["final_structured_output"]
    assert Draft202012Validator(EXAMPLE_4_SCHEMA).is_valid(structured)
    assert structured["event"]["type"] == "login" and structured["event"]["user_id"] == text


async def test_a_reply_longer_than_max_tokens_is_cut_off_as_a_real_models_would_be(
    rs: RunnerSuite,
) -> None:
    conversation = await rs.create_conversation(defaults=example_defaults(max_tokens=2))
    done = await rs.wait_run((await rs.start_run(conversation["id"], "a long question"))["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "AgentLoopSchemaDecodeFailed"
    assert "max_tokens" in done["error"]["message"]


async def test_a_runs_inference_jobs_over_rest_and_grpc_for_its_owner_only(
    rs: RunnerSuite,
) -> None:
    conversation = await rs.create_conversation(defaults=example_defaults(tools=[BOOKING_TOOL]))
    run = await rs.start_run(
        conversation["id"],
        "Book it.",
        tool_choice={"kind": "specific_tool", "name": "confirm_booking"},
    )
    paused = await rs.wait_run(run["id"])
    (call,) = paused["pending_tool_calls"]
    r = await rs.post_run(
        conversation["id"],
        expected_version=2,
        payload={
            "kind": "tool_outputs",
            "outputs": [{"tool_use_id": call["tool_use_id"], "content": "done"}],
        },
    )
    assert r.status_code == 202, r.text
    done = await rs.wait_run(r.json()["id"])
    path = f"/agents/runs/{paused['id']}/inference_jobs"
    listed = await rs.http.get(path, headers=rs.headers())
    assert listed.status_code == 200, listed.text
    (job,) = listed.json()["inference_jobs"]
    assert job["id"] == paused["submitted_inference_job_ids"][0] and job["iteration"] == 1
    assert job["run_id"] == paused["id"] and job["provider"] == "echo"
    assert json.loads(job["response_json"])["stopReason"] == "tool_use"
    assert job["usage"]["prompt_tokens"] == paused["usage"]["prompt_tokens"]
    assert job["started_at"] <= job["completed_at"]
    # over gRPC, the same jobs
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rs.api_port}") as channel:
        stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
        metadata = [("authorization", rs.headers()["Authorization"])]
        reply = await stub.ListRunInferenceJobs(
            conversation_service_pb2.ListRunInferenceJobsRequest(id=done["id"]),
            metadata=metadata,
        )
        assert [j.id for j in reply.inference_jobs] == done["submitted_inference_job_ids"]
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.ListRunInferenceJobs(
                conversation_service_pb2.ListRunInferenceJobsRequest(id=done["id"])
            )
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # another user of the company or another company: not found, as GET run answers
    for user in ((1, 2), (2, 1)):
        assert_problem(await rs.http.get(path, headers=rs.headers(*user)), 404, "run-not-found")
    spec = (await rs.http.get("/openapi.json")).json()
    assert "/agents/runs/{id}/inference_jobs" in spec["paths"]
