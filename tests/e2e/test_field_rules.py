"""Every constraint the proto declares (`agents.v1.rules`, shown in /openapi.json) is one the API
enforces: each rule reachable from a request is broken, one at a time, in an otherwise valid
request, and the real API answers a 400 problem (404 for a malformed path id, which the contract
answers exactly like an unknown one). A rule no baseline reaches fails the test, so a new rule
cannot go unchecked."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import pytest
from agents.v1 import conversation_service_pb2 as cs
from google.protobuf import descriptor

from gateway import codec, descriptors, routes
from tests.spec_examples import DATA_PLANE, example_defaults

from .conftest import Suite
from .problems import PROBLEM_FIELDS

FD = descriptor.FieldDescriptor
MODEL = "anthropic.claude-opus-4.6"
SERVICE = cs.DESCRIPTOR.services_by_name["ConversationService"]
# Strings that break common patterns: empty, dashes, leading digits, too long, spaces, newlines.
PATTERN_BREAKERS = ["", "-", "1a", "a-b", "ab c", "abc\n", "a" * 65, "ftp://x", "http://a b"]
UUID_BREAKERS = [
    "not-a-uuid",
    "{3f1c1d2e-7b7a-4c55-9a51-0f7e2f0c9b11}",
    "urn:uuid:3f1c1d2e-7b7a-4c55-9a51-0f7e2f0c9b11",
    "3f1c1d2e7b7a4c559a510f7e2f0c9b11",
]
_MISSING = object()
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Target:
    """One rule-bearing field at a place in a request's JSON."""

    key: str  # the rule's identity: field full name, or `<list field>[].<name>`
    path: tuple[str | int, ...]
    field: descriptor.FieldDescriptor
    rules: Any


def _has_rules(rules: Any) -> bool:
    return rules.ByteSize() > 0 and (
        rules.required
        or rules.HasField("minimum")
        or rules.HasField("maximum")
        or rules.HasField("min_length")
        or bool(rules.pattern)
        or bool(rules.format)
    )


def _targets(desc: descriptor.Descriptor, value: Any, path: tuple) -> Iterator[Target]:
    if descriptors.union_discriminator(desc):
        tag = value[descriptors.union_discriminator(desc)]
        fields = list(desc.fields_by_name[tag].message_type.fields)
    elif descriptors.json_array(desc):
        field = codec.array_field(desc)
        for i, item in enumerate(value):
            yield from _element(field, item, (*path, i))
        return
    else:
        fields = list(desc.fields)
    for f in fields:
        rules = descriptors.field_rules(f)
        if _has_rules(rules):
            yield Target(f.full_name, (*path, f.name), f, rules)
        child = value.get(f.name)
        if (
            child is None
            or f.type != FD.TYPE_MESSAGE
            or f.message_type.full_name
            in (
                codec.STRUCT,
                codec.VALUE,
                codec.LIST_VALUE,
                codec.TIMESTAMP,
            )
        ):
            continue
        if f.is_repeated:
            for i, item in enumerate(child):
                yield from _element(f, item, (*path, f.name, i))
        else:
            yield from _targets(f.message_type, child, (*path, f.name))


def _element(field: descriptor.FieldDescriptor, item: Any, path: tuple) -> Iterator[Target]:
    for name, rules in descriptors.field_rules(field).element_fields.items():
        sub = field.message_type.fields_by_name[name]
        yield Target(f"{field.full_name}[].{name}", (*path, name), sub, rules)
    if field.type == FD.TYPE_MESSAGE:
        yield from _targets(field.message_type, item, path)


def _declared(desc: descriptor.Descriptor, seen: set[str] | None = None) -> set[str]:
    """Every rule key reachable from a request message."""
    seen = set() if seen is None else seen
    if desc.full_name in seen:
        return set()
    seen.add(desc.full_name)
    out: set[str] = set()
    for f in desc.fields:
        if _has_rules(descriptors.field_rules(f)):
            out.add(f.full_name)
        for name in descriptors.field_rules(f).element_fields:
            out.add(f"{f.full_name}[].{name}")
        if f.type == FD.TYPE_MESSAGE:
            out |= _declared(f.message_type, seen)
    return out


def _breakers(target: Target) -> Iterator[tuple[str, Any]]:
    """(what, value) pairs that break the target's rules; _MISSING removes the field."""
    rules, field = target.rules, target.field
    integer = field.type not in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT)
    if rules.required:
        yield "missing", _MISSING
    if rules.HasField("minimum"):
        yield "below minimum", int(rules.minimum) - 1 if integer else rules.minimum - 0.5
    if rules.HasField("maximum"):
        yield "above maximum", int(rules.maximum) + 1 if integer else rules.maximum + 0.5
    if rules.HasField("min_length"):
        yield "too short", "x" * (rules.min_length - 1)
    if rules.pattern:
        schema = {"type": "string", "pattern": rules.pattern}
        for candidate in PATTERN_BREAKERS:
            if not jsonschema_rs.is_valid(schema, candidate):
                yield f"not matching {rules.pattern}: {candidate!r}", candidate
    if rules.format == "uuid":
        for candidate in UUID_BREAKERS:
            yield f"not a uuid: {candidate!r}", candidate


