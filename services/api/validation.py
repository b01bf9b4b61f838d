"""Checks of what callers send: agent configs, output schemas, tool choice, run requests.

Every failure is a catalogued ParleyError whose detail names the field. All are pure but the
URL policy on resolved addresses (`check_mcp_hosts`, `check_start_run`), which does DNS.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import math
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from agents.v1 import config_pb2, conversation_service_pb2, message_pb2, run_pb2
from google.protobuf import json_format
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from services.common import url_policy
from services.common.catalogue import Catalogue, Cluster
from services.common.config import Settings
from services.common.contract import (
    DOCUMENT_FORMATS,
    IMAGE_FORMATS,
    MAX_CONTENT_BLOCKS,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_NAME,
    MAX_IMAGE_BYTES,
    MAX_WIRE_NAME,
    OUTPUT_SCHEMA_KEYWORDS,
    TEXT_DOCUMENT_TYPES,
    approval_policy,
    wire_name,
)
from services.common.errors import ParleyError
from services.common.incidents import (
    CONTENT_TOO_LARGE,
    MODEL_NOT_AVAILABLE_ON_CLUSTER,
    UNSUPPORTED_CONTENT,
)

# Matched whole (fullmatch): `$` would also accept a trailing newline. The same patterns are
# declared in the proto (agents.v1.rules), for /openapi.json.
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9]{0,7}")
CALLER_TOOL_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# RFC 3986 has no spaces or control characters; urlsplit would silently drop some of them.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
MAX_ITERATIONS = (1, 100)
MAX_TOKENS = (1, 65536)
THINKING_BUDGET = (1024, 65535)
THINKING_PROVIDERS = frozenset({"bedrock"})
KNOWN_CONFIGS = 4096  # merged configs whose validation a store process remembers
INLINE_CONTENT_BYTES = 1 << 20  # larger content is checked off the event loop (base64 decoding)


@dataclass(frozen=True)
class ConfigRules:
    """What a config may name: the installation's catalogue and network policy."""

    catalogue: Catalogue
    allow_private_networks: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfigRules:
        return cls(settings.catalogue, settings.mcp_allow_private_networks)


def _invalid(detail: str, **metadata: object) -> ParleyError:
    return ParleyError("InvalidRequest", detail, **metadata)


def at_least(value: int, low: int, field: str) -> None:
    """InvalidRequest naming `field` when `value` is below `low`."""
    if value < low:
        raise _invalid(f"{field} must be >= {low}, got {value}", field=field)


