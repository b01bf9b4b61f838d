"""Runs through their lifecycle via StoreService (the runner's interface): claim, lease, commit,
pause for tool outputs, resume; versions and message paging along the way."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from agents.v1 import conversation_service_pb2 as svc
from agents.v1 import message_pb2, run_pb2, store_service_pb2
from google.protobuf import json_format, struct_pb2

from services.api import run_queue
from tests.blocks import assistant, text, tool_result, tool_use

from .conftest import DOCS, Api, defaults, expect_error, running_api


def outputs(*ids: str) -> dict:
    return {"tool_outputs": {"outputs": [{"tool_use_id": i, "content": "ok"} for i in ids]}}


async def version_of(api: Api, who: tuple[int, int], conversation_id: str) -> int:
    return (
        await api.public.GetConversation(
            svc.GetConversationRequest(id=conversation_id), metadata=api.auth(who)
        )
    ).version


async def test_pause_and_resume(api: Api) -> None:
    who = api.user()
    conversation = await api.create(
        who,
        name="booking",
        system_prompt="Book things.",
        defaults=defaults(
            tools=[{"name": "ask_user"}, {"name": "confirm"}],
            mcp_servers=[{"alias": "docs", "url": "https://docs.test/mcp"}],
        ),
    )
    run = await api.start(who, conversation.id, tool_choice={"specific_tool": {"name": "ask_user"}})

    claimed = await api.claim(run.id)
    assert claimed.run.status == run_pb2.RUN_STATUS_RUNNING
    assert claimed.system_prompt == "Book things." and list(claimed.history) == []
    assert claimed.input.role == message_pb2.ROLE_USER and claimed.input.sequence_no == 1
    assert claimed.input.content_blocks[0].text.text == "What is 2 + 2?"
    assert claimed.run.effective_config == run.effective_config
    assert claimed.run.tool_choice == run.tool_choice
    assert (await api.get_run(who, run.id)).status == run_pb2.RUN_STATUS_RUNNING
    # Still running: nothing else may start.
    error, info = await expect_error(api.start(who, conversation.id), "VersionConflict")
    assert "running" in error.details() and info.metadata["run_status"] == "running"

    renewed = await api.store.RenewLeases(
        store_service_pb2.RenewLeasesRequest(
            runner_id="runner-1", run_ids=[run.id, "no-such-run"], lease_seconds=300
        )
    )
    assert list(renewed.lost) == ["no-such-run"] and list(renewed.cancel_requested) == []
    intruder = await api.store.RenewLeases(
        store_service_pb2.RenewLeasesRequest(
            runner_id="intruder", run_ids=[run.id], lease_seconds=300
        )
    )
    assert list(intruder.lost) == [run.id]

    paused = run_pb2.Run(
        status=run_pb2.RUN_STATUS_REQUIRES_ACTION,
        iterations_used=2,
        usage=run_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        submitted_inference_job_ids=["j1", "j2"],
        pending_tool_calls=[
            run_pb2.PendingToolCall(
                tool_use_id="c1",
                name="ask_user",
                arguments=json_format.ParseDict({"q": "?"}, struct_pb2.Struct()),
            ),
            run_pb2.PendingToolCall(tool_use_id="c2", name="confirm"),
        ],
    )
    turns = [
        assistant(tool_use("m1", "docs-search", q="x")),
        message_pb2.Message(role=message_pb2.ROLE_TOOL, content_blocks=[tool_result("m1", "hit")]),
        assistant(
            tool_use("c1", "ask_user", q="?"),
            tool_use("m2", "docs-search", q="y"),
            tool_use("c2", "confirm"),
        ),
    ]
    await expect_error(api.commit(run.id, paused, *turns, runner_id="intruder"), "LeaseLost")
    assert await api.commit(run.id, paused, *turns) == 4
    assert await version_of(api, who, conversation.id) == 4
    # A second commit of the same run is refused (its lease is gone).
    await expect_error(api.commit(run.id, paused, *turns), "LeaseLost")

    polled = await api.get_run(who, run.id)
    assert polled.status == run_pb2.RUN_STATUS_REQUIRES_ACTION
    assert (polled.iterations_used, polled.usage.total_tokens) == (2, 15)
    assert list(polled.submitted_inference_job_ids) == ["j1", "j2"]
    # A call committed without a kind (as runners did before approvals) reads as a caller call.
    assert [(c.tool_use_id, c.kind) for c in polled.pending_tool_calls] == [
        (c.tool_use_id, run_pb2.PendingToolCall.KIND_CALLER) for c in paused.pending_tool_calls
    ]
    assert polled.HasField("completed_at")
    for field in ("final_text", "final_structured_output", "error"):
        assert not polled.HasField(field), field

    # A user message while tool outputs are awaited is a conflict that says why.
    error, info = await expect_error(
        api.start(who, conversation.id, expected_version=4), "VersionConflict"
    )
    assert "tool outputs" in error.details() and info.metadata["run_id"] == run.id
    cases = [
        (outputs("c1", "nope"), "UnknownToolUseId", "nope"),
        (outputs("c1", "m2"), "NotAClientToolCall", "m2"),
        (outputs("m1", "c1", "c2"), "UnknownToolUseId", "m1"),  # not the latest turn
        (outputs("c1"), "IncompleteToolOutputs", "c2"),
        (outputs("c1", "c2", "c2"), "IncompleteToolOutputs", "c2"),
    ]
    for payload, code, detail in cases:
        error, _ = await expect_error(
            api.start(who, conversation.id, expected_version=4, payload=payload), code
        )
        assert detail in error.details()
    await expect_error(
        api.start(who, conversation.id, expected_version=2, payload=outputs("c1", "c2")),
        "VersionConflict",
    )

    resumed = await api.start(
        who,
        conversation.id,
        expected_version=4,
        payload={
            "tool_outputs": {
                "outputs": [
                    {"tool_use_id": "c2", "content": "declined", "is_error": True},
                    {"tool_use_id": "c1", "content": "tomorrow"},
                ]
            }
        },
    )
    assert resumed.status == run_pb2.RUN_STATUS_PENDING and not resumed.HasField("tool_choice")
    claimed = await api.claim(resumed.id)
    assert [m.sequence_no for m in claimed.history] == [1, 2, 3, 4]
    assert claimed.input.role == message_pb2.ROLE_TOOL and claimed.input.sequence_no == 5
    results = [b.tool_result for b in claimed.input.content_blocks]
    assert [(r.tool_use_id, r.is_error, r.content[0].text.text) for r in results] == [
        ("c2", True, "declined"),
        ("c1", False, "tomorrow"),
    ]

    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=1,
        final_text="Booked.",
        usage=run_pb2.Usage(total_tokens=3),
        submitted_inference_job_ids=["j3"],
    )
    assert await api.commit(resumed.id, done, assistant(text("Booked."))) == 6
    final = await api.get_run(who, resumed.id)
    assert final.status == run_pb2.RUN_STATUS_COMPLETED and final.final_text == "Booked."
    assert not final.HasField("final_structured_output") and not final.HasField("error")
    assert final.live.current_name == "booking" and list(final.live.messages) == []

    # The message stream, paged with `since`.
    me = api.auth(who)
    first = await api.public.ListMessages(
        svc.ListMessagesRequest(id=conversation.id, per_page=4), metadata=me
    )
    assert [m.sequence_no for m in first.messages] == [1, 2, 3, 4]
    assert first.current_version == 6 and first.next_since == 4
    assert [m.role for m in first.messages] == [
        message_pb2.ROLE_USER,
        message_pb2.ROLE_ASSISTANT,
        message_pb2.ROLE_TOOL,
        message_pb2.ROLE_ASSISTANT,
    ]
    assert {m.run_id for m in first.messages} == {run.id}
    assert first.messages[3].content_blocks == turns[2].content_blocks
    rest = await api.public.ListMessages(
        svc.ListMessagesRequest(id=conversation.id, since=4), metadata=me
    )
    assert [m.sequence_no for m in rest.messages] == [5, 6] and not rest.HasField("next_since")
    assert rest.messages[0].content_blocks == claimed.input.content_blocks
    exact = await api.public.ListMessages(
        svc.ListMessagesRequest(id=conversation.id, since=2, per_page=4), metadata=me
    )
    assert [m.sequence_no for m in exact.messages] == [3, 4, 5, 6]
    assert not exact.HasField("next_since")
    assert (
        list(
            (
                await api.public.ListMessages(
                    svc.ListMessagesRequest(id=conversation.id, since=6), metadata=me
                )
            ).messages
        )
        == []
    )

    # The next run starts from the new version; the old one is stale.
    await expect_error(api.start(who, conversation.id, expected_version=4), "VersionConflict")
    assert (
        await api.start(who, conversation.id, expected_version=6)
    ).status == run_pb2.RUN_STATUS_PENDING


async def test_failed_run_carries_the_catalogue(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    for code, title in (("AgentLoopMaxIterationsExceeded", True), ("SomethingNew", False)):
        version = await version_of(api, who, conversation.id)
        run = await api.start(who, conversation.id, expected_version=version)
        await api.claim(run.id)
        failed = run_pb2.Run(
            status=run_pb2.RUN_STATUS_FAILED,
            error=run_pb2.RunError(type=code, message="gave up after 3"),
        )
        assert await api.commit(run.id, failed) == version + 1  # the input turn is kept
        polled = await api.get_run(who, run.id)
        assert polled.status == run_pb2.RUN_STATUS_FAILED
        assert (polled.error.type, polled.error.message) == (code, "gave up after 3")
        assert not polled.HasField("iterations_used") and not polled.HasField("usage")
        assert polled.HasField("completed_at")
        if title:
            assert polled.error.title == "Max Iterations Exceeded"
            assert polled.error.docs_url == f"{DOCS}/errors/max-iterations-exceeded"
        else:
            assert not polled.error.HasField("title") and not polled.error.HasField("docs_url")


async def test_structured_output_is_stored(api: Api) -> None:
    who = api.user()
    schema = {"type": "object", "properties": {"event": {"type": "string"}}}
    conversation = await api.create(who, defaults=defaults(output_format_schema=schema))
    run = await api.start(who, conversation.id)
    await api.claim(run.id)
    answer = json_format.ParseDict(
        {"event": "login", "n": [1, 2.5, None, True]}, struct_pb2.Value()
    )
    await api.commit(
        run.id,
        run_pb2.Run(
            status=run_pb2.RUN_STATUS_COMPLETED,
            iterations_used=1,
            usage=run_pb2.Usage(),
            final_structured_output=answer,
        ),
        assistant(text('{"event": "login"}')),
    )
    polled = await api.get_run(who, run.id)
    assert polled.final_structured_output == answer and not polled.HasField("final_text")
    assert polled.usage == run_pb2.Usage() and polled.HasField("usage")


async def test_an_expired_lease_is_taken_over(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id)
    await api.claim(run.id, runner_id="slow", lease_seconds=1)
    taken = await api.claim(run.id, runner_id="fast", deadline=15)
    assert taken.run.status == run_pb2.RUN_STATUS_RUNNING
    slow = await api.store.RenewLeases(
        store_service_pb2.RenewLeasesRequest(runner_id="slow", run_ids=[run.id], lease_seconds=30)
    )
    assert list(slow.lost) == [run.id]
    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=1,
        final_text="x",
        usage=run_pb2.Usage(),
    )
    error, _ = await expect_error(api.commit(run.id, done, runner_id="slow"), "LeaseLost")
    assert "lease" in error.details()
    assert await api.commit(run.id, done, assistant(text("x")), runner_id="fast") == 2


async def test_commit_is_checked(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id)
    await api.claim(run.id)
    for bad in (
        run_pb2.Run(status=run_pb2.RUN_STATUS_RUNNING),
        run_pb2.Run(status=run_pb2.RUN_STATUS_REQUIRES_ACTION),
        run_pb2.Run(status=run_pb2.RUN_STATUS_FAILED),
    ):
        await expect_error(api.commit(run.id, bad), "InvalidRequest")
    await expect_error(
        api.commit(run.id, run_pb2.Run(status=run_pb2.RUN_STATUS_COMPLETED), message_pb2.Message()),
        "InvalidRequest",
    )
    await expect_error(
        api.commit("no-such-run", run_pb2.Run(status=run_pb2.RUN_STATUS_COMPLETED)), "RunNotFound"
    )
    # Nothing was written by the refused commits.
    assert await version_of(api, who, conversation.id) == 0


async def test_claim_with_nothing_to_do_and_bad_requests(api: Api) -> None:
    await expect_error(
        api.store.ClaimRun(store_service_pb2.ClaimRunRequest(lease_seconds=5)), "InvalidRequest"
    )
    await expect_error(
        api.store.ClaimRun(store_service_pb2.ClaimRunRequest(runner_id="r", lease_seconds=-1)),
        "InvalidRequest",
    )
    # A running lease of our own, so that the hint below exists whichever tests ran before.
    who = api.user()
    run = await api.start(who, (await api.create(who)).id)
    await api.claim(run.id, lease_seconds=600)
    started = time.monotonic()
    # Drain whatever other tests left pending; then there is nothing to claim.
    while True:
        claimed = await api.store.ClaimRun(
            store_service_pb2.ClaimRunRequest(runner_id="drain", lease_seconds=600)
        )
        if not claimed.HasField("run"):
            break
        assert time.monotonic() - started < 10
    # Nothing runnable: only the hint of when the earliest running lease expires.
    assert claimed == store_service_pb2.ClaimRunResponse(retry_after_ms=claimed.retry_after_ms)
    assert 0 < claimed.retry_after_ms <= 601_000


async def _drain(api: Api) -> None:
    """Claim whatever other tests left runnable, so the next claim waits."""
    started = time.monotonic()
    while (
        await api.store.ClaimRun(
            store_service_pb2.ClaimRunRequest(runner_id="drain", lease_seconds=600)
        )
    ).HasField("run"):
        assert time.monotonic() - started < 10


def _wait_for_claim(api: Api, runner_id: str) -> asyncio.Task[store_service_pb2.ClaimRunResponse]:
    request = store_service_pb2.ClaimRunRequest(
        runner_id=runner_id, lease_seconds=600, wait_ms=30_000
    )
    return asyncio.ensure_future(api.store.ClaimRun(request))


def _claims_waiting() -> float:
    return REGISTRY.get_sample_value("parley_api_claims_waiting") or 0.0


async def _waiting_claim(
    api: Api, runner_id: str
) -> asyncio.Task[store_service_pb2.ClaimRunResponse]:
    """A long-poll claim, once it waits at the store (free to be handed a run)."""
    before = _claims_waiting()
    claim = _wait_for_claim(api, runner_id)
    until = time.monotonic() + 10
    while _claims_waiting() <= before:
        assert not claim.done() and time.monotonic() < until, "the claim never waited"
        await asyncio.sleep(0.01)
    return claim


async def test_a_waiting_claim_answers_when_a_run_is_queued(api: Api) -> None:
    await _drain(api)
    who = api.user()
    conversation = await api.create(who)
    waiting = await _waiting_claim(api, "waiter")  # nothing runnable: the long poll holds
    run = await api.start(who, conversation.id)
    claimed = await asyncio.wait_for(waiting, 10)  # well inside its 30 s wait: it was woken
    assert claimed.run.id == run.id and claimed.attempt == 1
    assert claimed.run.status == run_pb2.RUN_STATUS_RUNNING


async def test_a_failed_start_gives_the_waiting_claim_back(api: Api) -> None:
    """A StartRun takes the waiting claim before its transaction; when it fails (a stale
    expected_version here), the claim waits on and gets the next run."""
    await _drain(api)
    who = api.user()
    conversation = await api.create(who)
    waiting = await _waiting_claim(api, "waiter")
    await expect_error(api.start(who, conversation.id, expected_version=5), "VersionConflict")
    assert not waiting.done()
    run = await api.start(who, conversation.id)
    claimed = await asyncio.wait_for(waiting, 10)
    assert claimed.run.id == run.id and claimed.attempt == 1


async def test_a_waiting_claim_takes_over_when_a_lease_expires(api: Api) -> None:
    await _drain(api)
    who = api.user()
    run = await api.start(who, (await api.create(who)).id)
    await api.claim(run.id, runner_id="short-lived", lease_seconds=1)
    claimed = await asyncio.wait_for(_wait_for_claim(api, "next"), 10)
    assert claimed.run.id == run.id and claimed.attempt == 2


async def test_health_is_served(api: Api) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for port, service in (
        (api.port, "agents.v1.ConversationService"),
        (api.store_port, "agents.v1.StoreService"),
    ):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in ("", service):
                response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
                assert response.status == health_pb2.HealthCheckResponse.SERVING


def _iteration(run_id: str, job_id: str, prompt: int) -> store_service_pb2.Iteration:
    return store_service_pb2.Iteration(
        job=run_pb2.InferenceJob(
            id=job_id, run_id=run_id, iteration=1, provider="bedrock", request_json="{}"
        ),
        run_usage=run_pb2.Usage(prompt_tokens=prompt, total_tokens=prompt),
    )


async def test_model_calls_ride_on_the_next_write(api: Api) -> None:
    """AppendLiveTurn and CommitRun record the model call whose reply they carry (job row, job
    id, "usage" event first), and CommitRun publishes the turns never published live before its
    terminal event: the events are the same as with one call per step."""
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id, expected_version=0)
    await api.claim(run.id)
    call = assistant(tool_use("u1", "lookup"))
    await api.store.AppendLiveTurn(
        store_service_pb2.AppendLiveTurnRequest(
            run_id=run.id,
            runner_id="runner-1",
            turn=run_pb2.LiveTurn(turn_index=0, role=call.role, content_blocks=call.content_blocks),
            iteration=_iteration(run.id, "11111111-1111-4111-8111-111111111111", 5),
        )
    )
    running = await api.get_run(who, run.id)
    assert list(running.submitted_inference_job_ids) == ["11111111-1111-4111-8111-111111111111"]
    answer = assistant(text("done"))
    done = run_pb2.Run(
        status=run_pb2.RUN_STATUS_COMPLETED,
        iterations_used=2,
        final_text="done",
        submitted_inference_job_ids=[
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        ],
    )
    result = message_pb2.Message(
        role=message_pb2.ROLE_TOOL, content_blocks=[tool_result("u1", "x")]
    )
    await api.store.CommitRun(
        store_service_pb2.CommitRunRequest(
            run_id=run.id,
            runner_id="runner-1",
            run=done,
            turns=[call, result, answer],
            iteration=_iteration(run.id, "22222222-2222-4222-8222-222222222222", 9),
            publish=[
                run_pb2.LiveTurn(
                    turn_index=1, role=result.role, content_blocks=result.content_blocks
                ),
                run_pb2.LiveTurn(
                    turn_index=2, role=answer.role, content_blocks=answer.content_blocks
                ),
            ],
        )
    )
    events = [
        e
        async for e in api.public.StreamRunEvents(
            svc.StreamRunEventsRequest(id=run.id), metadata=api.auth(who)
        )
    ]
    assert [(e.type, e.seq) for e in events] == [
        ("run.status", 1),
        ("run.status", 2),
        ("usage", 3),
        ("turn", 4),
        ("usage", 5),
        ("turn", 6),
        ("turn", 7),
        ("run.completed", 8),
    ]
    assert [e.usage.prompt_tokens for e in events if e.type == "usage"] == [5, 9]
    stamps = [e.created_at.ToDatetime() for e in events]
    assert stamps == sorted(stamps)  # event times follow their order
    assert [e.turn.turn_index for e in events if e.type == "turn"] == [0, 1, 2]
    final = await api.get_run(who, run.id)
    assert final.submitted_inference_job_ids == done.submitted_inference_job_ids
    for job_id in done.submitted_inference_job_ids:
        job = await api.operator.GetInferenceJob(
            store_service_pb2.GetInferenceJobRequest(id=job_id)
        )
        assert job.run_id == run.id


async def test_appends_keep_every_model_call_and_only_the_holders(api: Api) -> None:
    """Each AppendRunEvents with a model call adds its job id to the run's list in order (the
    list is extended in the UPDATE that checks the lease); one from a runner that does not hold
    the run changes nothing and is LeaseLost."""
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id, expected_version=0)
    await api.claim(run.id)
    ids = [f"{n}{n}{n}{n}{n}{n}{n}{n}-{n}{n}{n}{n}-4{n}{n}{n}-8{n}{n}{n}-{n * 12}" for n in "345"]
    for i, job_id in enumerate(ids):
        reply = await api.store.AppendRunEvents(
            store_service_pb2.AppendRunEventsRequest(
                run_id=run.id,
                runner_id="runner-1",
                events=[run_pb2.RunEvent(type="tool.call", tool_use_id=f"u{i}", name="lookup")],
                iteration=_iteration(run.id, job_id, i + 1),
            )
        )
        assert reply.last_seq == 2 + 2 * (i + 1)  # its usage event, then its call
        running = await api.get_run(who, run.id)
        assert list(running.submitted_inference_job_ids) == ids[: i + 1]
        assert running.latest_event_seq == reply.last_seq
    await expect_error(
        api.store.AppendRunEvents(
            store_service_pb2.AppendRunEventsRequest(
                run_id=run.id,
                runner_id="runner-2",
                events=[run_pb2.RunEvent(type="tool.call", tool_use_id="u9", name="lookup")],
                iteration=_iteration(run.id, "99999999-9999-4999-8999-999999999999", 9),
            )
        ),
        "LeaseLost",
    )
    after = await api.get_run(who, run.id)
    assert list(after.submitted_inference_job_ids) == ids
    assert after.latest_event_seq == 8


async def test_an_iteration_of_another_run_is_refused(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    run = await api.start(who, conversation.id, expected_version=0)
    await api.claim(run.id)
    turn = assistant(text("hi"))
    await expect_error(
        api.store.AppendLiveTurn(
            store_service_pb2.AppendLiveTurnRequest(
                run_id=run.id,
                runner_id="runner-1",
                turn=run_pb2.LiveTurn(
                    turn_index=0, role=turn.role, content_blocks=turn.content_blocks
                ),
                iteration=_iteration("not-this-run", "33333333-3333-4333-8333-333333333333", 1),
            )
        ),
        "InvalidRequest",
    )


async def test_one_renewal_call_extends_every_lease_a_runner_holds(api: Api) -> None:
    """A runner renews all its runs at once; a run cancelled meanwhile comes back in
    `cancel_requested` (the backstop for a missed WatchWork signal)."""
    who = api.user()
    held = []
    for _ in range(3):
        conversation = await api.create(who)
        run = await api.start(who, conversation.id)
        await api.claim(run.id, runner_id="batch", lease_seconds=1)
        held.append(run.id)

    def renew() -> Any:
        return api.store.RenewLeases(
            store_service_pb2.RenewLeasesRequest(runner_id="batch", run_ids=held, lease_seconds=60)
        )

    reply = await renew()
    assert list(reply.cancel_requested) == [] and list(reply.lost) == []
    await asyncio.sleep(1.5)  # past the claimed 1 s leases: only the renewal keeps them
    thief = store_service_pb2.ClaimRunRequest(runner_id="thief", lease_seconds=30)
    stolen = set()
    while (claimed := await api.store.ClaimRun(thief)).HasField("run"):
        stolen.add(claimed.run.id)  # other tests' leftovers may come up; ours must not
    assert stolen.isdisjoint(held)

    # CancelRun flags the running run, then waits for a runner that is not there: cut it short.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await api.public.CancelRun(
            svc.CancelRunRequest(id=held[1]), metadata=api.auth(who), timeout=3
        )
    reply = await renew()
    assert list(reply.cancel_requested) == [held[1]] and list(reply.lost) == []


async def test_a_restarted_runner_releases_what_its_earlier_incarnations_held(api: Api) -> None:
    """ReleaseLeases makes runnable at once the runs held by `<name>/<anything>` but the caller's
    own incarnation: not another runner whose name merely starts alike (`host:1` vs `host:10`,
    `a_b` vs `axb`: LIKE's wildcards are escaped), and a waiting claim takes them over."""
    await _drain(api)
    who = api.user()
    held = {}
    for owner in ("host:1/old", "host:1/older", "host:10/other", "axb:1/other", "host:1/new"):
        run = await api.start(who, (await api.create(who)).id)
        await api.claim(run.id, runner_id=owner, lease_seconds=600)
        held[owner] = run.id
    release = store_service_pb2.ReleaseLeasesRequest(runner_name="host:1", runner_id="host:1/new")
    released = await api.store.ReleaseLeases(release)
    assert sorted(released.run_ids) == sorted([held["host:1/old"], held["host:1/older"]])
    assert list((await api.store.ReleaseLeases(release)).run_ids) == []  # nothing left
    taken = {(await asyncio.wait_for(_wait_for_claim(api, "next"), 10)).run.id for _ in range(2)}
    assert taken == set(released.run_ids)
    escaped = store_service_pb2.ReleaseLeasesRequest(runner_name="a_b:1", runner_id="a_b:1/new")
    assert list((await api.store.ReleaseLeases(escaped)).run_ids) == []


async def test_release_leases_is_checked(api: Api) -> None:
    for name, runner_id, field in [
        ("", "x/1", "runner_name"),
        ("a/b", "a/b/1", "runner_name"),
        ("host:1", "host:2/1", "runner_id"),
        ("host:1", "host:1/", "runner_id"),
    ]:
        request = store_service_pb2.ReleaseLeasesRequest(runner_name=name, runner_id=runner_id)
        _, info = await expect_error(api.store.ReleaseLeases(request), "InvalidRequest")
        assert info.metadata["field"] == field


async def test_one_claim_leases_several_runs_oldest_first(
    make_database_url: Callable[..., Awaitable[str]],
) -> None:
    """`max_runs`: one ClaimRun leases up to that many runnable runs, oldest first, each described
    as a claim of one run describes it (the first, then `more`); a negative one is refused."""
    async with running_api(await make_database_url()) as api:
        who = api.user()
        started = []
        for i in range(5):
            conversation = await api.create(who, system_prompt=f"Prompt {i}.")
            started.append(await api.start(who, conversation.id))

        def claim(max_runs: int) -> Any:
            return api.store.ClaimRun(
                store_service_pb2.ClaimRunRequest(
                    runner_id="batch", lease_seconds=600, max_runs=max_runs
                )
            )

        first = await claim(3)
        batch = [first, *first.more]
        assert [c.run.id for c in batch] == [run.id for run in started[:3]]
        assert [c.system_prompt for c in batch] == ["Prompt 0.", "Prompt 1.", "Prompt 2."]
        for claimed in batch:
            assert claimed.run.status == run_pb2.RUN_STATUS_RUNNING and claimed.attempt == 1
            assert claimed.input.content_blocks[0].text.text == "What is 2 + 2?"
        assert [len(c.more) for c in batch] == [2, 0, 0]
        rest = await claim(10)
        assert [rest.run.id, *(c.run.id for c in rest.more)] == [run.id for run in started[3:]]
        for run in started:
            assert (await api.get_run(who, run.id)).status == run_pb2.RUN_STATUS_RUNNING
        renewed = await api.store.RenewLeases(
            store_service_pb2.RenewLeasesRequest(
                runner_id="batch", run_ids=[run.id for run in started], lease_seconds=600
            )
        )
        assert list(renewed.lost) == []
        nothing = await claim(4)
        assert not nothing.HasField("run") and not nothing.more
        await expect_error(claim(-1), "InvalidRequest")


async def test_a_claim_of_several_runs_stops_at_its_bytes(
    make_database_url: Callable[..., Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim of several runs adds none past CLAIM_BYTES of histories and inputs: here (a cap
    below one run's input) each run comes alone, oldest first."""
    monkeypatch.setattr(run_queue, "CLAIM_BYTES", 1)
    async with running_api(await make_database_url()) as api:
        who = api.user()
        started = [await api.start(who, (await api.create(who)).id) for _ in range(2)]
        for run in started:
            claimed = await api.store.ClaimRun(
                store_service_pb2.ClaimRunRequest(runner_id="bytes", lease_seconds=600, max_runs=5)
            )
            assert claimed.run.id == run.id and not claimed.more


@contextlib.asynccontextmanager
async def write_lock_held(database_url: str) -> Any:
    """Another connection holds the database's write lock (SQLite) / the runs table (PostgreSQL)
    until the block ends: a claim's look waits meanwhile."""
    if database_url.startswith("sqlite"):
        import sqlite3

        blocker = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def test_a_claim_whose_caller_left_gives_back_what_it_leased(
    make_database_url: Callable[..., Awaitable[str]],
) -> None:
    """A ClaimRun cancelled (here by its deadline) while its look waits for the database: the
    look still commits (SQLite's store thread finishes it), and the runs it leased are given
    back at once rather than left on a lease nobody holds until it expires."""
    url = await make_database_url()
    async with running_api(url) as api:
        who = api.user()
        started = []
        for _ in range(3):
            conversation = await api.create(who)
            started.append(await api.start(who, conversation.id))
        async with write_lock_held(url):
            gone = api.store.ClaimRun(
                store_service_pb2.ClaimRunRequest(
                    runner_id="gone", lease_seconds=600, wait_ms=0, max_runs=3
                ),
                timeout=0.5,
            )
            with pytest.raises(grpc.aio.AioRpcError) as left:
                await gone
            assert left.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The look commits once the lock is gone; what it leased to "gone" comes back, so this
        # long poll is woken and takes all three long before "gone"'s 600 s lease would expire.
        taken: list[str] = []
        while len(taken) < 3:
            claim = await api.store.ClaimRun(
                store_service_pb2.ClaimRunRequest(
                    runner_id="here", lease_seconds=600, wait_ms=20_000, max_runs=3
                ),
                timeout=30,
            )
            assert claim.HasField("run"), "the runs stayed leased to the claim that left"
            taken += [claim.run.id, *(c.run.id for c in claim.more)]
        assert sorted(taken) == sorted(run.id for run in started)
