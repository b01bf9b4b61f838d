"""The gateway against a real gRPC peer on loopback: a minimal ConversationService test double
served by services.common.grpc_server (with reflection), reached only over gRPC."""

from __future__ import annotations

import re
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
import pytest_asyncio
from agents.v1 import conversation_pb2, conversation_service_pb2_grpc, run_pb2
from agents.v1 import conversation_service_pb2 as cs

from gateway import app as gateway_app
from gateway.descriptors import files_of, load_from_files, load_service
from services.common.config import Settings
from services.common.errors import CATALOGUE, ParleyError
from services.common.grpc_server import HTTP_STATUS_KEY, REQUEST_ID_KEY, start_server

SETTINGS = Settings(docs_base_url="https://docs.example/agents", max_body_bytes=4096)


class _Peer(conversation_service_pb2_grpc.ConversationServiceServicer):
    """Echoes what it was sent so the test can see what the gateway transcoded."""

    async def CreateConversation(self, request: Any, context: Any) -> Any:
        conv = conversation_pb2.Conversation(id="c1", version=0, company_id=1, user_id=2)
        conv.defaults.CopyFrom(request.defaults)
        if request.HasField("name"):
            conv.name = request.name
        return conv

    async def ListConversations(self, request: Any, context: Any) -> Any:
        return cs.ListConversationsResponse(
            current_page=request.page or 1, total_records=0, total_pages=request.per_page
        )

    async def GetConversation(self, request: Any, context: Any) -> Any:
        if request.id == "boom":
            raise RuntimeError("a bug in the peer")
        if request.id == "shed":  # what gRPC core answers for a call it drops under load
            await context.abort(grpc.StatusCode.CANCELLED, "CANCELLED")
        raise ParleyError(
            "ConversationNotFound",
            f"conversation {request.id} not found",
            conversation_id=request.id,
        )

    async def StartRun(self, request: Any, context: Any) -> Any:
        if request.client_op_id == "replay":
            await context.send_initial_metadata([(HTTP_STATUS_KEY, "200")])
        meta = dict(context.invocation_metadata())
        run = run_pb2.Run(
            id="r1",
            conversation_id=request.id,
            client_op_id=request.client_op_id,
            status=run_pb2.RUN_STATUS_PENDING,
        )
        run.final_text = f"{meta.get('authorization')}|{meta.get(REQUEST_ID_KEY)}"
        run.tool_choice.CopyFrom(request.tool_choice)
        return run

    async def GetRun(self, request: Any, context: Any) -> Any:
        return run_pb2.Run(id=request.id, status=run_pb2.RUN_STATUS_COMPLETED)

    async def StreamRunEvents(self, request: Any, context: Any) -> Any:
        if request.id == "gone":
            raise ParleyError("RunNotFound", f"run {request.id} not found", run_id=request.id)
        for seq in range(request.after_seq + 1, request.after_seq + 3):
            yield run_pb2.RunEvent(seq=seq, type="run.status", status=run_pb2.RUN_STATUS_RUNNING)
        if request.id == "breaks":
            raise ParleyError("RunNotFound", "run breaks was deleted", run_id=request.id)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def peer() -> AsyncIterator[str]:
    server, port = await start_server(
        "127.0.0.1:0",
        [(conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server, _Peer())],
        [cs.DESCRIPTOR.services_by_name["ConversationService"].full_name],
    )
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(peer: str) -> AsyncIterator[httpx.AsyncClient]:
    channel = grpc.aio.insecure_channel(peer)
    loaded = await load_service(channel, deadline_s=5)
    asgi = gateway_app.build_app(SETTINGS, channel, loaded)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url="http://gw"
    ) as c:
        yield c
    await channel.close()


def _problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "log_id"}
    assert body["type"] == f"https://docs.example/agents/errors/{slug}"
    assert body["status"] == status
    assert body["log_id"] == resp.headers["x-request-id"]
    return body