def check_uuid(value: str) -> str | None:
    """The canonical form of a UUID in its RFC 4122 text form (8-4-4-4-12 hex digits, any case),
    or None for anything else (braces, `urn:uuid:`, no hyphens: JSON Schema's `uuid` refuses
    them too)."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        return None
    return str(uuid.UUID(value))


# --- agent config -------------------------------------------------------------------------------


def validate_config(
    cfg: config_pb2.AgentConfig, rules: ConfigRules, where: str, company_id: int
) -> Cluster:
    """A complete config (defaults with documented defaults filled in, or a merged one), for a
    caller of `company_id`; returns its execution cluster. A data plane or a cluster the company
    may not use is refused exactly as an unknown one is."""
    catalogue = rules.catalogue
    if not cfg.model:
        raise _invalid(f"{where}.model is required", field=f"{where}.model")
    if cfg.model not in catalogue.models:
        usable = [u.model.id for u in catalogue.usable_models(company_id)]
        raise ParleyError(
            "UnknownModel",
            f"{where}.model `{cfg.model}` is not a catalogued model; use one of: "
            + ", ".join(usable),
            model=cfg.model,
        )
    if not cfg.data_plane_id:
        raise _invalid(f"{where}.data_plane_id is required", field=f"{where}.data_plane_id")
    if catalogue.data_plane_for(cfg.data_plane_id, company_id) is None:
        raise ParleyError(
            "UnknownDataPlane",
            f"{where}.data_plane_id `{cfg.data_plane_id}` is not a known data plane",
            data_plane_id=cfg.data_plane_id,
        )
    cluster = catalogue.cluster_for(cfg.execution_cluster, company_id)
    if cluster is None:
        raise ParleyError(
            "UnknownExecutionCluster",
            f"{where}.execution_cluster `{cfg.execution_cluster}` is not a known "
            "execution cluster; use one of: "
            + ", ".join(c.name for c in catalogue.clusters_of(company_id)),
            execution_cluster=cfg.execution_cluster,
        )
    if catalogue.provider_model_id(cfg.model, cluster) is None:
        there = [u.model.id for u in catalogue.usable_models(company_id) if cluster in u.clusters]
        raise ParleyError(
            MODEL_NOT_AVAILABLE_ON_CLUSTER,
            f"{where}.model `{cfg.model}` does not run on execution cluster `{cluster.name}` "
            f"(provider {cluster.provider}); the models it runs: " + ", ".join(there),
            model=cfg.model,
            execution_cluster=cluster.name,
        )
    _check_range(cfg.max_iterations, *MAX_ITERATIONS, f"{where}.max_iterations")
    _check_range(cfg.max_tokens, *MAX_TOKENS, f"{where}.max_tokens")
    if math.isnan(cfg.temperature) or not 0.0 <= cfg.temperature <= 1.0:
        raise _invalid(
            f"{where}.temperature must be between 0.0 and 1.0, got {cfg.temperature}",
            field=f"{where}.temperature",
        )
    if cfg.HasField("output_format_schema") and len(cfg.output_format_schema.fields):
        validate_output_schema(
            json_format.MessageToDict(cfg.output_format_schema), f"{where}.output_format_schema"
        )
    validate_mcp_servers(cfg.mcp_servers, f"{where}.mcp_servers", rules.allow_private_networks)
    validate_caller_tools(cfg.tools, f"{where}.tools")
    validate_thinking(cfg, where, cluster)
    return cluster


class KnownConfigs:
    """`validate_config` for the configs StartRuns merge, remembered: it is pure (a config, its
    field and the company always get the same cluster, or the same error, which is not kept),
    and a conversation's runs merge the same config again and again. Used by one thread at a
    time (the store's transactions)."""

    def __init__(self, rules: ConfigRules, size: int = KNOWN_CONFIGS) -> None:
        self.rules = rules
        self._size = size
        self._known: OrderedDict[tuple[bytes, str, int], Cluster] = OrderedDict()

    def validate(self, cfg: config_pb2.AgentConfig, where: str, company_id: int) -> Cluster:
        digest = hashlib.blake2b(cfg.SerializeToString(deterministic=True), digest_size=16)
        key = (digest.digest(), where, company_id)
        cluster = self._known.get(key)
        if cluster is not None:
            self._known.move_to_end(key)
            return cluster
        cluster = self._known[key] = validate_config(cfg, self.rules, where, company_id)
        if len(self._known) > self._size:
            self._known.popitem(last=False)
        return cluster


def validate_thinking(cfg: config_pb2.AgentConfig, where: str, cluster: Cluster) -> None:
    """What the models refuse with extended reasoning on (Anthropic's rules, which Bedrock
    enforces): a budget of at least 1024 tokens and below max_tokens, and temperature 1. Only
    Bedrock clusters take it (as additionalModelRequestFields.thinking)."""
    if not cfg.HasField("thinking"):
        return
    thinking, field = cfg.thinking, f"{where}.thinking"
    if thinking.HasField("budget_tokens"):
        _check_range(thinking.budget_tokens, *THINKING_BUDGET, f"{field}.budget_tokens")
    if not thinking.enabled:
        return
    if cluster.provider not in THINKING_PROVIDERS:
        raise ParleyError(
            "InvalidThinkingConfig",
            f"{field}: execution cluster `{cluster.name}` (provider {cluster.provider}) does not "
            "take thinking; it runs on Bedrock clusters",
            field=f"{field}.enabled",
        )
    if not thinking.HasField("budget_tokens"):
        raise ParleyError(
            "InvalidThinkingConfig",
            f"{field}.budget_tokens is required when thinking is enabled (at least "
            f"{THINKING_BUDGET[0]}, below max_tokens)",
            field=f"{field}.budget_tokens",
        )
    if thinking.budget_tokens >= cfg.max_tokens:
        raise ParleyError(
            "InvalidThinkingConfig",
            f"{field}.budget_tokens ({thinking.budget_tokens}) must be below max_tokens "
            f"({cfg.max_tokens}): the answer comes out of the same tokens",
            field=f"{field}.budget_tokens",
        )
    if cfg.temperature != 1.0:
        raise ParleyError(
            "InvalidThinkingConfig",
            f"temperature must be 1 (or unset) with thinking enabled; the run's is "
            f"{cfg.temperature}: set {where}.temperature to 1",
            field=f"{where}.temperature",
        )


def _check_range(value: int, low: int, high: int, field: str) -> None:
    if not low <= value <= high:
        raise _invalid(f"{field} must be between {low} and {high}, got {value}", field=field)


def validate_output_schema(schema: Any, where: str) -> None:
    """The supported subset first (naming the offending keyword), then Draft 2020-12 validity."""
    _check_subset(schema, "$", where)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "$" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in exc.path)
        raise _invalid(
            f"{where} is not a valid JSON Schema at {path}: {exc.message}", field=where
        ) from None


