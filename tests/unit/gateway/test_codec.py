"""The codec against the real agents.v1 descriptors: output shapes, strict input, query params."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from agents.v1 import config_pb2, message_pb2, run_pb2
from agents.v1 import conversation_service_pb2 as cs
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import codec
from gateway.codec import DecodeError


def _out(message: Any) -> Any:
    return orjson.loads(codec.to_json(message))


def _bad(body: Any, cls: Any = cs.StartRunRequest) -> str:
    with pytest.raises(DecodeError) as info:
        codec.from_json(orjson.dumps(body), cls())
    return info.value.detail


# --- output -----------------------------------------------------------------------------------


def test_run_with_unset_fields_renders_explicit_nulls() -> None:
    run = run_pb2.Run(
        id="r1",
        conversation_id="c1",
        company_id=7,
        user_id=9,
        client_op_id="op",
        status=run_pb2.RUN_STATUS_PENDING,
    )
    out = _out(run)
    # every field, in order; but `live` (omit_empty) while unset: a listed run has none
    assert list(out) == [f.name for f in run_pb2.Run.DESCRIPTOR.fields if f.name != "live"]
    for name in (
        "tool_choice",
        "effective_config",
        "iterations_used",
        "usage",
        "final_text",
        "final_structured_output",
        "error",
        "started_at",
        "completed_at",
        "execution_started_at",
        "duration_ms",
        "cache_hit_rate",
        "total_cost_usd",
        "metadata",
    ):
        assert out[name] is None, name
    assert out["submitted_inference_job_ids"] == [] and out["pending_tool_calls"] == []
    assert out["status"] == "pending"


def test_enums_ints_and_timestamps() -> None:
    run = run_pb2.Run(
        status=run_pb2.RUN_STATUS_REQUIRES_ACTION, company_id=2**53 + 1, iterations_used=0
    )
    run.started_at.seconds, run.started_at.nanos = 1779110490, 355180999
    out = _out(run)
    assert out["status"] == "requires_action"
    assert out["company_id"] == 2**53 + 1 and isinstance(out["company_id"], int)
    assert out["iterations_used"] == 0  # set optional zero is 0, not null
    assert out["started_at"] == "2026-05-18T13:21:30.355180Z"
    msg = message_pb2.Message(role=message_pb2.ROLE_USER)
    assert _out(msg)["role"] == "user"
    assert _out(message_pb2.Message())["created_at"] is None


def test_content_block_unions_are_flat() -> None:
    msg = message_pb2.Message(sequence_no=2, role=message_pb2.ROLE_ASSISTANT)
    msg.content_blocks.add().text.text = "hi"
    use = msg.content_blocks.add().tool_use
    use.tool_use_id, use.name = "tu1", "docs-search"
    use.arguments.update({"query": "rate limiting", "n": 3})
    result = msg.content_blocks.add().tool_result
    result.tool_use_id = "tu1"
    result.content.add().text.text = "..."
    assert _out(msg)["content_blocks"] == [
        {"type": "text", "text": "hi"},
        {
            "type": "tool_use",
            "tool_use_id": "tu1",
            "name": "docs-search",
            "arguments": {"query": "rate limiting", "n": 3},
        },
        {
            "type": "tool_result",
            "tool_use_id": "tu1",
            "content": [{"type": "text", "text": "..."}],
            "is_error": False,
            "approval": None,
        },
    ]


def test_tool_choice_and_payload_round_trip() -> None:
    body = {
        "client_op_id": "op",
        "expected_version": 4,
        "payload": {
            "kind": "tool_outputs",
            "outputs": [{"tool_use_id": "t", "content": "yes", "is_error": True}],
            "approvals": [{"tool_use_id": "a", "decision": "deny", "reason": "not now"}],
        },
        "tool_choice": {"kind": "specific_tool", "name": "confirm", "mcp_alias": None},
    }
    req = codec.from_json(orjson.dumps(body), cs.StartRunRequest())
    assert req.payload.WhichOneof("input") == "tool_outputs"
    assert not req.tool_choice.specific_tool.HasField("mcp_alias")
    out = _out(req)
    assert out["payload"] == body["payload"]
    assert out["tool_choice"] == body["tool_choice"]
    assert out["config_override"] is None and out["id"] == ""
    auto = codec.from_json(b'{"tool_choice": {"kind": "auto"}}', cs.StartRunRequest())
    assert auto.tool_choice.HasField("auto") and _out(auto)["tool_choice"] == {"kind": "auto"}


def test_json_array_presence_absent_vs_empty() -> None:
    absent = codec.from_json(b'{"config_override": {}}', cs.StartRunRequest())
    assert not absent.config_override.HasField("mcp_servers")
    assert _out(absent)["config_override"]["mcp_servers"] is None
    empty = codec.from_json(b'{"config_override": {"mcp_servers": []}}', cs.StartRunRequest())
    assert empty.config_override.HasField("mcp_servers")
    assert _out(empty)["config_override"]["mcp_servers"] == []
    one = codec.from_json(
        b'{"config_override": {"mcp_servers": [{"alias": "docs", "url": "https://x/mcp"}]}}',
        cs.StartRunRequest(),
    )
    assert _out(one)["config_override"]["mcp_servers"] == [
        {
            "alias": "docs",
            "url": "https://x/mcp",
            "description": None,
            "tools": [],
            "require_approval": None,
        }
    ]
    nulled = codec.from_json(b'{"config_override": {"tools": null}}', cs.StartRunRequest())
    assert not nulled.config_override.HasField("tools")


def test_struct_value_and_list_value_are_plain_json() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "nested": [1, 2.5, None, True, "x", {"deep": []}],
    }
    req = codec.from_json(
        orjson.dumps(
            {"defaults": {"model": "m", "data_plane_id": "d", "output_format_schema": schema}}
        ),
        cs.CreateConversationRequest(),
    )
    assert _out(req)["defaults"]["output_format_schema"] == schema
    run = run_pb2.Run()
    run.final_structured_output.list_value.values.add().number_value = 3
    assert _out(run)["final_structured_output"] == [3]


def test_timestamp_parses_offsets_and_fractions() -> None:
    msg = message_pb2.Message()
    codec.from_value({"created_at": "2026-05-18T15:21:30.5+02:00"}, msg)
    assert _out(msg)["created_at"] == "2026-05-18T13:21:30.500000Z"


# --- strict input -----------------------------------------------------------------------------


def test_retired_client_tools_names_the_replacement() -> None:
    detail = _bad({"config_override": {"client_tools": []}})
    assert detail.startswith("config_override.client_tools is not accepted: use tools (")
    detail = _bad({"defaults": {"client_tools": []}}, cs.CreateConversationRequest)
    assert "defaults.client_tools" in detail and "use tools" in detail


@pytest.mark.parametrize(
    ("body", "cls", "expected"),
    [
        ({"defaults": {"foo": 1}}, cs.CreateConversationRequest, "'defaults.foo'"),
        ({"nope": 1}, cs.StartRunRequest, "'nope'"),
        (
            {"expected_version": "3"},
            cs.StartRunRequest,
            "expected_version: expected integer, got string",
        ),
        ({"expected_version": 1.5}, cs.StartRunRequest, "expected_version: expected integer"),
        ({"expected_version": True}, cs.StartRunRequest, "got boolean"),
        ({"expected_version": 2**63}, cs.StartRunRequest, "out of range"),
        (
            {"config_override": {"max_tokens": 2**31}},
            cs.StartRunRequest,
            "config_override.max_tokens",
        ),
        ({"config_override": {"temperature": "hot"}}, cs.StartRunRequest, "expected number"),
        ({"config_override": {"temperature": False}}, cs.StartRunRequest, "expected number"),
        (
            {"config_override": {"mcp_servers": {}}},
            cs.StartRunRequest,
            "config_override.mcp_servers: expected array",
        ),
        (
            {"config_override": {"mcp_servers": [{"alias": 1}]}},
            cs.StartRunRequest,
            "config_override.mcp_servers[0].alias: expected string",
        ),
        (
            {"config_override": {"mcp_servers": [None]}},
            cs.StartRunRequest,
            "mcp_servers[0]: must not be null",
        ),
        (
            {"config_override": {"tools": [{"name": "t", "strict": 1}]}},
            cs.StartRunRequest,
            "config_override.tools[0].strict: expected boolean",
        ),
        ({"config_override": {"output_format_schema": []}}, cs.StartRunRequest, "expected object"),
        (
            {"payload": {"text": "x"}},
            cs.StartRunRequest,
            "payload.kind is required: one of 'user_message', 'tool_outputs'",
        ),
        ({"payload": {"kind": "shout"}}, cs.StartRunRequest, "payload.kind: 'shout' is not one of"),
        ({"payload": {"kind": 1}}, cs.StartRunRequest, "payload.kind: integer is not one of"),
        ({"payload": {"kind": "user_message", "txt": "x"}}, cs.StartRunRequest, "'payload.txt'"),
        (
            {"payload": {"kind": "user_message", "text": 5}},
            cs.StartRunRequest,
            "payload.text: expected string",
        ),
        ({"tool_choice": {"kind": "auto", "name": "x"}}, cs.StartRunRequest, "'tool_choice.name'"),
        ({"payload": "hello"}, cs.StartRunRequest, "payload: expected object, got string"),
        ([], cs.StartRunRequest, "the request body: expected object, got array"),
    ],
)
def test_bad_input_names_the_path(body: Any, cls: Any, expected: str) -> None:
    assert expected in _bad(body, cls)


def test_enum_input_is_lowercase_and_unspecified_is_rejected() -> None:
    msg = message_pb2.Message()
    codec.from_value({"role": "assistant"}, msg)
    assert msg.role == message_pb2.ROLE_ASSISTANT
    for bad in ("unspecified", "ROLE_USER", "User", 1):
        with pytest.raises(DecodeError, match="role"):
            codec.from_value({"role": bad}, message_pb2.Message())


def test_malformed_json_and_depth_guard() -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        codec.from_json(b"{", cs.StartRunRequest())
    deep: Any = {"kind": "text", "text": "x"}
    for _ in range(codec.MAX_DEPTH + 2):
        deep = {"type": "tool_result", "content": [deep]}
    with pytest.raises(DecodeError, match="nested deeper"):
        codec.from_value(deep, message_pb2.ContentBlock())
    nested: Any = 1
    for _ in range(codec.MAX_DEPTH + 2):
        nested = [nested]
    with pytest.raises(DecodeError, match="nested deeper"):
        codec.from_value({"final_structured_output": nested}, run_pb2.Run())


def test_bad_timestamps() -> None:
    for bad in ("yesterday", "2026-02-30T00:00:00Z", "2026-05-18 13:21:30Z", 5):
        with pytest.raises(DecodeError, match="created_at"):
            codec.from_value({"created_at": bad}, message_pb2.Message())


# --- query and path parameters ----------------------------------------------------------------


def test_query_parameters_fill_unbound_fields() -> None:
    req = cs.ListConversationsRequest()
    codec.fill_query(req, [("page", "2"), ("per_page", "20")], frozenset())
    assert (req.page, req.per_page) == (2, 20)
    msgs = cs.ListMessagesRequest()
    codec.fill_query(msgs, [("since", "3")], frozenset({"id"}))
    assert msgs.HasField("since") and msgs.since == 3


@pytest.mark.parametrize(
    ("pairs", "forbidden", "expected"),
    [
        ([("page", "two")], frozenset(), "query parameter 'page': expected integer, got 'two'"),
        ([("page", "1.5")], frozenset(), "expected integer"),
        ([("page", "99999999999")], frozenset(), "out of range"),
        ([("page", "1"), ("page", "2")], frozenset(), "given 2 times"),
        ([("limit", "1")], frozenset(), "unknown query parameter 'limit'"),
    ],
)
def test_bad_query_parameters(
    pairs: list[tuple[str, str]], forbidden: frozenset[str], expected: str
) -> None:
    with pytest.raises(DecodeError) as info:
        codec.fill_query(cs.ListConversationsRequest(), pairs, forbidden)
    assert expected in info.value.detail


def test_path_bound_and_body_rules_refuse_query() -> None:
    with pytest.raises(DecodeError, match="unknown query parameter 'id'"):
        codec.fill_query(cs.ListMessagesRequest(), [("id", "x")], frozenset({"id"}))
    with pytest.raises(DecodeError, match="unknown query parameter 'client_op_id'"):
        codec.fill_query(cs.StartRunRequest(), [("client_op_id", "x")], frozenset({"*"}))
    with pytest.raises(DecodeError, match="unknown query parameter 'payload'"):
        codec.fill_query(cs.StartRunRequest(), [("payload", "x")], frozenset())


def test_nested_query_parameter_by_field_path() -> None:
    req = cs.StartRunRequest()
    codec.fill_query(req, [("config_override.max_tokens", "10")], frozenset())
    assert req.config_override.max_tokens == 10  # a plain message is walked
    for key in ("tool_choice.specific_tool.name", "config_override.mcp_servers", "config_override"):
        with pytest.raises(DecodeError, match="unknown query parameter"):  # unions, lists: not
            codec.fill_query(cs.StartRunRequest(), [(key, "x")], frozenset())


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "kind",
                        "text",
                        "payload",
                        "config_override",
                        "tools",
                        "mcp_servers",
                        "temperature",
                        "client_tools",
                        "id",
                        "x",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_fuzz_decoder_raises_only_decode_error(value: Any) -> None:
    for cls in (cs.StartRunRequest, cs.CreateConversationRequest, message_pb2.ContentBlock):
        try:
            msg = codec.from_value(value, cls())
        except DecodeError:
            continue
        codec.to_json(msg)


def test_decoded_config_round_trips() -> None:
    body = {
        "model": "anthropic.claude-opus-4.6",
        "data_plane_id": "d",
        "execution_cluster": "shared",
        "compute_pool_id": None,
        "max_iterations": 3,
        "max_tokens": 2048,
        "temperature": 0.5,
        "output_format_schema": None,
        "mcp_servers": [
            {
                "alias": "docs",
                "url": "https://x",
                "description": "d",
                "tools": [
                    {"name": "search", "description": None, "input_schema": None, "strict": None}
                ],
                "require_approval": ["search"],
            }
        ],
        "tools": [],
        "stream": False,
        "thinking": {"enabled": True, "budget_tokens": 1024},
        "prompt_caching": False,
    }
    cfg = codec.from_value(body, config_pb2.AgentConfig())
    assert _out(cfg) == body


def _shapes_message() -> Any:
    """A message with the field kinds agents.v1 does not use yet: maps, bytes, repeated enums,
    non-finite doubles and a field named by a Python keyword."""
    fd = descriptor_pb2.FileDescriptorProto(
        name="codec_shapes.proto", package="shapes", syntax="proto3"
    )
    fd.dependency.append("google/protobuf/timestamp.proto")
    fd.enum_type.add(name="Color").value.extend(
        [
            descriptor_pb2.EnumValueDescriptorProto(name="COLOR_UNSPECIFIED", number=0),
            descriptor_pb2.EnumValueDescriptorProto(name="COLOR_DEEP_RED", number=1),
        ]
    )
    FDP = descriptor_pb2.FieldDescriptorProto  # noqa: N806
    inner = fd.message_type.add(name="Inner")
    inner.field.add(name="n", number=1, type=FDP.TYPE_INT32, label=FDP.LABEL_OPTIONAL)
    shapes = fd.message_type.add(name="Shapes")
    for key, value, type_name in (
        ("IntsEntry", FDP.TYPE_INT32, ""),
        ("InnersEntry", FDP.TYPE_MESSAGE, ".shapes.Inner"),
    ):
        entry = shapes.nested_type.add(name=key)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=value, label=FDP.LABEL_OPTIONAL)
        if type_name:
            entry.field[-1].type_name = type_name
    fields = [
        ("ints", FDP.TYPE_MESSAGE, ".shapes.Shapes.IntsEntry", FDP.LABEL_REPEATED),
        ("inners", FDP.TYPE_MESSAGE, ".shapes.Shapes.InnersEntry", FDP.LABEL_REPEATED),
        ("raw", FDP.TYPE_BYTES, "", FDP.LABEL_OPTIONAL),
        ("colors", FDP.TYPE_ENUM, ".shapes.Color", FDP.LABEL_REPEATED),
        ("ratios", FDP.TYPE_DOUBLE, "", FDP.LABEL_REPEATED),
        ("from", FDP.TYPE_STRING, "", FDP.LABEL_OPTIONAL),
        ("stamps", FDP.TYPE_MESSAGE, ".google.protobuf.Timestamp", FDP.LABEL_REPEATED),
        ("child", FDP.TYPE_MESSAGE, ".shapes.Shapes", FDP.LABEL_OPTIONAL),
    ]
    for number, (name, kind, type_name, label) in enumerate(fields, start=1):
        shapes.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            shapes.field[-1].type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shapes.Shapes"))()


def test_compiled_encoder_renders_every_field_kind() -> None:
    m = _shapes_message()
    m.ints["a"] = 1
    m.inners["b"].n = 2
    m.raw = b"\x00\xff"
    m.colors.extend([1, 0, 7])
    m.ratios.extend([0.5, float("nan"), float("inf")])
    setattr(m, "from", "here")  # noqa: B010 - a keyword: no attribute syntax
    m.stamps.add(seconds=1, nanos=5000)
    m.child.raw = b"x"
    out = codec.to_value(m)
    assert out == {
        "ints": {"a": 1},
        "inners": {"b": {"n": 2}},
        "raw": "AP8=",
        "colors": ["deep_red", "unspecified", 7],
        "ratios": [0.5, None, None],
        "from": "here",
        "stamps": ["1970-01-01T00:00:01.000005Z"],
        "child": {
            "ints": {},
            "inners": {},
            "raw": "eA==",
            "colors": [],
            "ratios": [],
            "from": "",
            "stamps": [],
            "child": None,
        },
    }
    field = codec.plan(m.DESCRIPTOR).fields["from"]
    assert field.encode(m) == "here"  # a `response_body` rule's single field
