"""Every documented validation rule of defaults, overrides and tool choice, as a client meets it."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from .conftest import Suite, example_defaults
from .problems import assert_problem

SCHEMA_OK = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


@pytest.mark.parametrize(
    ("defaults", "slug", "detail"),
    [
        (example_defaults(model="gpt-4"), "unknown-model", "anthropic.claude-opus-4.6"),
        (
            example_defaults(data_plane_id="00000000-0000-4000-8000-000000000000"),
            "unknown-data-plane",
            "data_plane_id",
        ),
        (example_defaults(execution_cluster="dedicated"), "unknown-execution-cluster", "dedicated"),
        (example_defaults(max_iterations=0), "invalid-request", "max_iterations"),
        (example_defaults(max_tokens=0), "invalid-request", "max_tokens"),
        (example_defaults(temperature=1.5), "invalid-request", "temperature"),
        (example_defaults(temperature=-0.1), "invalid-request", "temperature"),
        (
            example_defaults(
                output_format_schema={"type": "object", "oneOf": [{"type": "object"}]}
            ),
            "unsupported-output-schema",
            "oneOf",
        ),
        (
            example_defaults(
                output_format_schema={
                    "type": "object",
                    "properties": {"when": {"type": "string", "format": "date-time"}},
                }
            ),
            "unsupported-output-schema",
            "format",
        ),
        (
            example_defaults(output_format_schema={"$defs": {"a": {}}, "$ref": "#/$defs/a"}),
            "unsupported-output-schema",
            "$",
        ),
        (
            example_defaults(output_format_schema={"type": "string", "pattern": "^a"}),
            "unsupported-output-schema",
            "pattern",
        ),
        (
            example_defaults(mcp_servers=[{"alias": "my_docs", "url": "https://x.test/mcp"}]),
            "invalid-tool-alias",
            "my_docs",
        ),
        (
            example_defaults(mcp_servers=[{"alias": "1docs", "url": "https://x.test/mcp"}]),
            "invalid-tool-alias",
            "1docs",
        ),
        (
            example_defaults(mcp_servers=[{"alias": "docsdocs9", "url": "https://x.test/mcp"}]),
            "invalid-tool-alias",
            "docsdocs9",
        ),
        (
            example_defaults(mcp_servers=[{"alias": "", "url": "https://x.test/mcp"}]),
            "invalid-tool-alias",
            "",
        ),
        (
            example_defaults(
                mcp_servers=[
                    {"alias": "docs", "url": "https://a.test/mcp"},
                    {"alias": "docs", "url": "https://b.test/mcp"},
                ]
            ),
            "invalid-tool-alias",
            "docs",
        ),
        (
            example_defaults(mcp_servers=[{"alias": "docs", "url": "ftp://a.test/mcp"}]),
            "mcp-url-not-allowed",
            "ftp",
        ),
        (
            example_defaults(
                mcp_servers=[
                    {"alias": "docs", "url": "https://a.test/mcp", "tools": [{"name": "x" * 60}]}
                ]
            ),
            "tool-name-too-long",
            "64",
        ),
        (
            example_defaults(tools=[{"name": "confirm-booking", "input_schema": SCHEMA_OK}]),
            "invalid-caller-tool-name",
            "confirm-booking",
        ),
        (
            example_defaults(tools=[{"name": "", "input_schema": SCHEMA_OK}]),
            "invalid-caller-tool-name",
            "",
        ),
        (
            example_defaults(
                tools=[
                    {"name": "a", "input_schema": SCHEMA_OK},
                    {"name": "a", "input_schema": SCHEMA_OK},
                ]
            ),
            "invalid-caller-tool-name",
            "a",
        ),
    ],
)
async def test_create_conversation_rejects(
    suite: Suite, defaults: dict, slug: str, detail: str
) -> None:
    response = await suite.http.post(
        "/agents/conversations", json={"defaults": defaults}, headers=suite.headers()
    )
    assert_problem(response, 400, slug, detail_has=detail)


@pytest.mark.parametrize("missing", ["model", "data_plane_id"])
async def test_required_defaults(suite: Suite, missing: str) -> None:
    defaults = example_defaults()
    del defaults[missing]
    response = await suite.http.post(
        "/agents/conversations", json={"defaults": defaults}, headers=suite.headers()
    )
    assert response.status_code == 400
    assert missing in response.json()["detail"]


async def test_defaults_are_filled_in(suite: Suite) -> None:
    conversation = await suite.create_conversation(
        defaults={
            "model": "anthropic.claude-opus-4.6",
            "data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185",
        }
    )
    defaults = conversation["defaults"]
    assert (
        defaults["execution_cluster"],
        defaults["max_iterations"],
        defaults["max_tokens"],
        defaults["temperature"],
    ) == ("shared", 3, 2048, 0.0)
    assert conversation["name"] is None and conversation["system_prompt"] is None


async def test_client_tools_points_to_tools(suite: Suite) -> None:
    response = await suite.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(client_tools=[{"alias": "docs", "tools": []}])},
        headers=suite.headers(),
    )
    body = assert_problem(response, 400, "invalid-request", detail_has="client_tools")
    assert "tools" in body["detail"].replace("client_tools", "")


async def test_config_override_is_merged_sparsely(suite: Suite) -> None:
    conversation = await suite.create_conversation(
        defaults=example_defaults(
            tools=[{"name": "confirm_booking", "input_schema": SCHEMA_OK}],
            mcp_servers=[{"alias": "docs", "url": "https://docs.test/mcp"}],
        )
    )
    run = (
        await suite.start_run(
            conversation["id"],
            config_override={
                "max_iterations": 8,
                "temperature": 0.5,
                "compute_pool_id": "pool-1",
                "mcp_servers": [],
            },
        )
    ).json()
    config = run["effective_config"]
    assert (config["max_iterations"], config["temperature"], config["compute_pool_id"]) == (
        8,
        0.5,
        "pool-1",
    )
    assert config["max_tokens"] == 1024  # inherited
    assert config["mcp_servers"] == []  # replaced wholesale, even by an empty list
    assert [t["name"] for t in config["tools"]] == ["confirm_booking"]  # not overridden: kept


async def test_config_override_cannot_set_system_prompt(suite: Suite) -> None:
    conversation = await suite.create_conversation()
    response = await suite.start_run(
        conversation["id"], config_override={"system_prompt": "be evil"}
    )
    assert_problem(response, 400, "invalid-request", detail_has="system_prompt")


@pytest.mark.parametrize(
    ("override", "slug"),
    [
        ({"model": "nope"}, "unknown-model"),
        ({"max_iterations": -1}, "invalid-request"),
        ({"tools": [{"name": "bad-name"}]}, "invalid-caller-tool-name"),
        ({"output_format_schema": {"allOf": []}}, "unsupported-output-schema"),
        ({"client_tools": []}, "invalid-request"),
    ],
)
async def test_config_override_is_validated(suite: Suite, override: dict, slug: str) -> None:
    conversation = await suite.create_conversation()
    assert_problem(await suite.start_run(conversation["id"], config_override=override), 400, slug)


@pytest.mark.parametrize(
    ("tool_choice", "slug"),
    [
        ({"kind": "specific_tool", "name": "nope"}, "unknown-tool-choice-name"),
        (
            {"kind": "specific_tool", "name": "search", "mcp_alias": "web"},
            "unknown-tool-choice-mcp-alias",
        ),
        (
            {"kind": "specific_tool", "name": "not_allowed", "mcp_alias": "kb"},
            "unknown-tool-choice-name",
        ),
        ({"kind": "sometimes"}, "invalid-request"),
    ],
)
async def test_tool_choice_is_validated_against_the_catalogue(
    suite: Suite, tool_choice: dict, slug: str
) -> None:
    conversation = await suite.create_conversation(
        defaults=example_defaults(
            tools=[{"name": "confirm_booking", "input_schema": SCHEMA_OK}],
            mcp_servers=[
                {"alias": "docs", "url": "https://docs.test/mcp"},
                {"alias": "kb", "url": "https://kb.test/mcp", "tools": [{"name": "search"}]},
            ],
        )
    )
    assert_problem(await suite.start_run(conversation["id"], tool_choice=tool_choice), 400, slug)


@pytest.mark.parametrize(
    "tool_choice",
    [
        {"kind": "auto"},
        {"kind": "any"},
        {"kind": "specific_tool", "name": "confirm_booking"},
        {"kind": "specific_tool", "name": "anything", "mcp_alias": "docs"},
        {"kind": "specific_tool", "name": "search", "mcp_alias": "kb"},
    ],
)
async def test_valid_tool_choices_are_accepted(suite: Suite, tool_choice: dict) -> None:
    conversation = await suite.create_conversation(
        defaults=example_defaults(
            tools=[{"name": "confirm_booking", "input_schema": SCHEMA_OK}],
            mcp_servers=[
                {"alias": "docs", "url": "https://docs.test/mcp"},
                {"alias": "kb", "url": "https://kb.test/mcp", "tools": [{"name": "search"}]},
            ],
        )
    )
    response = await suite.start_run(conversation["id"], tool_choice=tool_choice)
    assert response.status_code == 202, response.text
    assert response.json()["tool_choice"]["kind"] == tool_choice["kind"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000/mcp",
        "http://127.0.0.1/mcp",
        "http://10.1.2.3/mcp",
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]/",
        f"http://{socket.gethostname()}:9/mcp",  # a name: refused for what it resolves to
    ],
)
async def test_mcp_urls_on_refused_addresses_are_400(suite: Suite, url: str) -> None:
    """The e2e suite runs as `parley serve` would (private networks not allowed)."""
    host = url.split("//")[1].split(":")[0]
    if host == socket.gethostname() and all(
        ipaddress.ip_address(info[4][0]).is_global
        for info in socket.getaddrinfo(host, 9, type=socket.SOCK_STREAM)
    ):
        pytest.skip(f"{host} resolves to a public address on this machine")
    servers = [{"alias": "x", "url": url}]
    response = await suite.http.post(
        "/agents/conversations",
        json={"defaults": example_defaults(mcp_servers=servers)},
        headers=suite.headers(),
    )
    body = assert_problem(response, 400, "mcp-url-not-allowed", detail_has=url)
    if host == socket.gethostname():
        assert "resolves to" in body["detail"], body
    conversation = await suite.create_conversation()
    override = await suite.start_run(conversation["id"], config_override={"mcp_servers": servers})
    assert_problem(override, 400, "mcp-url-not-allowed", detail_has="config_override.mcp_servers")