def _check_subset(node: Any, path: str, where: str) -> None:
    if not isinstance(node, dict):
        raise ParleyError(
            "UnsupportedOutputSchema", f"{where}: the schema at {path} must be an object", path=path
        )
    for key, value in node.items():
        here = f"{path}.{key}"
        if key not in OUTPUT_SCHEMA_KEYWORDS:
            raise ParleyError(
                "UnsupportedOutputSchema",
                f"{where}: `{key}` at {here} is not in the supported subset of "
                "JSON Schema Draft 2020-12",
                keyword=key,
                path=here,
            )
        if key == "additionalProperties" and value is not False:
            raise ParleyError(
                "UnsupportedOutputSchema",
                f"{where}: `additionalProperties` at {here} must be false",
                keyword=key,
                path=here,
            )
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                _check_subset(sub, f"{here}.{name}", where)
        elif key == "items":
            _check_subset(value, here, where)
        elif key == "anyOf" and isinstance(value, list):
            for i, sub in enumerate(value):
                _check_subset(sub, f"{here}[{i}]", where)


def validate_mcp_servers(
    servers: Iterable[config_pb2.McpServer], where: str, allow_private_networks: bool
) -> None:
    seen: set[str] = set()
    for i, server in enumerate(servers):
        field = f"{where}[{i}]"
        if not ALIAS.fullmatch(server.alias):
            raise ParleyError(
                "InvalidToolAlias",
                f"{field}.alias `{server.alias}` must be 1-8 ASCII letters or digits "
                "starting with a letter",
                alias=server.alias,
            )
        if server.alias in seen:
            raise ParleyError(
                "InvalidToolAlias",
                f"{field}.alias `{server.alias}` is used twice; aliases must be unique",
                alias=server.alias,
            )
        seen.add(server.alias)
        check_mcp_url(server.url, f"{field}.url", allow_private_networks)
        _check_approval_policy(server, field)
        for j, tool in enumerate(server.tools):
            if not tool.name:
                raise _invalid(
                    f"{field}.tools[{j}].name must be non-empty", field=f"{field}.tools[{j}].name"
                )
            wire = wire_name(server.alias, tool.name)
            if len(wire) > MAX_WIRE_NAME:
                raise ParleyError(
                    "ToolNameTooLong",
                    f"{field}.tools[{j}]: the wire name `{wire}` is {len(wire)} "
                    f"characters; at most {MAX_WIRE_NAME} are allowed",
                    wire_name=wire,
                    length=len(wire),
                )


def _check_approval_policy(server: config_pb2.McpServer, field: str) -> None:
    if not server.HasField("require_approval"):
        return
    where = f"{field}.require_approval"
    try:
        policy = approval_policy(json_format.MessageToDict(server.require_approval))
    except ValueError as exc:
        raise _invalid(f"{where} {exc}", field=where) from None
    allowed = {t.name for t in server.tools}
    outside = sorted(policy.names - allowed) if allowed else []
    if outside:
        raise _invalid(
            f"{where} names {', '.join(outside)}, which the server's `tools` allow-list does "
            f"not offer: {', '.join(sorted(allowed))}",
            field=where,
        )