async def test_create_and_list(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/agents/conversations",
        json={"name": "n", "defaults": {"model": "m", "data_plane_id": "d", "mcp_servers": []}},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "n" and body["system_prompt"] is None and body["created_at"] is None
    assert body["defaults"]["mcp_servers"] == [] and body["defaults"]["temperature"] is None
    listing = await client.get("/agents/conversations?page=3&per_page=20")
    assert listing.json()["current_page"] == 3 and listing.json()["total_pages"] == 20
    assert listing.json()["prev_page"] is None and listing.json()["records"] == []


async def test_start_run_202_forwards_auth_and_request_id(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/agents/conversations/c9/runs",
        headers={"Authorization": "Bearer tok", "X-Request-Id": "req-1"},
        json={
            "client_op_id": "op",
            "tool_choice": {"kind": "any"},
            "payload": {"kind": "user_message", "text": "hi"},
        },
    )
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert run["conversation_id"] == "c9" and run["status"] == "pending"
    assert run["final_text"] == "Bearer tok|req-1" and resp.headers["x-request-id"] == "req-1"
    assert run["tool_choice"] == {"kind": "any"}
    replay = await client.post(
        "/agents/conversations/c9/runs",
        json={"client_op_id": "replay", "payload": {"kind": "user_message", "text": "hi"}},
    )
    assert replay.status_code == 200


async def test_grpc_errors_become_problems(client: httpx.AsyncClient) -> None:
    body = _problem(await client.get("/agents/conversations/c404"), 404, "conversation-not-found")
    assert body["detail"] == "conversation c404 not found"
    assert body["title"] == "Conversation Not Found"
    assert body["instance"] == "/agents/conversations/c404"
    boom = _problem(await client.get("/agents/conversations/boom"), 500, "internal-error")
    assert "a bug" not in boom["detail"] and "Traceback" not in boom["detail"]
    shed = _problem(await client.get("/agents/conversations/shed"), 503, "service-unavailable")
    assert shed["detail"] == "the API service dropped the call under load; try again shortly"


async def test_a_burst_of_calls_on_one_channel_is_queued_not_shed(peer: str) -> None:
    """gRPC core's default backlog (1,000 calls not yet taken by the application) dropped ~10 %
    of a 2,000-call burst with CANCELLED; Parley's servers queue them."""
    async with grpc.aio.insecure_channel(peer) as channel:
        stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
        replies = await asyncio.gather(
            *(stub.GetRun(cs.GetRunRequest(id=f"r{i}"), timeout=60) for i in range(3000)),
            return_exceptions=True,
        )
    failures = [r for r in replies if isinstance(r, BaseException)]
    assert failures == []
    assert [r.id for r in replies] == [f"r{i}" for i in range(3000)]


async def test_decode_errors_are_400(client: httpx.AsyncClient) -> None:
    body = _problem(
        await client.post(
            "/agents/conversations/c/runs",
            json={"client_op_id": "x", "config_override": {"client_tools": []}},
        ),
        400,
        "invalid-request",
    )
    assert "use tools" in body["detail"]
    body = _problem(await client.get("/agents/conversations?page=abc"), 400, "invalid-request")
    assert "'page'" in body["detail"]
    _problem(await client.get("/agents/conversations?limit=1"), 400, "invalid-request")
    _problem(
        await client.post("/agents/conversations/c/runs", json={"id": "other"}),
        400,
        "invalid-request",
    )
    _problem(
        await client.post(
            "/agents/conversations", content=b"{nope", headers={"content-type": "application/json"}
        ),
        400,
        "invalid-request",
    )
    _problem(
        await client.request("GET", "/agents/runs/r1", content=b'{"a":1}'), 400, "invalid-request"
    )
    ok = await client.request("GET", "/agents/runs/r1", content=b"{}")
    assert ok.status_code == 200 and ok.json()["status"] == "completed"


async def test_media_type_and_size(client: httpx.AsyncClient) -> None:
    _problem(
        await client.post(
            "/agents/conversations", content=b"{}", headers={"content-type": "text/plain"}
        ),
        415,
        "unsupported-media-type",
    )
    big = orjson.dumps({"name": "x" * 5000})
    _problem(
        await client.post(
            "/agents/conversations", content=big, headers={"content-type": "application/json"}
        ),
        413,
        "request-too-large",
    )


async def test_routing_errors(client: httpx.AsyncClient) -> None:
    _problem(await client.get("/agents/nowhere"), 404, "not-found")
    resp = await client.delete("/agents/conversations")
    _problem(resp, 405, "method-not-allowed")
    assert resp.headers["allow"] == "GET, POST"


async def test_docs_openapi_metrics_health(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs/errors/version-conflict")
    assert page.status_code == 200 and "VersionConflict" in page.text
    assert "Version" in (await client.get("/docs/errors")).text
    _problem(await client.get("/docs/errors/no-such-thing"), 404, "not-found")
    spec = (await client.get("/openapi.json")).json()
    assert "/agents/runs/{id}" in spec["paths"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'route="/agents/conversations/{id}"' in metrics.text
    assert "c404" not in metrics.text


async def test_console_page_and_its_assets_come_from_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith(("/", "#")) and not src.startswith("//"), src  # same origin
        if src.startswith("/console/assets/"):
            asset = await client.get(src)
            assert asset.status_code == 200, src
    module = await client.get("/console/assets/app.js")
    assert module.headers["content-type"].startswith("text/javascript")
    assert module.headers["x-content-type-options"] == "nosniff"
    # every module the console imports is served
    for name in re.findall(r'from "\./([a-z]+\.js)"', module.text):
        assert (await client.get(f"/console/assets/{name}")).status_code == 200, name
    _problem(await client.get("/console/assets/nope.js"), 404, "not-found")


async def test_start_serves_real_http_on_an_ephemeral_port(peer: str) -> None:
    running = await gateway_app.start(SETTINGS, peer, "127.0.0.1", 0)
    try:
        assert running.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as c:
            resp = await c.get("/agents/runs/r7")
            assert resp.status_code == 200 and resp.json()["id"] == "r7"
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await running.stop()


async def test_healthz_is_503_when_the_api_is_gone() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        loaded = load_from_files(files_of(cs.DESCRIPTOR))
        asgi = gateway_app.build_app(SETTINGS, channel, loaded)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://gw"
        ) as c:
            assert (await c.get("/healthz")).status_code == 503
            body = _problem(await c.get("/agents/runs/r1"), 503, "service-unavailable")
            assert "127.0.0.1:1" not in body["detail"]
    finally:
        await channel.close()


async def test_server_streaming_is_sse_and_a_late_error_is_an_error_event(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/agents/runs/r1/events", headers={"Last-Event-ID": "4"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in resp.text.split("\n\n") if f]
    # Each event is named after its `type` (CONTRACT "Event stream") and carries its seq as id.
    assert [f.split("\n")[:2] for f in frames] == [
        ["event: run.status", "id: 5"],
        ["event: run.status", "id: 6"],
    ]
    assert orjson.loads(frames[0].split("data: ", 1)[1])["status"] == "running"
    late = await client.get("/agents/runs/breaks/events")
    assert late.status_code == 200
    error = late.text.rstrip("\n").rsplit("\n\n", 1)[1]
    assert error.startswith("event: error\ndata: ")
    body = orjson.loads(error.split("data: ", 1)[1])
    assert body == {  # the same RFC 7807 problem a unary call would answer
        "type": f"https://docs.example/agents/errors/{CATALOGUE['RunNotFound'].slug}",
        "title": CATALOGUE["RunNotFound"].title,
        "status": 404,
        "detail": "run breaks was deleted",
        "instance": "/agents/runs/breaks/events",
        "log_id": late.headers["x-request-id"],
    }
    _problem(await client.get("/agents/runs/gone/events"), 404, CATALOGUE["RunNotFound"].slug)
