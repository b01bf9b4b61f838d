"""/openapi.json from the real ConversationService descriptors, loaded into a fresh pool the
way reflection does (so custom options are read through the re-parse path)."""

from __future__ import annotations

from typing import Any

import pytest
from agents.v1 import conversation_service_pb2 as cs

from gateway import descriptors, openapi, routes


@pytest.fixture(scope="module")
def loaded() -> descriptors.LoadedService:
    return descriptors.load_from_files(descriptors.files_of(cs.DESCRIPTOR))


@pytest.fixture(scope="module")
def spec(loaded: descriptors.LoadedService) -> dict[str, Any]:
    return openapi.build(routes.methods_of(loaded.service), loaded.comments)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_loaded_from_a_fresh_pool(loaded: descriptors.LoadedService) -> None:
    assert loaded.pool is not None and loaded.service.full_name == descriptors.PUBLIC_SERVICE
    start = loaded.service.methods_by_name["StartRun"]
    assert descriptors.success_status(start) == 202
    assert descriptors.http_rule(start).post == "/agents/conversations/{id}/runs"


def test_every_annotated_rpc_has_its_method_and_path(
    loaded: descriptors.LoadedService, spec: dict[str, Any]
) -> None:
    assert spec["openapi"].startswith("3.1")
    annotated = [
        m
        for m in cs.DESCRIPTOR.services_by_name["ConversationService"].methods
        if descriptors.http_rule(m) is not None
    ]
    assert len(annotated) >= 6
    for m in annotated:
        rule = descriptors.http_rule(m)
        verb = rule.WhichOneof("pattern")
        path = getattr(rule, verb)
        assert spec["paths"][path][verb]["operationId"] == m.name
    assert set(spec["paths"]["/agents/conversations"]) == {"get", "post"}


def test_start_run_answers_202_and_documents_problems(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/agents/conversations/{id}/runs"]["post"]
    assert "202" in op["responses"]
    assert op["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Run"
    }
    assert "application/problem+json" in op["responses"]["default"]["content"]
    assert [p["name"] for p in op["parameters"]] == ["id"]
    body_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert "id" not in body["properties"] and "payload" in body["properties"]


def test_query_parameters(spec: dict[str, Any]) -> None:
    listing = spec["paths"]["/agents/conversations"]["get"]
    assert {p["name"]: p["in"] for p in listing["parameters"]} == {
        "page": "query",
        "per_page": "query",
    }
    messages = spec["paths"]["/agents/conversations/{id}/messages"]["get"]
    assert {p["name"]: p["in"] for p in messages["parameters"]} == {
        "id": "path",
        "since": "query",
        "per_page": "query",
    }


def test_schemas_mirror_the_codec(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    run = schemas["Run"]["properties"]
    assert run["status"]["enum"] == ["pending", "running", "completed", "requires_action", "failed"]
    assert run["iterations_used"]["type"] == ["integer", "null"]
    assert run["company_id"] == {"type": "integer", "format": "int64"}
    assert run["started_at"]["type"] == ["string", "null"]
    assert run["tool_choice"] == {
        "anyOf": [{"$ref": "#/components/schemas/ToolChoice"}, {"type": "null"}]
    }
    assert run["submitted_inference_job_ids"]["type"] == "array"
    choice = schemas["ToolChoice"]
    assert choice["discriminator"]["propertyName"] == "kind"
    assert set(choice["discriminator"]["mapping"]) == {"auto", "any", "specific_tool"}
    specific = schemas["ToolChoice.specific_tool"]
    assert specific["properties"]["kind"]["const"] == "specific_tool"
    assert specific["properties"]["mcp_alias"]["type"] == ["string", "null"]
    assert schemas["McpServerList"]["type"] == "array"
    block = schemas["ContentBlock"]
    assert block["discriminator"]["propertyName"] == "type"
    assert "client_tools" not in schemas["ConfigOverride"]["properties"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