def check_mcp_url(url: str, field: str, allow_private_networks: bool) -> None:
    """The shared URL policy (services.common.url_policy) on the URL's text; the addresses
    its host resolves to are checked by `check_mcp_hosts`, which does I/O."""
    if _URL_FORBIDDEN.search(url):
        raise ParleyError(
            "McpUrlNotAllowed",
            f"{field} `{url!r}` is not allowed: it contains whitespace or control characters",
            url=url,
        )
    try:
        url_policy.check_literal(url, allow_private_networks)
    except url_policy.UrlNotAllowed as exc:
        raise _url_refused(url, field, exc) from None


async def check_mcp_hosts(
    servers: Iterable[config_pb2.McpServer], where: str, allow_private_networks: bool
) -> None:
    """The URL policy on resolved addresses, so that a name pointing at a refused address is a
    400 now rather than a failed run later. Call it outside any database transaction."""
    for i, server in enumerate(servers):
        try:
            await url_policy.check_known_addresses(server.url, allow_private_networks)
        except url_policy.UrlNotAllowed as exc:
            raise _url_refused(server.url, f"{where}[{i}].url", exc) from None


def _url_refused(url: str, field: str, exc: url_policy.UrlNotAllowed) -> ParleyError:
    return ParleyError("McpUrlNotAllowed", f"{field} `{url}` is not allowed: {exc.reason}", url=url)


def validate_caller_tools(tools: Iterable[config_pb2.Tool], where: str) -> None:
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        field = f"{where}[{i}].name"
        if not tool.name:
            raise ParleyError("InvalidCallerToolName", f"{field} must be non-empty", name="")
        if "-" in tool.name:
            raise ParleyError(
                "InvalidCallerToolName",
                f"{field} `{tool.name}` contains a dash; caller-declared tool names "
                "are dash-free (the dash is reserved for MCP wire names)",
                name=tool.name,
            )
        if not CALLER_TOOL_NAME.fullmatch(tool.name):
            raise ParleyError(
                "InvalidCallerToolName",
                f"{field} `{tool.name}` must be 1-64 letters, digits or underscores",
                name=tool.name,
            )
        if tool.name in seen:
            raise ParleyError(
                "InvalidCallerToolName",
                f"{field} `{tool.name}` is declared twice; names must be unique",
                name=tool.name,
            )
        seen.add(tool.name)
        if tool.HasField("input_schema"):
            _check_input_schema(
                json_format.MessageToDict(tool.input_schema), f"{where}[{i}].input_schema"
            )


def _check_input_schema(schema: dict[str, Any], field: str) -> None:
    if schema.get("type") != "object":
        raise _invalid(f'{field} must be an object schema (`"type": "object"`)', field=field)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _invalid(f"{field} is not a valid JSON Schema: {exc.message}", field=field) from None


# --- tool choice --------------------------------------------------------------------------------


