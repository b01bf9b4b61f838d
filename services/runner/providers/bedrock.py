"""Bedrock Converse through boto3's `bedrock-runtime` client.

- One client per data plane, created once (off the event loop) and shared: clients are
  thread-safe, sessions are not, so creation happens under a lock, one at a time.
- Blocking `converse()` calls run on a dedicated, sized thread pool (`max_pool_connections`
  matches it); the event loop never blocks. A cancelled run stops awaiting at once; the thread
  finishes its HTTP call in the background (bounded by read_timeout) and its result is dropped.
- Exactly one retry layer: botocore's standard mode (`total_max_attempts`), nothing in our code.
- botocore resolves credentials and `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` itself; the region is
  `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1 (botocore ignores AWS_REGION).
"""

from __future__ import annotations

import asyncio
import base64
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import orjson
from agents.v1 import message_pb2
from botocore.config import Config
from google.protobuf import json_format, struct_pb2

from services.runner.providers.base import (
    ModelReply,
    ModelRequest,
    PreparedCall,
    ProviderError,
    TokenUsage,
)

_THROTTLED = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"}
)
_TIMEOUT = frozenset({"ModelTimeoutException", "RequestTimeout", "RequestTimeoutException"})
OUTPUT_SCHEMA_NAME = "final_answer"