def _set(request: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(request)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    if value is _MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


async def _send(suite: Suite, info: routes.MethodInfo, request: dict[str, Any]) -> Any:
    """The request as HTTP: path fields into the path, then body (`*`) or query."""
    path = info.binding.template.openapi_path()
    rest = dict(request)
    for name in info.binding.template.field_paths:
        path = path.replace("{" + name + "}", str(rest.pop(name, "")))
    method = info.binding.http_method
    if info.binding.body == "*":
        return await suite.http.request(method, path, json=rest, headers=suite.headers())
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in rest.items()}
    return await suite.http.request(method, path, params=query, headers=suite.headers())


def _tools() -> list[dict[str, Any]]:
    return [{"name": "confirm_booking", "input_schema": {"type": "object"}}]


def _off() -> dict[str, Any]:
    return {"enabled": False, "budget_tokens": 2048}  # its range holds even while it is off


def _servers() -> list[dict[str, Any]]:
    # A public host name: it does not resolve here, which synchronous validation lets pass.
    return [{"alias": "docs", "url": "https://docs.narrative.io/mcp", "tools": [{"name": "s"}]}]


async def _baselines(suite: Suite) -> dict[str, dict[str, Any]]:
    """One valid request per method that reaches every rule-bearing field."""
    conversation = await suite.create_conversation(
        defaults=example_defaults(mcp_servers=_servers(), tools=_tools())
    )
    runs_on = await suite.create_conversation()
    run = (await suite.start_run(runs_on["id"])).json()
    return {
        "CreateConversation": {
            "name": "rules",
            "defaults": example_defaults(mcp_servers=_servers(), tools=_tools(), thinking=_off()),
        },
        "ListConversations": {"page": 1, "per_page": 5},
        "GetConversation": {"id": conversation["id"]},
        "ListMessages": {"id": conversation["id"], "since": 0, "per_page": 5},
        "StartRun": {
            "id": conversation["id"],
            "client_op_id": str(uuid.uuid4()),
            "run_id": str(uuid.uuid4()),
            "expected_version": 0,
            "payload": {"kind": "user_message", "text": "What is 2 + 2?"},
            "tool_choice": {"kind": "specific_tool", "name": "confirm_booking"},
            "config_override": {
                "model": MODEL,
                "data_plane_id": DATA_PLANE,
                "execution_cluster": "shared",
                "max_iterations": 3,
                "max_tokens": 1024,
                "temperature": 0.5,
                "mcp_servers": _servers(),
                "tools": _tools(),
                "thinking": _off(),
            },
        },
        "GetRun": {"id": run["id"]},
        "ListRunInferenceJobs": {"id": run["id"]},
        "CancelRun": {"id": run["id"]},
        "StreamRunEvents": {"id": run["id"], "after_seq": 0},
        "ListModels": {},
        "ListRuns": {"limit": 5, "status": "completed,failed"},
        "ListConversationRuns": {"id": runs_on["id"], "limit": 5},
        "GetUsage": {},
    }


@pytest.mark.timeout(300)
async def test_every_declared_rule_is_enforced(suite: Suite) -> None:
    baselines = await _baselines(suite)
    methods = routes.methods_of(
        descriptors.load_from_files(descriptors.files_of(cs.DESCRIPTOR)).service
    )
    declared: set[str] = set()
    exercised: set[str] = set()
    failures: list[str] = []
    for info in methods:
        name = info.method.name
        baseline = baselines[name]
        declared |= _declared(info.method.input_type)
        path_fields = set(info.binding.template.field_paths)
        for target in _targets(info.method.input_type, baseline, ()):
            exercised.add(target.key)
            in_path = target.path[0] in path_fields
            for what, value in _breakers(target):
                if in_path and value is _MISSING:
                    continue  # a path without its variable is another route
                request = _set(baseline, target.path, value)
                response = await _send(suite, info, request)
                expected = 404 if in_path else 400
                label = f"{name} {'.'.join(map(str, target.path))} {what}"
                if response.status_code != expected:
                    failures.append(f"{label}: {response.status_code} {response.text[:200]}")
                    continue
                assert response.headers["content-type"] == PROBLEM, label
                assert set(response.json()) == PROBLEM_FIELDS, label
    assert not failures, "declared rules the API does not enforce:\n" + "\n".join(failures)
    assert declared <= exercised, f"rules no baseline reaches: {sorted(declared - exercised)}"
    # The baselines themselves are valid: the 400s came from the broken rules alone.
    start = next(m for m in methods if m.method.name == "StartRun")
    accepted = await _send(suite, start, baselines["StartRun"])
    assert accepted.status_code == 202, accepted.text


async def test_a_replay_with_a_bad_body_is_refused_too(suite: Suite) -> None:
    """The body is checked before the client_op_id replay (found by the REST fuzz: a replayed
    client_op_id answered 200 to a body whose override breaks the rules)."""
    conversation = await suite.create_conversation()
    op = str(uuid.uuid4())
    assert (await suite.start_run(conversation["id"], client_op_id=op)).status_code == 202
    bad = await suite.start_run(
        conversation["id"], client_op_id=op, config_override={"tools": [{}]}
    )
    assert bad.status_code == 400, bad.text
    replay = await suite.start_run(conversation["id"], client_op_id=op)
    assert replay.status_code == 200
