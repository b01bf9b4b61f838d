"""/openapi.json as the gateway builds it from the API's reflection: every operation, parameter,
schema and property is described (the proto comments survive reflection), the spec's examples
are valid and accepted, and a real run's event stream matches the documented events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest_asyncio

from tests.fakes import bedrock as fb
from tests.spec_examples import BOOKING_TOOL, example_defaults

from .conftest import Suite
from .runner_suite import RunnerSuite, running_runner_suite, unique

METHODS = ("get", "post", "put", "patch", "delete")


def _validator(spec: dict[str, Any], ref: str) -> jsonschema_rs.Validator:
    """A validator for one component, with the document's other components to resolve."""
    return jsonschema_rs.validator_for(
        {"$ref": ref, "components": spec["components"]}, validate_formats=True
    )


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def _undescribed(name: str, schema: Any) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    for prop, sub in schema.get("properties", {}).items():
        if "description" not in sub:
            yield f"{name}.{prop}"
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _undescribed(f"{name}.{key}[{i}]", sub)


async def test_every_operation_parameter_and_property_is_described(suite: Suite) -> None:
    spec = (await suite.http.get("/openapi.json")).json()
    operations = dict(_operations(spec))
    assert len(operations) == 13
    for label, operation in operations.items():
        assert operation.get("summary") and operation.get("description"), label
        assert operation["description"].startswith(operation["summary"]), label
        for param in operation.get("parameters", []):
            assert param.get("description"), (label, param["name"])
    schemas = spec["components"]["schemas"]
    missing = [p for name, schema in schemas.items() for p in _undescribed(name, schema)]
    assert not missing, missing
    described = [name for name, schema in schemas.items() if schema.get("description")]
    assert len(described) == len(schemas), set(schemas) - set(described)