def validate_tool_choice(choice: config_pb2.ToolChoice, cfg: config_pb2.AgentConfig) -> None:
    """Against the run's effective catalogue. An MCP tool's own name is only known at discovery,
    unless its server carries an allow-list."""
    kind = choice.WhichOneof("choice")
    if kind is None:
        raise _invalid(
            "tool_choice.kind is required: one of auto, any, specific_tool",
            field="tool_choice.kind",
        )
    if kind in ("any", "specific_tool") and cfg.thinking.enabled:
        raise ParleyError(
            "InvalidThinkingConfig",
            f"tool_choice `{kind}` forces a tool, which the model refuses with thinking "
            "enabled: use `auto`, or turn thinking off for this run",
            field="tool_choice.kind",
        )
    if kind == "any" and not cfg.tools and not cfg.mcp_servers:
        raise _invalid(
            "tool_choice `any` needs a tool, but the run has no tools and no mcp_servers",
            field="tool_choice.kind",
        )
    if kind != "specific_tool":
        return
    specific = choice.specific_tool
    if not specific.name:
        raise _invalid("tool_choice.name is required for specific_tool", field="tool_choice.name")
    if not specific.HasField("mcp_alias"):
        names = [t.name for t in cfg.tools]
        if specific.name not in names:
            raise ParleyError(
                "UnknownToolChoiceName",
                f"tool_choice.name `{specific.name}` is not a caller-declared tool of "
                f"this run; its tools are: {', '.join(names) or '(none)'}",
                name=specific.name,
            )
        return
    servers = {s.alias: s for s in cfg.mcp_servers}
    server = servers.get(specific.mcp_alias)
    if server is None:
        raise ParleyError(
            "UnknownToolChoiceMcpAlias",
            f"tool_choice.mcp_alias `{specific.mcp_alias}` is not one of this run's "
            f"mcp_servers: {', '.join(servers) or '(none)'}",
            mcp_alias=specific.mcp_alias,
        )
    allowed = [t.name for t in server.tools]
    if allowed and specific.name not in allowed:
        raise ParleyError(
            "UnknownToolChoiceName",
            f"tool_choice.name `{specific.name}` is not in the allow-list of MCP "
            f"server `{server.alias}`: {', '.join(allowed)}",
            name=specific.name,
            mcp_alias=server.alias,
        )


# --- run requests -------------------------------------------------------------------------------


MAX_RUN_METADATA_BYTES: Final = 16 * 1024  # a run's metadata, as JSON


def check_run_extras(request: conversation_service_pb2.StartRunRequest) -> str | None:
    """The client-chosen run_id (canonical, or None when not given) and the metadata's size."""
    run_id = None
    if request.HasField("run_id"):
        run_id = check_uuid(request.run_id)
        if run_id is None:
            raise _invalid(f"run_id `{request.run_id}` must be a UUID", field="run_id")
    if request.HasField("metadata"):
        size = len(orjson.dumps(json_format.MessageToDict(request.metadata)))
        if size > MAX_RUN_METADATA_BYTES:
            raise _invalid(
                f"metadata is {size} bytes as JSON; at most {MAX_RUN_METADATA_BYTES} are allowed",
                field="metadata",
            )
    return run_id


def validate_start_run(request: conversation_service_pb2.StartRunRequest) -> str:
    """The request's own shape; returns the canonical client_op_id."""
    if not request.client_op_id:
        raise _invalid(
            "client_op_id is required (a UUID you generate per request)", field="client_op_id"
        )
    client_op_id = check_uuid(request.client_op_id)
    if client_op_id is None:
        raise _invalid(
            f"client_op_id `{request.client_op_id}` must be a UUID", field="client_op_id"
        )
    if not request.HasField("expected_version"):
        raise _invalid(
            "expected_version is required (the conversation's current version)",
            field="expected_version",
        )
    at_least(request.expected_version, 0, "expected_version")
    if not request.HasField("payload"):
        raise _invalid("payload is required", field="payload")
    kind = request.payload.WhichOneof("input")
    if kind is None:
        raise _invalid(
            "payload.kind is required: user_message or tool_outputs", field="payload.kind"
        )
    if kind == "user_message":
        message = request.payload.user_message
        if message.content:
            if message.text:
                raise _invalid(
                    "payload takes `text` or `content`, not both", field="payload.content"
                )
            check_content(message.content)
        elif not message.text.strip():
            raise _invalid("payload.text must be non-empty", field="payload.text")
    return client_op_id


async def check_start_run(
    request: conversation_service_pb2.StartRunRequest, rules: ConfigRules
) -> str:
    """`validate_start_run`, then the URL policy on the override's MCP hosts (resolved: call it
    outside any transaction); returns the canonical client_op_id."""
    content = request.payload.user_message.content
    if sum(len(b.image.data) + len(b.document.data) for b in content) > INLINE_CONTENT_BYTES:
        client_op_id = await asyncio.to_thread(validate_start_run, request)
    else:
        client_op_id = validate_start_run(request)
    if request.config_override.HasField("mcp_servers"):  # the defaults' were checked at creation
        await check_mcp_hosts(
            request.config_override.mcp_servers.values,
            "config_override.mcp_servers",
            rules.allow_private_networks,
        )
    return client_op_id