@dataclass(frozen=True)
class BedrockOptions:
    max_workers: int = 32
    max_attempts: int = 3
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class BedrockProvider:
    name = "bedrock"

    def __init__(self, options: BedrockOptions = BedrockOptions()) -> None:
        self._options = options
        self._pool = ThreadPoolExecutor(options.max_workers, thread_name_prefix="bedrock")
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._session = boto3.session.Session()

    def _new_client(self) -> Any:
        o = self._options
        config = Config(
            region_name=region(),
            retries={"mode": "standard", "total_max_attempts": o.max_attempts},
            connect_timeout=o.connect_timeout_s,
            read_timeout=o.read_timeout_s,
            max_pool_connections=o.max_workers,
            tcp_keepalive=True,
        )
        return self._session.client("bedrock-runtime", config=config)

    async def client(self, data_plane_id: str) -> Any:
        """The data plane's client (all data planes share one AWS account today; the cache key
        is there so a data plane can get its own endpoint/credentials)."""
        found = self._clients.get(data_plane_id)
        if found is not None:
            return found
        async with self._lock:
            if data_plane_id not in self._clients:
                loop = asyncio.get_running_loop()
                self._clients[data_plane_id] = await loop.run_in_executor(
                    self._pool, self._new_client
                )
            return self._clients[data_plane_id]

    def prepare(self, data_plane_id: str, request: ModelRequest) -> PreparedCall:
        body = converse_body(request)
        return PreparedCall(
            data_plane_id,
            request.provider_model_id,
            body,
            orjson.dumps(
                {"modelId": request.provider_model_id, **body}, default=_wire_json
            ).decode(),
        )

    async def converse(self, call: PreparedCall) -> ModelReply:
        client = await self.client(call.data_plane_id)
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(
                self._pool, lambda: client.converse(modelId=call.provider_model_id, **call.body)
            )
        except botocore.exceptions.ClientError as exc:
            raise _classify(exc) from None
        except (
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectTimeoutError,
        ) as exc:
            raise ProviderError("ModelTimeout", f"Bedrock did not answer in time: {exc}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderError("ModelInvocationFailed", f"Bedrock call failed: {exc}") from None
        return parse_reply(response)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _wire_json(value: Any) -> Any:
    """Bytes as botocore puts them on the wire: base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _classify(exc: botocore.exceptions.ClientError) -> ProviderError:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    detail = f"Bedrock answered {code}: {message}" if message else f"Bedrock answered {code}"
    if code in _THROTTLED:
        return ProviderError("ModelThrottled", detail)
    if code in _TIMEOUT:
        return ProviderError("ModelTimeout", detail)
    return ProviderError("ModelInvocationFailed", detail)


# --- request and response shapes (pure) --------------------------------------------------------


_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def _block(block: message_pb2.ContentBlock) -> dict[str, Any] | None:
    """A Converse content block; kinds Converse cannot carry become a short text note."""
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"text": block.text.text} if block.text.text else None
    if kind == "tool_use":
        use = block.tool_use
        return {
            "toolUse": {
                "toolUseId": use.tool_use_id,
                "name": use.name,
                "input": json_format.MessageToDict(use.arguments),
            }
        }
    if kind == "tool_result":
        result = block.tool_result
        content = [c for c in (_result_part(b) for b in result.content) if c]
        return {
            "toolResult": {
                "toolUseId": result.tool_use_id,
                "content": content or [{"text": "(empty result)"}],
                "status": "error" if result.is_error else "success",
            }
        }
    return _result_part(block)


def _result_part(block: message_pb2.ContentBlock) -> dict[str, Any] | None:
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"text": block.text.text} if block.text.text else None
    if kind == "json":
        return {"json": json_format.MessageToDict(block.json.value)}
    if kind == "image":
        fmt = _IMAGE_FORMATS.get(block.image.mime_type)
        if fmt is not None:
            return {
                "image": {"format": fmt, "source": {"bytes": base64.b64decode(block.image.data)}}
            }
        return {"text": f"[image of type {block.image.mime_type} omitted]"}
    if kind == "audio":
        return {"text": f"[audio of type {block.audio.mime_type} omitted]"}
    if kind == "resource":
        r = block.resource
        if r.HasField("text"):
            return {"text": f"[resource {r.uri}]\n{r.text}"}
        return {"text": f"[binary resource {r.uri} omitted]"}
    if kind == "resource_link":
        link = block.resource_link
        about = f": {link.description}" if link.HasField("description") else ""
        return {"text": f"[resource link {link.name} {link.uri}{about}]"}
    return None


def converse_messages(turns: tuple[message_pb2.Message, ...]) -> list[dict[str, Any]]:
    """Converse wants alternating user/assistant messages with all tool results for an assistant
    turn in the one user message after it. The committed stream may hold several user-side
    messages in a row (the MCP results a pausing run committed, then the caller's tool outputs
    that resumed it; or a cancelled run's user message before the next one): they are merged."""
    out: list[dict[str, Any]] = []
    for turn in turns:
        role = "assistant" if turn.role == message_pb2.ROLE_ASSISTANT else "user"
        content = [b for b in (_block(x) for x in turn.content_blocks) if b is not None]
        if not content:
            continue
        if out and out[-1]["role"] == role:
            merged = out[-1]["content"] + content
            # tool results first: Converse pairs them with the previous assistant's tool uses
            merged.sort(key=lambda b: 0 if "toolResult" in b else 1)
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": content})
    return out


def converse_body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": converse_messages(request.messages),
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }
    if request.system_prompt:
        body["system"] = [{"text": request.system_prompt}]
    if request.tools:
        config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.input_schema or {"type": "object"}},
                    }
                }
                for t in request.tools
            ]
        }
        choice = request.tool_choice
        if choice is not None:
            if choice.kind == "tool":
                config["toolChoice"] = {"tool": {"name": choice.name}}
            else:
                config["toolChoice"] = {choice.kind: {}}
        body["toolConfig"] = config
    if request.output_schema is not None:
        body["outputConfig"] = {
            "textFormat": {
                "type": "json_schema",
                "structure": {
                    "jsonSchema": {
                        "schema": orjson.dumps(request.output_schema).decode(),
                        "name": OUTPUT_SCHEMA_NAME,
                    }
                },
            }
        }
    return body


def _struct(value: Any) -> struct_pb2.Struct:
    args = struct_pb2.Struct()
    args.update(value if isinstance(value, dict) else {"value": value})
    return args


def parse_reply(response: dict[str, Any]) -> ModelReply:
    content: list[message_pb2.ContentBlock] = []
    message = (response.get("output") or {}).get("message") or {}
    for block in message.get("content") or []:
        if "text" in block:
            content.append(message_pb2.ContentBlock(text=message_pb2.TextBlock(text=block["text"])))
        elif "toolUse" in block:
            use = block["toolUse"]
            content.append(
                message_pb2.ContentBlock(
                    tool_use=message_pb2.ToolUseBlock(
                        tool_use_id=use["toolUseId"],
                        name=use["name"],
                        arguments=_struct(use.get("input") or {}),
                    )
                )
            )
        # reasoning, citations and unknown members (SDK_UNKNOWN_MEMBER) are not kept
    usage = response.get("usage") or {}
    raw = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return ModelReply(
        tuple(content),
        str(response.get("stopReason", "")),
        TokenUsage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))),
        orjson.dumps(raw, default=str).decode(),
    )
