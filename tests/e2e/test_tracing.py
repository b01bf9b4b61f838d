"""A run's whole path is one trace in an OTLP collector: `parley up` as an operator runs it, with
OTEL_EXPORTER_OTLP_ENDPOINT pointed at a fake Collector on loopback (the OTLP/HTTP protobuf
receiver, refusing what a Collector refuses). The client's `traceparent` is the trace: the HTTP
span, every gRPC hop's server span, the run, its iterations, each model call (with the GenAI
attributes, and its traceparent sent to Bedrock) and each MCP call (its traceparent sent to the
MCP server). A run resumed after its runner was killed continues the same trace."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path

import httpx
import jwt

from tests.fakes import bedrock as fb
from tests.fakes import mcp_servers
from tests.fakes.otlp import Collector, Span, serve_collector
from tests.spec_examples import example_defaults

from .conftest import SECRET
from .processes import base_env, free_port, parley_up

CLIENT_TRACE = secrets.token_hex(16)
CLIENT_SPAN = secrets.token_hex(8)


def _token() -> str:
    claims = {"company_id": 1, "user_id": 1, "scope": "agent_conversations:read "
              "agent_conversations:write", "exp": 2_000_000_000}  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def _one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[str]:
    names = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


def _complete(collector: Collector) -> bool:
    names = {s.name for s in collector.of_trace(CLIENT_TRACE)}
    wanted = {
        "invoke_agent parley",
        "execute_tool auth-ping",
        "POST /agents/conversations/{id}/runs",
    }
    return (
        wanted <= names
        and sum(n.startswith("chat ") for n in names) >= 1
        and ("agents.v1.StoreService/CommitRun" in names)
    )


async def test_a_run_is_one_trace_from_the_clients_traceparent_to_bedrock_and_mcp(
    tmp_path: Path,
) -> None:
    recorder = mcp_servers.AuthRecorder()
    async with (
        serve_collector() as collector,
        fb.serve_fake_bedrock() as bedrock,
        mcp_servers.serve(recorder.app()) as mcp_url,
    ):
        question = f"Trace me {uuid.uuid4().hex[:8]}"
        bedrock.on(question, fb.tool_uses(("t1", "auth-ping", {})), fb.text("traced"))
        http = free_port()
        env = base_env(
            bedrock.url,
            PARLEY_HTTP_PORT=str(http),
            PARLEY_API_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_STORE_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_TOOLING_ADDR=f"127.0.0.1:{free_port()}",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="50",  # export within 50 ms of a span's end
        )
        up = parley_up(tmp_path, env)
        await up.start()
        try:
            base = f"http://127.0.0.1:{http}"
            auth = {"Authorization": f"Bearer {_token()}"}
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
                servers = [{"alias": "auth", "url": mcp_url}]
                created = await client.post(
                    "/agents/conversations",
                    json={"defaults": example_defaults(mcp_servers=servers)},
                )
                assert created.status_code == 200, created.text
                traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
                started = await client.post(
                    f"/agents/conversations/{created.json()['id']}/runs",
                    json={
                        "client_op_id": str(uuid.uuid4()),
                        "expected_version": 0,
                        "payload": {"kind": "user_message", "text": question},
                    },
                    headers={"traceparent": traceparent},
                )
                assert started.status_code == 202, started.text
                run_id = started.json()["id"]
                await collector.wait_for(_complete)
                run = (await client.get(f"/agents/runs/{run_id}")).json()
        finally:
            await up.stop()
    assert run["status"] == "completed", run
    assert run["trace_id"] == CLIENT_TRACE  # what the run shows is the trace its spans join
    assert not collector.refused
    spans = collector.of_trace(CLIENT_TRACE)
    by_id = _by_id(spans)

    http_span = _one(spans, "POST /agents/conversations/{id}/runs")
    assert http_span.parent_span_id == CLIENT_SPAN  # the client's span is its parent
    assert http_span.attributes["http.response.status_code"] == 202
    start = _one(spans, "agents.v1.ConversationService/StartRun")
    assert start.parent_span_id == http_span.span_id

    agent = _one(spans, "invoke_agent parley")
    assert agent.parent_span_id == start.span_id  # the run keeps the StartRun's traceparent
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["parley.run.id"] == run_id
    assert agent.attributes["gen_ai.conversation.id"] == run["conversation_id"]
    assert agent.attributes["parley.run.status"] == "completed"

    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.name)
    assert len(chats) == 2
    for chat in chats:
        assert _ancestors(chat, by_id)[:2] == [chat_iteration(chat, by_id), "invoke_agent parley"]
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "aws.bedrock"
        assert chat.attributes["gen_ai.request.model"] == "us.anthropic.claude-opus-4-6-v1"
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    iterations = {by_id[c.parent_span_id].name for c in chats}
    assert iterations == {"iteration 1", "iteration 2"}

    tool = _one(spans, "execute_tool auth-ping")
    assert tool.attributes["gen_ai.tool.name"] == "auth-ping"
    assert tool.attributes["gen_ai.tool.call.id"] == "t1"
    assert by_id[tool.parent_span_id].name == "iteration 1"
    call = _one(spans, "agents.v1.ToolRouterService/CallTool")
    assert call.parent_span_id == tool.span_id  # the runner -> tool router hop
    commit = _one(spans, "agents.v1.StoreService/CommitRun")
    assert "invoke_agent parley" in _ancestors(commit, by_id)  # the runner -> store hop

    # Out of Parley: Bedrock got each chat span's traceparent, the MCP server the trace's.
    sent = [r.headers.get("traceparent", "") for r in bedrock.requests_for(question)]
    assert sent == [f"00-{CLIENT_TRACE}-{c.span_id}-01" for c in chats_in_order(chats, by_id)]
    assert recorder.traceparents and all(
        t is not None and t.split("-")[1] == CLIENT_TRACE for t in recorder.traceparents
    )


def chat_iteration(chat: Span, by_id: dict[str, Span]) -> str:
    return by_id[chat.parent_span_id].name


def chats_in_order(chats: list[Span], by_id: dict[str, Span]) -> list[Span]:
    return sorted(chats, key=lambda c: by_id[c.parent_span_id].name)


async def test_a_run_resumed_after_a_kill_continues_its_trace(tmp_path: Path) -> None:
    """`parley up` killed with SIGKILL while the model answers, then started again: the run
    resumes at once, and its new claim's `invoke_agent` span (attempt 2) joins the trace its
    StartRun began, under that StartRun's span."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    async with serve_collector() as collector, fb.serve_fake_bedrock() as bedrock:
        question = f"Survive me {uuid.uuid4().hex[:8]}"
        gate = fb.Gate(fb.text("lost with the process"))
        bedrock.on(question, gate, fb.text("survived"))
        http = free_port()
        env = base_env(
            bedrock.url,
            PARLEY_HTTP_PORT=str(http),
            PARLEY_API_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_STORE_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_RUNNER_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_TOOLING_ADDR=f"127.0.0.1:{free_port()}",
            PARLEY_RUNNER_LEASE_SECONDS="120",  # resumed at once, not after the lease
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        up = parley_up(tmp_path, env)
        await up.start()
        try:
            base = f"http://127.0.0.1:{http}"
            auth = {"Authorization": f"Bearer {_token()}"}
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
                created = await client.post(
                    "/agents/conversations", json={"defaults": example_defaults()}
                )
                started = await client.post(
                    f"/agents/conversations/{created.json()['id']}/runs",
                    json={
                        "client_op_id": str(uuid.uuid4()),
                        "expected_version": 0,
                        "payload": {"kind": "user_message", "text": question},
                    },
                    headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
                )
                assert started.status_code == 202, started.text
                await asyncio.wait_for(gate.arrived.wait(), 30)
                await collector.wait_for(
                    lambda c: any(
                        s.name == "agents.v1.ConversationService/StartRun"
                        for s in c.of_trace(trace_id)
                    )
                )
                await up.kill()
                gate.release()  # its answer goes nowhere: the call died with the process
                await up.start()

                def resumed(c: Collector) -> bool:
                    return any(s.name == "invoke_agent parley" for s in c.of_trace(trace_id))

                await collector.wait_for(resumed)
                run = (await client.get(f"/agents/runs/{started.json()['id']}")).json()
        finally:
            await up.stop()
    assert run["status"] == "completed" and run["final_text"] == "survived", run
    spans = collector.of_trace(trace_id)
    start = _one(spans, "agents.v1.ConversationService/StartRun")
    agent = _one(spans, "invoke_agent parley")  # the killed claim's span never ended
    assert agent.attributes["parley.run.attempt"] == 2
    assert agent.parent_span_id == start.span_id
    assert any(s.name.startswith("chat ") and s.attributes.get("gen_ai.usage.output_tokens")
               for s in spans)  # fmt: skip