async def test_constraints_are_in_the_schema(suite: Suite) -> None:
    spec = (await suite.http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    body = schemas["StartRunRequestBody"]
    assert body["required"] == ["client_op_id", "expected_version", "payload"]
    assert body["properties"]["client_op_id"]["format"] == "uuid"
    assert body["properties"]["expected_version"]["minimum"] == 0
    assert body["properties"]["expected_version"]["type"] == "integer"  # required: never null
    config = schemas["AgentConfigInput"]
    assert config["required"] == ["model", "data_plane_id"]
    iterations = config["properties"]["max_iterations"]
    assert (iterations["minimum"], iterations["maximum"], iterations["default"]) == (1, 100, 3)
    assert config["properties"]["temperature"]["maximum"] == 1
    assert config["properties"]["max_tokens"]["maximum"] == 65536
    alias = schemas["McpServerInput"]["properties"]["alias"]
    assert alias["pattern"] == "^[A-Za-z][A-Za-z0-9]{0,7}$"
    tool_name = config["properties"]["tools"]["items"]["allOf"][1]["properties"]["name"]
    assert tool_name["pattern"] == "^[A-Za-z0-9_]{1,64}$"
    assert schemas["CreateConversationRequest"]["required"] == ["defaults"]
    listing = {p["name"]: p for p in spec["paths"]["/agents/conversations"]["get"]["parameters"]}
    assert (
        listing["page"]["schema"]["minimum"] == 1 and listing["per_page"]["schema"]["minimum"] == 1
    )
    # Responses carry every field: the response schema requires them all (but `live`, which a
    # listed run leaves out).
    run = schemas["Run"]
    assert set(run["required"]) == set(run["properties"]) - {"live"}
    assert schemas["Run"]["properties"]["id"]["format"] == "uuid"
    # Links lead from an answer carrying an id to the operations that take it.
    links = spec["paths"]["/agents/conversations/{id}/runs"]["post"]["responses"]["202"]["links"]
    assert links["CancelRun"]["parameters"] == {"id": "$response.body#/id"}
    assert links["StartRun"]["parameters"] == {"id": "$response.body#/conversation_id"}


async def test_a_user_message_s_content_is_documented_as_the_blocks_a_caller_may_send(
    suite: Suite,
) -> None:
    """Text, image and document (the API refuses the rest: tests/e2e/test_content.py); the blocks
    only Parley writes (tool results nest blocks) stay out of the input, which is not recursive."""
    components = (await suite.http.get("/openapi.json")).json()["components"]["schemas"]
    variants = components["ContentBlockInput"]["discriminator"]["mapping"]
    assert sorted(variants) == ["document", "image", "text"]
    assert sorted(components["ContentBlock"]["discriminator"]["mapping"]) == sorted(
        ["text", "tool_use", "tool_result", "image", "audio", "resource", "resource_link"]
        + ["json", "document", "reasoning"]
    )


async def test_examples_are_valid_and_accepted(suite: Suite) -> None:
    spec = (await suite.http.get("/openapi.json")).json()
    create = spec["paths"]["/agents/conversations"]["post"]["requestBody"]["content"]
    start = spec["paths"]["/agents/conversations/{id}/runs"]["post"]["requestBody"]["content"]
    create_examples = create["application/json"]["examples"]
    start_examples = start["application/json"]["examples"]
    assert len(create_examples) == 4 and len(start_examples) == 5
    create_schema = _validator(spec, create["application/json"]["schema"]["$ref"])
    start_schema = _validator(spec, start["application/json"]["schema"]["$ref"])
    conversations = []
    for key, example in create_examples.items():
        create_schema.validate(example["value"])
        r = await suite.http.post(
            "/agents/conversations", json=example["value"], headers=suite.headers()
        )
        assert r.status_code == 200, (key, r.text)
        conversations.append(r.json()["id"])
    # Each run example on the conversation of the create example with the same number; the
    # resume example needs a paused run, so it is only checked against the schema here.
    for key, example in start_examples.items():
        start_schema.validate(example["value"])
        if example["value"]["payload"]["kind"] == "tool_outputs":
            continue
        number = int(key.split("-")[1])
        r = await suite.http.post(
            f"/agents/conversations/{conversations[number - 1]}/runs",
            json=example["value"],
            headers=suite.headers(),
        )
        assert r.status_code == 202, (key, r.text)


@pytest_asyncio.fixture(scope="module")
async def rs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[RunnerSuite]:
    async with running_runner_suite(await make_database_url()) as suite:
        yield suite


async def _frames(rs: RunnerSuite, run_id: str) -> list[dict[str, str]]:
    frames: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    async with rs.http.stream(
        "GET", f"/agents/runs/{run_id}/events", headers=rs.headers()
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "":
                if frame:
                    frames.append(frame)
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.removeprefix(" ")
    return frames


async def test_a_run_s_event_stream_matches_the_documented_events(rs: RunnerSuite) -> None:
    spec = (await rs.http.get("/openapi.json")).json()
    stream = spec["paths"]["/agents/runs/{id}/events"]["get"]["responses"]["200"]["content"]
    variants = {
        v["properties"]["event"]["const"]: v for v in stream["text/event-stream"]["schema"]["oneOf"]
    }
    assert set(variants) == {
        "run.status",
        "turn",
        "usage",
        "run.completed",
        "run.requires_action",
        "run.failed",
        "message.delta",
        "reasoning.delta",
        "turn.restarted",
        "tool.call",
        "tool.result",
        "error",
    }
    question = unique("Book me a slot")
    rs.bedrock.on(
        question, fb.tool_uses(("tu_1", "confirm_booking", {"proposed_slot": "3pm"}), say="ok")
    )
    conversation = await rs.create_conversation(defaults=example_defaults(tools=[BOOKING_TOOL]))
    run = await rs.start_run(conversation["id"], question)
    frames = await _frames(rs, run["id"])
    seen = []
    for frame in frames:
        variant = variants[frame["event"]]
        event_schema = jsonschema_rs.validator_for(variant)
        event_schema.validate({k: v for k, v in frame.items() if k in ("event", "id", "data")})
        ref = variant["properties"]["data"]["contentSchema"]["$ref"]
        _validator(spec, ref).validate(json.loads(frame["data"]))
        seen.append(frame["event"])
    assert seen[0] == "run.status" and seen[-1] == "run.requires_action", seen
    assert {"turn", "usage", "message.delta", "tool.call"} <= set(seen), seen
