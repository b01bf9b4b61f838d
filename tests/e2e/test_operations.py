"""Operations from day one: reflection, health, metrics, OpenAPI and the error pages."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.config import Settings
from services.common.errors import CATALOGUE
from services.runner import server as runner_server
from services.tooling import server as tooling_server

from .conftest import DOCS, Suite


async def _list_services(port: int) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for response in responses:
            return {s.name for s in response.list_services_response.service}
    return set()


async def _health(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
        return reply.status


@pytest.mark.parametrize(
    ("module", "service"),
    [(runner_server, "agents.v1.RunnerService"), (tooling_server, "agents.v1.ToolRouterService")],
)
async def test_internal_services_offer_reflection_and_health(module, service: str) -> None:
    settings = Settings(jwt_secret="j" * 32, internal_secret="i" * 32)
    running = await module.start(settings, "127.0.0.1:0")
    try:
        assert service in await _list_services(running.port)
        assert await _health(running.port, service) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop()


async def test_api_offers_reflection_and_health(suite: Suite) -> None:
    services = await _list_services(suite.api_port)
    assert {"agents.v1.ConversationService", "grpc.health.v1.Health"} <= services
    assert "agents.v1.StoreService" not in services  # on the internal listener only
    assert "agents.v1.StoreService" in await _list_services(suite.store_port)
    assert (
        await _health(suite.store_port, "agents.v1.StoreService")
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert (
        await _health(suite.api_port, "agents.v1.ConversationService")
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert (await suite.http.get("/healthz")).json() == {"status": "ok"}


async def test_metrics_after_real_traffic(suite: Suite) -> None:
    await suite.create_conversation()
    await suite.http.get("/agents/conversations", headers=suite.headers())
    await suite.http.get("/agents/conversations")  # a 401
    response = await suite.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    metrics = response.text
    assert (
        'parley_gateway_requests_total{method="POST",route="/agents/conversations",status="200"}'
        in metrics
    )
    assert 'route="/agents/conversations",status="401"' in metrics
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="CreateConversation",'
        'grpc_service="agents.v1.ConversationService",grpc_type="unary"}'
    ) in metrics
    assert 'grpc_code="UNAUTHENTICATED"' in metrics
    assert "grpc_server_handling_seconds_bucket" in metrics
    assert "grpc_server_started_total" in metrics and "grpc_server_msg_sent_total" in metrics
    assert 'parley_build_info{python_version="' in metrics
    assert "parley_gateway_request_seconds_bucket" in metrics


async def test_openapi_describes_every_route(suite: Suite) -> None:
    spec = (await suite.http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    expected = {
        ("post", "/agents/conversations"),
        ("get", "/agents/conversations"),
        ("get", "/agents/conversations/{id}"),
        ("get", "/agents/conversations/{id}/messages"),
        ("post", "/agents/conversations/{id}/runs"),
        ("get", "/agents/runs/{id}"),
    }
    found = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert expected <= found
    assert "202" in spec["paths"]["/agents/conversations/{id}/runs"]["post"]["responses"]


async def test_error_pages_are_served(suite: Suite) -> None:
    for entry in CATALOGUE.values():
        page = await suite.http.get(f"/docs/errors/{entry.slug}")
        assert page.status_code == 200, entry.slug
        assert entry.title in page.text
    missing = await suite.http.get("/docs/errors/no-such-page")
    assert missing.status_code == 404
    assert missing.json()["type"] == f"{DOCS}/errors/not-found"
