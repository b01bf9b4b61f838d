"""MCP tool calls: `tools/call` with a per-call timeout and a result-size cap, the result mapped
to Parley content blocks. Tool failures are in-band: an MCP `isError` result, and any failure at
call time (timeout, unreachable, protocol error), become a tool_result with `is_error: true`
for the model; only an unknown alias or tool is an error of the call itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.v1 import config_pb2, message_pb2
from google.protobuf import json_format, struct_pb2

from services.common.metrics import (
    TOOLING_CALL_SECONDS,
    TOOLING_FAILURES,
    TOOLING_RESULTS_TRUNCATED,
)
from services.tooling import mcp_connect
from services.tooling.failures import McpFailure
from services.tooling.mcp_connect import Caller, McpConnector
from services.tooling.routing import route, unknown


CALL_TIMEOUT_SECONDS = 60.0
MAX_TEXT_CHARS = 100_000  # text, resource text and structuredContent JSON, together
MAX_BINARY_CHARS = 1_000_000  # base64 of images, audio and blobs, together


@dataclass
class _Budget:
    text: int = MAX_TEXT_CHARS
    binary: int = MAX_BINARY_CHARS
    truncated: bool = False

    def take_text(self, text: str) -> str:
        if len(text) <= self.text:
            self.text -= len(text)
            return text
        kept, self.text, self.truncated = text[: self.text], 0, True
        return f"{kept}\n[truncated: {len(text) - len(kept)} more characters not shown]"

    def take_binary(self, data: str) -> bool:
        if len(data) <= self.binary:
            self.binary -= len(data)
            return True
        self.truncated = True
        return False


def text_block(text: str) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(text=message_pb2.TextBlock(text=text))


def to_blocks(result: dict[str, Any]) -> tuple[list[message_pb2.ContentBlock], bool]:
    """MCP `CallToolResult` wire JSON → (content blocks, is_error). Pure."""
    budget = _Budget()
    blocks = [_block(item, budget) for item in result.get("content") or []]
    if "structuredContent" in result:
        dumped = json.dumps(result["structuredContent"], ensure_ascii=False)
        if len(dumped) <= budget.text:
            budget.text -= len(dumped)
            value = json_format.ParseDict(result["structuredContent"], struct_pb2.Value())
            blocks.append(message_pb2.ContentBlock(json=message_pb2.JsonBlock(value=value)))
        else:
            budget.truncated = True
            blocks.append(
                text_block(f"[structuredContent omitted: {len(dumped)} characters over the limit]")
            )
    if budget.truncated:
        TOOLING_RESULTS_TRUNCATED.inc()
    return blocks, bool(result.get("isError", False))


def _block(item: dict[str, Any], budget: _Budget) -> message_pb2.ContentBlock:
    kind = item.get("type")
    if kind == "text":
        return text_block(budget.take_text(str(item.get("text", ""))))
    if kind in ("image", "audio"):
        data, mime = str(item.get("data", "")), str(item.get("mimeType", ""))
        if not budget.take_binary(data):
            return text_block(
                f"[{kind} {mime} omitted: {len(data)} base64 characters over the limit]"
            )
        if kind == "image":
            return message_pb2.ContentBlock(image=message_pb2.ImageBlock(mime_type=mime, data=data))
        return message_pb2.ContentBlock(audio=message_pb2.AudioBlock(mime_type=mime, data=data))
    if kind == "resource_link":
        link = message_pb2.ResourceLinkBlock(
            uri=str(item.get("uri", "")), name=str(item.get("name", ""))
        )
        if item.get("description") is not None:
            link.description = str(item["description"])
        if item.get("mimeType") is not None:
            link.mime_type = str(item["mimeType"])
        return message_pb2.ContentBlock(resource_link=link)
    if kind == "resource":
        inner = item.get("resource") or {}
        resource = message_pb2.ResourceBlock(uri=str(inner.get("uri", "")))
        if inner.get("mimeType") is not None:
            resource.mime_type = str(inner["mimeType"])
        if "text" in inner:
            resource.text = budget.take_text(str(inner["text"]))
        elif "blob" in inner:
            blob = str(inner["blob"])
            if not budget.take_binary(blob):
                return text_block(
                    f"[resource {resource.uri} omitted: {len(blob)} base64 characters "
                    "over the limit]"
                )
            resource.blob = blob
        return message_pb2.ContentBlock(resource=resource)
    # A content kind newer than this router: keep it visible to the model as JSON text.
    return text_block(budget.take_text(json.dumps(item, ensure_ascii=False)))


def error_result(tool_use_id: str, why: str) -> message_pb2.ToolResultBlock:
    return message_pb2.ToolResultBlock(
        tool_use_id=tool_use_id, content=[text_block(why)], is_error=True
    )


async def call_tool(
    connector: McpConnector,
    servers: Sequence[config_pb2.McpServer],
    caller: Caller,
    tool_use_id: str,
    wire_name: str,
    arguments_json: str,
    timeout: float = CALL_TIMEOUT_SECONDS,
) -> message_pb2.ToolResultBlock:
    """The call's tool_result block; AgentLoopUnknownToolAlias for an unknown alias or tool."""
    target = route(wire_name, servers)
    try:
        arguments = json.loads(arguments_json) if arguments_json.strip() else {}
    except json.JSONDecodeError as exc:
        return error_result(tool_use_id, f"the arguments are not valid JSON: {exc}")
    if not isinstance(arguments, dict):
        return error_result(tool_use_id, "the arguments must be a JSON object")
    started, outcome = time.perf_counter(), "failed"
    sent = False

    async def find_and_call(session: mcp_connect.Session) -> dict[str, Any] | None:
        nonlocal sent
        if not await mcp_connect.find_tool(session, target.tool):
            return None
        sent = True
        return await mcp_connect.call_tool(session, target.tool, arguments)

    try:
        try:
            async with asyncio.timeout(timeout):
                result = await connector.using(
                    target.server.url,
                    caller,
                    find_and_call,
                    repeatable=lambda: not sent,  # a call that may have run is never repeated
                )
        except TimeoutError:
            raise McpFailure("timeout", f"the call timed out after {timeout:g} s") from None
        if result is None:
            outcome = "unknown_tool"
            raise unknown(
                wire_name,
                f"MCP server `{target.server.alias}` has no tool `{target.tool}`",
                alias=target.server.alias,
            )
        blocks, is_error = to_blocks(result)
        outcome = "tool_error" if is_error else "ok"
        return message_pb2.ToolResultBlock(
            tool_use_id=tool_use_id, content=blocks, is_error=is_error
        )
    except McpFailure as failure:
        TOOLING_FAILURES.labels("call", failure.cause).inc()
        mcp_connect.log_failure(f"call of `{target.tool}`", target.server.alias, caller, failure)
        return error_result(tool_use_id, f"calling `{wire_name}` failed: {failure.message}")
    finally:
        TOOLING_CALL_SECONDS.labels(outcome).observe(time.perf_counter() - started)