# --- input content ------------------------------------------------------------------------------


def check_content(blocks: Sequence[message_pb2.ContentBlock]) -> None:
    """A user message's `content`: 1-20 text, image and document blocks, each of a media type the
    providers take and, decoded, within their limits."""
    if len(blocks) > MAX_CONTENT_BLOCKS:
        raise _invalid(
            f"payload.content holds {len(blocks)} blocks; at most {MAX_CONTENT_BLOCKS} are allowed",
            field="payload.content",
        )
    has_text = False
    for i, block in enumerate(blocks):
        where = f"payload.content[{i}]"
        kind = block.WhichOneof("block")
        if kind == "text":
            if not block.text.text.strip():
                raise _invalid(f"{where}.text must be non-empty", field=f"{where}.text")
            has_text = True
        elif kind == "image":
            image = block.image
            if image.mime_type:
                raise _invalid(
                    f"{where}: an image you send names its type in `media_type`, not `mime_type`",
                    field=f"{where}.mime_type",
                )
            _check_media_type(image.media_type, IMAGE_FORMATS, where, "image")
            _check_size(image.data, MAX_IMAGE_BYTES, where, "image")
        elif kind == "document":
            document = block.document
            _check_media_type(document.media_type, DOCUMENT_FORMATS, where, "document")
            if not document.name.strip() or len(document.name) > MAX_DOCUMENT_NAME:
                raise _invalid(
                    f"{where}.name must be 1-{MAX_DOCUMENT_NAME} characters",
                    field=f"{where}.name",
                )
            _check_size(document.data, MAX_DOCUMENT_BYTES, where, "document")
        else:
            raise ParleyError(
                UNSUPPORTED_CONTENT,
                f"{where} is a `{kind}` block; a user message's content takes text, image "
                "and document blocks",
                block=where,
            )
    if not has_text and any(b.WhichOneof("block") == "document" for b in blocks):
        raise _invalid(
            "payload.content has a document but no text block: say what to do with it",
            field="payload.content",
        )


def _check_media_type(media_type: str, accepted: dict[str, str], where: str, what: str) -> None:
    if media_type not in accepted:
        raise ParleyError(
            UNSUPPORTED_CONTENT,
            f"{where}.media_type `{media_type}` is not an {what} type the models take; one of: "
            + ", ".join(accepted),
            block=where,
            media_type=media_type,
        )


def _check_size(data: str, limit: int, where: str, what: str) -> None:
    try:
        size = len(binascii.a2b_base64(data, strict_mode=True))
    except binascii.Error:
        raise _invalid(f"{where}.data must be base64 (RFC 4648)", field=f"{where}.data") from None
    if size == 0:
        raise _invalid(f"{where}.data must be non-empty", field=f"{where}.data")
    if size > limit:
        raise ParleyError(
            CONTENT_TOO_LARGE,
            f"{where}: the {what} is {size} bytes decoded; at most {limit} are allowed",
            block=where,
            size=size,
            limit=limit,
        )


def check_content_on_cluster(blocks: Sequence[message_pb2.ContentBlock], cluster: Cluster) -> None:
    """What the cluster's provider cannot carry: chat completions reads no binary documents."""
    if cluster.provider == "bedrock":
        return
    for i, block in enumerate(blocks):
        media_type = block.document.media_type
        if block.WhichOneof("block") == "document" and media_type not in TEXT_DOCUMENT_TYPES:
            raise ParleyError(
                UNSUPPORTED_CONTENT,
                f"payload.content[{i}]: execution cluster `{cluster.name}` ({cluster.provider}) "
                f"cannot read `{media_type}` documents; it reads "
                + ", ".join(sorted(TEXT_DOCUMENT_TYPES))
                + " (a Bedrock cluster reads the others)",
                block=f"payload.content[{i}]",
                media_type=media_type,
                execution_cluster=cluster.name,
            )


