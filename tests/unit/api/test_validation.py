"""validation.py: every rule of configs, output schemas, tool choice and run requests."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from agents.v1 import config_pb2, conversation_service_pb2, message_pb2, run_pb2
from google.protobuf import json_format

from services.api import effective_config, validation
from services.common import catalogue
from services.common.config import DEFAULT_DATA_PLANE_ID
from services.common.errors import ParleyError
from tests.spec_examples import EXAMPLE_4_SCHEMA

CATALOGUE = catalogue.parse(
    f"""
[[data_planes]]
id = "{DEFAULT_DATA_PLANE_ID}"
companies = ["*"]

[[data_planes]]
id = "00000000-0000-4000-8000-000000000007"
companies = [7]

[[clusters]]
name = "shared"
provider = "bedrock"
companies = ["*"]

[[clusters]]
name = "snowflake"
provider = "cortex"
base_url = "https://acme.snowflakecomputing.com"
token_env = "SNOWFLAKE_PAT"
companies = [7]

[[models]]
id = "anthropic.claude-opus-4.6"
bedrock = "us.anthropic.claude-opus-4-6-v1"
cortex = "claude-opus-4-6"

[[models]]
id = "amazon.nova-pro"
bedrock = "us.amazon.nova-pro-v1:0"
""",
    "test-catalogue.toml",
)
RULES = validation.ConfigRules(CATALOGUE, allow_private_networks=False)
COMPANY = 1  # may use the default data plane and `shared` only
SCHEMA_OK = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def config(**fields: Any) -> config_pb2.AgentConfig:
    body = {"model": "anthropic.claude-opus-4.6", "data_plane_id": DEFAULT_DATA_PLANE_ID, **fields}
    return effective_config.with_defaults(json_format.ParseDict(body, config_pb2.AgentConfig()))


def raises(code: str, fn: Any, *args: Any) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        fn(*args)
    assert info.value.entry.code == code, info.value.detail
    return info.value


def test_a_complete_config_passes() -> None:
    validation.validate_config(
        config(
            output_format_schema=EXAMPLE_4_SCHEMA,
            tools=[{"name": "confirm_booking", "input_schema": SCHEMA_OK}],
            mcp_servers=[
                {
                    "alias": "docs",
                    "url": "https://docs.narrative.io/mcp",
                    "tools": [{"name": "search"}],
                }
            ],
        ),
        RULES,
        "defaults",
        COMPANY,
    )


def test_a_company_may_use_its_own_data_plane_and_cluster() -> None:
    cfg = config(
        data_plane_id="00000000-0000-4000-8000-000000000007", execution_cluster="snowflake"
    )
    assert validation.validate_config(cfg, RULES, "defaults", 7).name == "snowflake"


@pytest.mark.parametrize(
    ("field", "theirs", "unknown", "code"),
    [
        (
            "data_plane_id",
            "00000000-0000-4000-8000-000000000007",
            "00000000-0000-4000-8000-000000000008",
            "UnknownDataPlane",
        ),
        ("execution_cluster", "snowflake", "nowhere", "UnknownExecutionCluster"),
    ],
)
def test_another_companys_data_plane_or_cluster_is_refused_as_an_unknown_one(
    field: str, theirs: str, unknown: str, code: str
) -> None:
    refused = raises(code, validation.validate_config, config(**{field: theirs}), RULES, "d", 1)
    missing = raises(code, validation.validate_config, config(**{field: unknown}), RULES, "d", 1)
    assert refused.detail == missing.detail.replace(unknown, theirs)
    assert "snowflake" not in missing.detail  # the clusters listed are the caller's own
    assert refused.entry == missing.entry and refused.metadata.keys() == missing.metadata.keys()


def test_a_model_without_an_id_on_the_clusters_provider_is_refused() -> None:
    cfg = config(
        model="amazon.nova-pro",
        data_plane_id="00000000-0000-4000-8000-000000000007",
        execution_cluster="snowflake",
    )
    error = raises("ModelNotAvailableOnCluster", validation.validate_config, cfg, RULES, "d", 7)
    assert "snowflake" in error.detail and "cortex" in error.detail
    assert error.detail.endswith("the models it runs: anthropic.claude-opus-4.6")
    assert error.entry.slug == "model-not-available-on-cluster" and error.entry.http_status == 400


@pytest.mark.parametrize(
    ("fields", "code", "detail"),
    [
        ({"model": ""}, "InvalidRequest", "defaults.model"),
        ({"model": "gpt-4"}, "UnknownModel", "anthropic.claude-opus-4.6, amazon.nova-pro"),
        ({"data_plane_id": ""}, "InvalidRequest", "defaults.data_plane_id"),
        ({"data_plane_id": str(uuid.UUID(int=1))}, "UnknownDataPlane", "data_plane_id"),
        ({"execution_cluster": "dedicated"}, "UnknownExecutionCluster", "dedicated"),
        ({"max_iterations": 0}, "InvalidRequest", "max_iterations"),
        ({"max_iterations": 101}, "InvalidRequest", "max_iterations"),
        ({"max_tokens": 0}, "InvalidRequest", "max_tokens"),
        ({"max_tokens": 65537}, "InvalidRequest", "max_tokens"),
        ({"temperature": -0.1}, "InvalidRequest", "temperature"),
        ({"temperature": 1.01}, "InvalidRequest", "temperature"),
        ({"temperature": float("nan")}, "InvalidRequest", "temperature"),
    ],
)
def test_scalar_rules(fields: dict, code: str, detail: str) -> None:
    cfg = config()
    for name, value in fields.items():
        setattr(cfg, name, value)
    assert (
        detail in raises(code, validation.validate_config, cfg, RULES, "defaults", COMPANY).detail
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"max_iterations": 1, "max_tokens": 1, "temperature": 0.0},
        {"max_iterations": 100, "max_tokens": 65536, "temperature": 1.0},
    ],
)
def test_range_edges(fields: dict) -> None:
    validation.validate_config(config(**fields), RULES, "defaults", COMPANY)


@pytest.mark.parametrize(
    ("schema", "keyword", "path"),
    [
        ({"type": "object", "oneOf": [{"type": "object"}]}, "oneOf", "$.oneOf"),
        ({"allOf": []}, "allOf", "$.allOf"),
        ({"not": {"type": "string"}}, "not", "$.not"),
        ({"$defs": {"a": {}}, "$ref": "#/$defs/a"}, "$defs", "$.$defs"),
        ({"$ref": "#/x"}, "$ref", "$.$ref"),
        ({"if": {}, "then": {}, "else": {}}, "if", "$.if"),
        ({"type": "string", "pattern": "^a"}, "pattern", "$.pattern"),
        (
            {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
            "format",
            "$.properties.when.format",
        ),
        (
            {"type": "array", "items": {"type": "string", "format": "email"}},
            "format",
            "$.items.format",
        ),
        ({"anyOf": [{"type": "string"}, {"oneOf": []}]}, "oneOf", "$.anyOf[1].oneOf"),
        (
            {"type": "object", "additionalProperties": True},
            "additionalProperties",
            "$.additionalProperties",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "string"}},
            "additionalProperties",
            "$.additionalProperties",
        ),
    ],
)
def test_output_schema_outside_the_subset(schema: dict, keyword: str, path: str) -> None:
    error = raises("UnsupportedOutputSchema", validation.validate_output_schema, schema, "x")
    assert keyword in error.detail and path in error.detail
    assert error.metadata["path"] == path


def test_property_names_are_not_keywords() -> None:
    validation.validate_output_schema(
        {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "format": {"type": "integer", "minimum": 0},
            },
        },
        "x",
    )


@pytest.mark.parametrize(
    "schema",
    [
        EXAMPLE_4_SCHEMA,
        {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {"type": "object", "properties": {"n": {"type": "number", "maximum": 5}}},
        },
        {
            "type": "string",
            "enum": ["a", "b"],
            "minLength": 1,
            "maxLength": 2,
            "description": "d",
            "title": "t",
        },
    ],
)
def test_output_schema_subset_accepted(schema: dict) -> None:
    validation.validate_output_schema(schema, "x")


def test_output_schema_must_be_valid() -> None:
    raises("InvalidRequest", validation.validate_output_schema, {"type": "strin"}, "x")
    raises("InvalidRequest", validation.validate_output_schema, {"minLength": -1}, "x")


def test_empty_output_schema_is_text_mode() -> None:
    cfg = config(output_format_schema={})
    assert not cfg.HasField("output_format_schema")
    validation.validate_config(cfg, RULES, "defaults", COMPANY)


@pytest.mark.parametrize("alias", ["", "1docs", "my_docs", "my-docs", "docsdocs9", "dócs"])
def test_bad_aliases(alias: str) -> None:
    cfg = config(mcp_servers=[{"alias": alias, "url": "https://x.test/mcp"}])
    error = raises("InvalidToolAlias", validation.validate_config, cfg, RULES, "defaults", COMPANY)
    assert f"`{alias}`" in error.detail


@pytest.mark.parametrize("alias", ["d", "docs", "Kb2", "docsdoc9"])
def test_good_aliases(alias: str) -> None:
    validation.validate_config(
        config(mcp_servers=[{"alias": alias, "url": "https://x.test/mcp"}]), RULES, "d", COMPANY
    )


def test_duplicate_aliases() -> None:
    cfg = config(
        mcp_servers=[
            {"alias": "docs", "url": "https://a.test/mcp"},
            {"alias": "docs", "url": "https://b.test/mcp"},
        ]
    )
    assert (
        "twice"
        in raises("InvalidToolAlias", validation.validate_config, cfg, RULES, "d", COMPANY).detail
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a.test/mcp",
        "docs.test/mcp",
        "/mcp",
        "https://",
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]/",
        "http://127.0.0.1:8000/mcp",
        "http://10.0.0.5/mcp",
        "http://localhost:9000/mcp",
        "http://a.test:99999/mcp",
    ],
)
def test_urls_refused(url: str) -> None:
    raises("McpUrlNotAllowed", validation.check_mcp_url, url, "u", False)


def test_private_networks_when_allowed() -> None:
    validation.check_mcp_url("http://127.0.0.1:8000/mcp", "u", True)
    validation.check_mcp_url("http://localhost:8000/mcp", "u", True)
    raises("McpUrlNotAllowed", validation.check_mcp_url, "http://169.254.169.254/", "u", True)


def test_mcp_allow_list() -> None:
    ok = config(
        mcp_servers=[{"alias": "docs", "url": "https://a.test/mcp", "tools": [{"name": "x" * 59}]}]
    )
    validation.validate_config(ok, RULES, "d", COMPANY)  # docs- + 59 = 64
    long = config(
        mcp_servers=[{"alias": "docs", "url": "https://a.test/mcp", "tools": [{"name": "x" * 60}]}]
    )
    assert (
        "64"
        in raises("ToolNameTooLong", validation.validate_config, long, RULES, "d", COMPANY).detail
    )
    empty = config(
        mcp_servers=[{"alias": "docs", "url": "https://a.test/mcp", "tools": [{"name": ""}]}]
    )
    raises("InvalidRequest", validation.validate_config, empty, RULES, "d", COMPANY)


@pytest.mark.parametrize(
    ("tools", "detail"),
    [
        ([{"name": ""}], "non-empty"),
        ([{"name": "confirm-booking"}], "dash"),
        ([{"name": "with space"}], "letters"),
        ([{"name": "x" * 65}], "letters"),
        ([{"name": "a"}, {"name": "a"}], "twice"),
    ],
)
def test_bad_caller_tools(tools: list, detail: str) -> None:
    error = raises(
        "InvalidCallerToolName",
        validation.validate_config,
        config(tools=tools),
        RULES,
        "defaults",
        COMPANY,
    )
    assert detail in error.detail


@pytest.mark.parametrize(
    "schema", [{"type": "string"}, {"properties": {}}, {"type": "object", "required": "q"}]
)
def test_caller_tool_input_schema(schema: dict) -> None:
    cfg = config(tools=[{"name": "ask", "input_schema": schema}])
    raises("InvalidRequest", validation.validate_config, cfg, RULES, "defaults", COMPANY)


def test_caller_tools_without_schema_are_fine() -> None:
    validation.validate_config(
        config(tools=[{"name": "ask_user"}, {"name": "x" * 64}]), RULES, "d", COMPANY
    )


# --- tool choice --------------------------------------------------------------------------------

CATALOGUE = config(
    tools=[{"name": "confirm_booking"}],
    mcp_servers=[
        {"alias": "docs", "url": "https://docs.test/mcp"},
        {"alias": "kb", "url": "https://kb.test/mcp", "tools": [{"name": "search"}]},
    ],
)


def choice(**body: Any) -> config_pb2.ToolChoice:
    return json_format.ParseDict(body, config_pb2.ToolChoice())


@pytest.mark.parametrize(
    "body",
    [
        {"auto": {}},
        {"any": {}},
        {"specific_tool": {"name": "confirm_booking"}},
        {"specific_tool": {"name": "anything", "mcp_alias": "docs"}},
        {"specific_tool": {"name": "search", "mcp_alias": "kb"}},
    ],
)
def test_tool_choices_accepted(body: dict) -> None:
    validation.validate_tool_choice(choice(**body), CATALOGUE)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "InvalidRequest"),
        ({"specific_tool": {"name": ""}}, "InvalidRequest"),
        ({"specific_tool": {"name": "nope"}}, "UnknownToolChoiceName"),
        ({"specific_tool": {"name": "search", "mcp_alias": "web"}}, "UnknownToolChoiceMcpAlias"),
        ({"specific_tool": {"name": "not_allowed", "mcp_alias": "kb"}}, "UnknownToolChoiceName"),
    ],
)
def test_tool_choices_refused(body: dict, code: str) -> None:
    raises(code, validation.validate_tool_choice, choice(**body), CATALOGUE)


def test_any_needs_a_catalogue() -> None:
    raises("InvalidRequest", validation.validate_tool_choice, choice(any={}), config())
    validation.validate_tool_choice(choice(auto={}), config())


# --- run requests -------------------------------------------------------------------------------


def start(**body: Any) -> conversation_service_pb2.StartRunRequest:
    base = {
        "id": str(uuid.uuid4()),
        "client_op_id": str(uuid.uuid4()),
        "expected_version": 0,
        "payload": {"user_message": {"text": "hi"}},
    }
    base.update(body)
    return json_format.ParseDict(
        {k: v for k, v in base.items() if v is not None}, conversation_service_pb2.StartRunRequest()
    )


def test_start_run_request_ok_and_canonical() -> None:
    op = uuid.uuid4()
    assert validation.validate_start_run(start(client_op_id=str(op).upper())) == str(op)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client_op_id": None}, "client_op_id"),
        ({"client_op_id": "nope"}, "client_op_id"),
        ({"expected_version": None}, "expected_version"),
        ({"expected_version": -1}, "expected_version"),
        ({"payload": None}, "payload"),
        ({"payload": {}}, "payload.kind"),
        ({"payload": {"user_message": {"text": "  "}}}, "payload.text"),
    ],
)
def test_start_run_request_refused(body: dict, field: str) -> None:
    error = raises("InvalidRequest", validation.validate_start_run, start(**body))
    assert error.metadata["field"] == field


def outputs(*ids: str) -> list[run_pb2.ToolOutput]:
    return [run_pb2.ToolOutput(tool_use_id=i, content="ok") for i in ids]


def answers(
    out: tuple[str, ...] = (), approve: tuple[str, ...] = (), deny: tuple[str, ...] = ()
) -> run_pb2.RunPayload.ToolOutputs:
    decided = [
        run_pb2.ToolApproval(tool_use_id=i, decision=message_pb2.APPROVAL_DECISION_APPROVE)
        for i in approve
    ]
    decided += [
        run_pb2.ToolApproval(
            tool_use_id=i, decision=message_pb2.APPROVAL_DECISION_DENY, reason="no"
        )
        for i in deny
    ]
    return run_pb2.RunPayload.ToolOutputs(outputs=outputs(*out), approvals=decided)


def pending(*calls: tuple[str, str]) -> list[run_pb2.PendingToolCall]:
    kinds = {"caller": run_pb2.PendingToolCall.KIND_CALLER}
    kinds["approval"] = run_pb2.PendingToolCall.KIND_APPROVAL
    return [run_pb2.PendingToolCall(tool_use_id=i, kind=kinds[k]) for i, k in calls]


PRODUCED = {"c1": "ask_user", "c2": "confirm", "m2": "docs-search", "a1": "docs-delete"}
CALLERS = pending(("c1", "caller"), ("c2", "caller"))


@pytest.mark.parametrize(
    ("ids", "code", "detail"),
    [
        (("c1", "nope"), "UnknownToolUseId", "nope"),
        (("c1", "m2"), "NotAClientToolCall", "m2"),
        (("c1",), "IncompleteToolOutputs", "missing c2"),
        (("c1", "c2", "c2"), "IncompleteToolOutputs", "more than once c2"),
        ((), "IncompleteToolOutputs", "missing c1, c2"),
    ],
)
def test_tool_outputs_refused(ids: tuple, code: str, detail: str) -> None:
    error = raises(code, validation.check_tool_outputs, answers(ids), CALLERS, PRODUCED)
    assert detail in error.detail


def test_tool_outputs_in_any_order() -> None:
    validation.check_tool_outputs(answers(("c2", "c1")), CALLERS, PRODUCED)


def test_a_call_stored_without_a_kind_is_a_caller_call() -> None:
    old = [run_pb2.PendingToolCall(tool_use_id="c1"), run_pb2.PendingToolCall(tool_use_id="c2")]
    validation.check_tool_outputs(answers(("c1", "c2")), old, PRODUCED)


MIXED = pending(("c1", "caller"), ("a1", "approval"))


@pytest.mark.parametrize(
    ("sent", "code", "detail"),
    [
        (answers(("c1", "a1")), "ToolCallAwaitsApproval", "`a1`"),
        (answers(("c1",), approve=("c1", "a1")), "NotAnApprovalRequest", "answer it in `outputs`"),
        (answers(("c1",), approve=("a1", "m2")), "NotAnApprovalRequest", "`m2`"),
        (answers(("c1",), approve=("a1", "zz")), "UnknownToolUseId", "zz"),
        (answers(("c1",)), "IncompleteToolOutputs", "approvals: missing a1"),
        (answers(approve=("a1",)), "IncompleteToolOutputs", "missing c1"),
        (
            answers(("c1",), approve=("a1",), deny=("a1",)),
            "IncompleteToolOutputs",
            "approvals: answered more than once a1",
        ),
    ],
)
def test_approvals_refused(sent: Any, code: str, detail: str) -> None:
    error = raises(code, validation.check_tool_outputs, sent, MIXED, PRODUCED)
    assert detail in error.detail


def test_an_approval_needs_a_decision() -> None:
    sent = answers(("c1",))
    sent.approvals.add(tool_use_id="a1")
    error = raises("InvalidRequest", validation.check_tool_outputs, sent, MIXED, PRODUCED)
    assert "approvals[0].decision is required" in error.detail


@pytest.mark.parametrize("decide", [{"approve": ("a1",)}, {"deny": ("a1",)}])
def test_approvals_accepted(decide: dict) -> None:
    validation.check_tool_outputs(answers(("c1",), **decide), MIXED, PRODUCED)
    validation.check_tool_outputs(answers(**decide), pending(("a1", "approval")), PRODUCED)


# --- approval policies and thinking -------------------------------------------------------------


def server(**fields: Any) -> dict[str, Any]:
    return {"alias": "db", "url": "https://db.test/mcp", **fields}


@pytest.mark.parametrize("policy", ["never", "always", [], ["delete_record"], ["a", "b"], None])
def test_approval_policies_accepted(policy: Any) -> None:
    fields = {} if policy is None else {"require_approval": policy}
    validation.validate_config(config(mcp_servers=[server(**fields)]), RULES, "defaults", COMPANY)


@pytest.mark.parametrize(
    ("policy", "detail"),
    [
        ("sometimes", 'must be "never", "always" or a list'),
        (3, 'must be "never", "always" or a list'),
        ({"tools": ["a"]}, 'must be "never", "always" or a list'),
        (["a", ""], "[1] must be a tool name"),
        (["a", 2], "[1] must be a tool name"),
        (["a", "a"], "names `a` twice"),
    ],
)
def test_approval_policies_refused(policy: Any, detail: str) -> None:
    cfg = config(mcp_servers=[server(require_approval=policy)])
    error = raises("InvalidRequest", validation.validate_config, cfg, RULES, "defaults", COMPANY)
    assert "defaults.mcp_servers[0].require_approval" in error.detail and detail in error.detail


def test_an_approval_list_stays_inside_the_allow_list() -> None:
    inside = server(tools=[{"name": "read"}, {"name": "delete"}], require_approval=["delete"])
    validation.validate_config(config(mcp_servers=[inside]), RULES, "defaults", COMPANY)
    outside = server(tools=[{"name": "read"}], require_approval=["delete"])
    error = raises(
        "InvalidRequest",
        validation.validate_config,
        config(mcp_servers=[outside]),
        RULES,
        "d",
        COMPANY,
    )
    assert "names delete, which the server's `tools` allow-list does not offer" in error.detail


THINKING = {"enabled": True, "budget_tokens": 2048}


def test_thinking_on_takes_temperature_1_by_default() -> None:
    cfg = config(thinking=THINKING, max_tokens=4096)
    assert cfg.temperature == 1.0 and cfg.stream
    validation.validate_config(cfg, RULES, "defaults", COMPANY)
    assert config().temperature == 0.0  # off: the usual default


@pytest.mark.parametrize(
    ("fields", "code", "detail"),
    [
        ({"thinking": {"enabled": True}}, "InvalidThinkingConfig", "budget_tokens is required"),
        (
            {"thinking": THINKING, "max_tokens": 2048},
            "InvalidThinkingConfig",
            "(2048) must be below max_tokens (2048)",
        ),
        (
            {"thinking": THINKING, "max_tokens": 4096, "temperature": 0.0},
            "InvalidThinkingConfig",
            "temperature must be 1",
        ),
        ({"thinking": {"enabled": True, "budget_tokens": 1023}}, "InvalidRequest", "1024"),
        ({"thinking": {"enabled": False, "budget_tokens": 100}}, "InvalidRequest", "1024"),
    ],
)
def test_thinking_refused(fields: dict, code: str, detail: str) -> None:
    error = raises(code, validation.validate_config, config(**fields), RULES, "defaults", COMPANY)
    assert detail in error.detail


def test_thinking_runs_on_bedrock_clusters_only() -> None:
    cfg = config(thinking=THINKING, max_tokens=4096, execution_cluster="snowflake")
    error = raises("InvalidThinkingConfig", validation.validate_config, cfg, RULES, "defaults", 7)
    assert "`snowflake` (provider cortex) does not take thinking" in error.detail
    off = config(thinking={"enabled": False}, execution_cluster="snowflake")
    validation.validate_config(off, RULES, "defaults", 7)


def test_thinking_off_keeps_any_temperature() -> None:
    cfg = config(thinking={"enabled": False, "budget_tokens": 2048}, temperature=0.3)
    validation.validate_config(cfg, RULES, "defaults", COMPANY)


@pytest.mark.parametrize("body", [{"any": {}}, {"specific_tool": {"name": "confirm_booking"}}])
def test_thinking_refuses_a_forced_tool(body: dict) -> None:
    cfg = config(tools=[{"name": "confirm_booking"}], thinking=THINKING, max_tokens=4096)
    raises("InvalidThinkingConfig", validation.validate_tool_choice, choice(**body), cfg)
    validation.validate_tool_choice(choice(auto={}), cfg)


def test_an_override_replaces_thinking_whole() -> None:
    defaults = config(thinking=THINKING, max_tokens=4096)
    override = json_format.ParseDict(
        {"thinking": {"enabled": False}, "stream": False}, config_pb2.ConfigOverride()
    )
    merged = effective_config.merge(defaults, override)
    assert not merged.thinking.enabled and not merged.thinking.HasField("budget_tokens")
    assert merged.stream is False and merged.temperature == 1.0


def test_page_size() -> None:
    def size(per_page: int | None = None) -> int:
        request = conversation_service_pb2.ListMessagesRequest(per_page=per_page)
        return validation.page_size(request, 50, 200)

    assert size() == 50
    assert size(500) == 200
    assert size(1) == 1
    for bad in (0, -5):
        error = raises("InvalidRequest", size, bad)
        assert error.metadata["field"] == "per_page" and f"got {bad}" in error.detail


def test_known_configs_answer_as_validate_config_does() -> None:
    """A config seen before gets the same cluster without being checked again; a refused one is
    refused every time (an error is not remembered), for each field and company apart."""
    known = validation.KnownConfigs(RULES, size=2)
    good = config()
    cluster = validation.validate_config(good, RULES, "defaults", COMPANY)
    assert known.validate(good, "defaults", COMPANY) == cluster
    assert known.validate(config(), "defaults", COMPANY) is known.validate(good, "defaults", 1)
    bad = config(max_tokens=0)
    for _ in range(2):
        error = raises("InvalidRequest", known.validate, bad, "config_override", COMPANY)
        assert error.metadata["field"] == "config_override.max_tokens"
    other = config(execution_cluster="elsewhere")
    for _ in range(2):
        raises("UnknownExecutionCluster", known.validate, other, "defaults", COMPANY)
    for n in range(1, 5):  # more configs than it keeps: the oldest are checked again
        assert known.validate(config(max_tokens=n), "defaults", COMPANY) == cluster
    assert known.validate(good, "defaults", COMPANY) == cluster