def check_tool_outputs(
    answers: run_pb2.RunPayload.ToolOutputs,
    pending: Iterable[run_pb2.PendingToolCall],
    produced: dict[str, str],
) -> None:
    """`outputs` must answer exactly the pending calls of kind caller, `approvals` exactly those
    of kind approval, each decided. `produced` maps every tool_use_id of the paused run's latest
    assistant turn to its wire name (MCP calls carry a dash)."""
    calls = list(pending)
    awaiting = [c.tool_use_id for c in calls if c.kind == run_pb2.PendingToolCall.KIND_APPROVAL]
    caller = [c.tool_use_id for c in calls if c.tool_use_id not in awaiting]
    for i, approval in enumerate(answers.approvals):
        if approval.decision == message_pb2.APPROVAL_DECISION_UNSPECIFIED:
            raise _invalid(
                f"approvals[{i}].decision is required: approve or deny",
                field=f"approvals[{i}].decision",
            )
    sent = [o.tool_use_id for o in answers.outputs]
    for tool_use_id in sent:
        if tool_use_id in caller:
            continue
        if tool_use_id in awaiting:
            raise ParleyError(
                "ToolCallAwaitsApproval",
                f"tool_use_id `{tool_use_id}` is an MCP call waiting for approval; decide it in "
                "`approvals` (approve or deny), not in `outputs`",
                tool_use_id=tool_use_id,
            )
        name = produced.get(tool_use_id)
        if name is not None and "-" in name:
            raise ParleyError(
                "NotAClientToolCall",
                f"tool_use_id `{tool_use_id}` is a call of the MCP tool `{name}`, "
                "which the platform already answered",
                tool_use_id=tool_use_id,
            )
        if name is None:
            raise _unknown_tool_use_id(tool_use_id)
    decided = [a.tool_use_id for a in answers.approvals]
    for tool_use_id in decided:
        if tool_use_id in awaiting:
            continue
        if tool_use_id in caller or tool_use_id in produced:
            raise ParleyError(
                "NotAnApprovalRequest",
                f"tool_use_id `{tool_use_id}` is not waiting for approval"
                + (
                    "; it is a caller-declared call: answer it in `outputs`"
                    if tool_use_id in caller
                    else ""
                ),
                tool_use_id=tool_use_id,
            )
        raise _unknown_tool_use_id(tool_use_id)
    parts = _answer_problems(sent, caller, "")
    parts += _answer_problems(decided, awaiting, "approvals: ")
    if parts:
        raise ParleyError(
            "IncompleteToolOutputs",
            "outputs and approvals must answer every pending call exactly once: "
            + "; ".join(parts),
            missing=",".join(i for i in [*caller, *awaiting] if i not in [*sent, *decided]),
            duplicates=",".join(
                sorted(
                    {i for i in sent if sent.count(i) > 1}
                    | {i for i in decided if decided.count(i) > 1}
                )
            ),
            extras=",".join(sorted({i for i in sent if i not in caller})),
        )


def _answer_problems(sent: list[str], pending: list[str], prefix: str) -> list[str]:
    duplicates = sorted({i for i in sent if sent.count(i) > 1})
    missing = [i for i in pending if i not in sent]
    extras = sorted({i for i in sent if i not in pending})
    parts = []
    if missing:
        parts.append(f"{prefix}missing " + ", ".join(missing))
    if duplicates:
        parts.append(f"{prefix}answered more than once " + ", ".join(duplicates))
    if extras:
        parts.append(f"{prefix}not pending " + ", ".join(extras))
    return parts


def _unknown_tool_use_id(tool_use_id: str) -> ParleyError:
    return ParleyError(
        "UnknownToolUseId",
        f"tool_use_id `{tool_use_id}` was not produced by the paused run's latest assistant turn",
        tool_use_id=tool_use_id,
    )


def page_size(
    request: conversation_service_pb2.ListConversationsRequest
    | conversation_service_pb2.ListMessagesRequest,
    default: int,
    maximum: int,
) -> int:
    """A list request's `per_page` by AIP-158: a documented default when unset, larger values
    reduced to the maximum, < 1 refused."""
    if not request.HasField("per_page"):
        return default
    at_least(request.per_page, 1, "per_page")
    return min(request.per_page, maximum)
