"""Bedrock Converse: botocore builds, signs and parses each call; aiohttp sends it.

- botocore keeps what it owns: credentials, endpoint resolution (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`
  included), the `bedrock-runtime` service model (request and response shapes, error codes),
  SigV4 or `AWS_BEARER_TOKEN_BEDROCK` bearer auth, and its standard-mode retry rules and backoff.
- The HTTP call is async on one kept aiohttp session: no thread is held while the model thinks, so
  a runner can wait on thousands of calls at once. boto3's own `converse()` runs synchronously on a
  thread pool, which costs two to three times the CPU per call (`tests/bench/converse_call.py`).
- One endpoint per data plane, resolved once off the event loop (loading the service model reads
  files); all data planes share one AWS account today, the key lets one get its own endpoint.
- Exactly one retry layer: botocore's standard rules (`max_attempts` in all), waited out with
  `asyncio.sleep`, nothing else in our code. A cancelled run stops its call at once.
- The region is `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1 (botocore ignores
  AWS_REGION).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import random
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import boto3
import botocore
import botocore.exceptions as bce
import orjson
import yarl
from agents.v1 import message_pb2
from botocore import parsers, serialize
from botocore.auth import BearerAuth, SigV4Auth
from botocore.awsrequest import (
    AWSRequest,
    AWSResponse,
    HeadersDict,
    create_request_object,
    prepare_request_dict,
)
from botocore.config import Config
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.model import OperationModel
from botocore.retries import standard
from botocore.tokens import FrozenAuthToken
from botocore.utils import get_token_from_environment
from google.protobuf import json_format, struct_pb2

from services.common.contract import DOCUMENT_FORMATS, IMAGE_FORMATS
from services.common.incidents import MODEL_INVOCATION_FAILED, MODEL_THROTTLED, MODEL_TIMEOUT
from services.runner.providers.base import (
    OUTPUT_SCHEMA_NAME,
    DeltaSink,
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
_SERIALIZER = serialize.create_serializer("rest-json", include_validation=False)
_PARSER = parsers.create_parser("rest-json")
MESSAGE_CHARS = 500  # of an error answer's message kept on the run (a proxy's page can be big)
USER_AGENT = f"parley Botocore/{botocore.__version__}"  # not signed, as botocore does


@dataclass(frozen=True)
class BedrockOptions:
    max_connections: int = 64  # the runner sets it to its concurrency
    max_attempts: int = 3
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True)
class Endpoint:
    """What botocore resolved for one data plane."""

    url: str
    region: str
    signing_name: str
    converse: OperationModel
    credentials: Credentials | None
    bearer_token: str | None


class BedrockProvider:
    name = "bedrock"

    def __init__(self, options: BedrockOptions = BedrockOptions()) -> None:
        self._options = options
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        throttling = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._retry = standard.RetryPolicy(
            standard.StandardRetryConditions(max_attempts=options.max_attempts),
            standard.ExponentialBackoff(random=random.random, throttling_detector=throttling),
        )

    def _resolve(self) -> Endpoint:
        session = boto3.session.Session()
        client = session.client("bedrock-runtime", config=Config(region_name=region()))
        service = client.meta.service_model
        return Endpoint(
            client.meta.endpoint_url,
            client.meta.region_name,
            service.signing_name,
            service.operation_model("Converse"),
            session.get_credentials(),
            get_token_from_environment(service.signing_name),
        )

    async def endpoint(self, data_plane_id: str) -> Endpoint:
        found = self._endpoints.get(data_plane_id)
        if found is not None:
            return found
        async with self._lock:
            if data_plane_id not in self._endpoints:
                self._endpoints[data_plane_id] = await asyncio.to_thread(self._resolve)
            return self._endpoints[data_plane_id]

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:  # built on the event loop, at the first call
            o = self._options
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=o.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=o.connect_timeout_s, sock_read=o.read_timeout_s
                ),
            )
        return self._http

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

    async def converse(self, call: PreparedCall, deltas: DeltaSink | None = None) -> ModelReply:
        """Converse (ConverseStream is not called yet: a streamed call answers whole)."""
        endpoint = await self.endpoint(call.data_plane_id)
        params = {"modelId": call.provider_model_id, **call.body}
        for attempt in itertools.count(1):
            parsed: dict[str, Any] | None = None
            response: AWSResponse | None = None
            failure: bce.BotoCoreError | None = None
            try:
                request = await signed_request(endpoint, params)
                response, parsed = await self._send(endpoint, request)
                if response.status_code < 300:
                    return parse_reply(parsed)
            except bce.BotoCoreError as exc:
                failure = exc
            context = standard.RetryContext(attempt, endpoint.converse, parsed, response, failure)
            if not self._retry.should_retry(context):
                raise _classify(parsed, failure)
            await asyncio.sleep(self._retry.compute_retry_delay(context))
        raise AssertionError("unreachable")

    async def _send(
        self, endpoint: Endpoint, request: AWSRequest
    ) -> tuple[AWSResponse, dict[str, Any]]:
        url = yarl.URL(request.url, encoded=True)  # the path exactly as signed (%3A stays)
        try:
            async with self._session().post(
                url, data=request.body, headers=dict(request.headers.items())
            ) as http_response:
                body = await http_response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise bce.ConnectTimeoutError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise bce.ReadTimeoutError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ClientConnectorError as exc:
            raise bce.EndpointConnectionError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ClientError as exc:
            raise bce.ConnectionClosedError(endpoint_url=endpoint.url) from exc
        headers = HeadersDict(http_response.headers.items())
        response = AWSResponse(request.url, http_response.status, headers, None)
        return response, _parse(endpoint.converse, http_response.status, headers, body)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


async def signed_request(endpoint: Endpoint, params: dict[str, Any]) -> AWSRequest:
    request_dict = _SERIALIZER.serialize_to_request(params, endpoint.converse)
    prepare_request_dict(request_dict, endpoint_url=endpoint.url, user_agent=USER_AGENT)
    request = create_request_object(request_dict)
    if endpoint.bearer_token is not None:
        BearerAuth(FrozenAuthToken(endpoint.bearer_token)).add_auth(request)
        return request
    credentials = endpoint.credentials
    if credentials is None:
        raise bce.NoCredentialsError()
    if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
        frozen = await asyncio.to_thread(credentials.get_frozen_credentials)  # may call STS/IMDS
    else:
        frozen = credentials.get_frozen_credentials()
    SigV4Auth(frozen, endpoint.signing_name, endpoint.region).add_auth(request)
    return request


def _wire_json(value: Any) -> Any:
    """Bytes as botocore puts them on the wire: base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _parse(
    operation: OperationModel, status: int, headers: HeadersDict, body: bytes
) -> dict[str, Any]:
    """botocore's reading of an answer. Its parser assumes a JSON object and reads anything else
    as an empty answer or fails on it; either is the provider's failure here. A success without
    `output.message` raises ModelInvocationFailed (botocore's rules retry no 2xx); an unreadable
    error answer becomes an error without a code, which the rules judge by its HTTP status."""
    try:
        parsed = _PARSER.parse(
            {"status_code": status, "headers": headers, "body": body}, operation.output_shape
        )
    except Exception:  # noqa: BLE001 - botocore's parser on an untrusted body (AttributeError…)
        parsed = None
    if status >= 300:
        if parsed is not None and isinstance(parsed.get("Error"), dict):
            return parsed
        return {
            "Error": {
                "Code": f"HTTP {status}",
                "Message": f"an unreadable answer ({_unread(body)})",
            },
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
    output = (parsed or {}).get("output")
    if not isinstance(output, dict) or not isinstance(output.get("message"), dict):
        detail = f"unreadable Bedrock answer (HTTP {status}): {_unread(body)}"
        raise ProviderError(MODEL_INVOCATION_FAILED, detail)
    return parsed  # type: ignore[return-value]


def _unread(body: bytes) -> str:
    """What is wrong with an answer's body, in a few words (it is never quoted: it may be big)."""
    if not body.strip():
        return "an empty body"
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"{len(body)} bytes that are not JSON"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__} where an object belongs"
    return "a JSON object without `output.message`"


def _classify(parsed: dict[str, Any] | None, failure: bce.BotoCoreError | None) -> ProviderError:
    if failure is not None:
        if isinstance(failure, bce.ReadTimeoutError | bce.ConnectTimeoutError):
            return ProviderError(MODEL_TIMEOUT, f"Bedrock did not answer in time: {failure}")
        return ProviderError(MODEL_INVOCATION_FAILED, f"Bedrock call failed: {failure}")
    error = (parsed or {}).get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))[:MESSAGE_CHARS]
    detail = f"Bedrock answered {code}: {message}" if message else f"Bedrock answered {code}"
    if code in _THROTTLED:
        return ProviderError(MODEL_THROTTLED, detail)
    if code in _TIMEOUT:
        return ProviderError(MODEL_TIMEOUT, detail)
    return ProviderError(MODEL_INVOCATION_FAILED, detail)


# --- request and response shapes (pure) --------------------------------------------------------

_TOOL_USE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DOCUMENT_NAME_OUT = re.compile(r"[^A-Za-z0-9\-()\[\] ]+|\s+")  # what Converse refuses in a name


def tool_use_id(value: str) -> str:
    """A tool call's id as Converse takes it (`[a-zA-Z0-9_-]{1,64}`): unchanged when it already
    is, else a deterministic stand-in, the same for the call and its result. Another provider
    may have made the id (a chat-completions server's `functions.lookup:0`)."""
    if _TOOL_USE_ID.match(value):
        return value
    return "tooluse_" + hashlib.sha256(value.encode()).hexdigest()[:32]


def document_name(name: str) -> str:
    """A document's name as Converse takes it: letters, digits, single spaces, hyphens,
    parentheses and square brackets ("q3-report.pdf" becomes "q3-report pdf")."""
    cleaned = " ".join(_DOCUMENT_NAME_OUT.sub(" ", name).split())
    return cleaned[:200] or "document"


def _block(block: message_pb2.ContentBlock) -> dict[str, Any] | None:
    """A Converse content block; kinds Converse cannot carry become a short text note."""
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"text": block.text.text} if block.text.text else None
    if kind == "tool_use":
        use = block.tool_use
        return {
            "toolUse": {
                "toolUseId": tool_use_id(use.tool_use_id),
                "name": use.name,
                "input": json_format.MessageToDict(use.arguments),
            }
        }
    if kind == "tool_result":
        result = block.tool_result
        content = [c for c in (_result_part(b) for b in result.content) if c]
        return {
            "toolResult": {
                "toolUseId": tool_use_id(result.tool_use_id),
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
        media_type = block.image.media_type or block.image.mime_type
        fmt = IMAGE_FORMATS.get(media_type)
        if fmt is not None:
            return {
                "image": {"format": fmt, "source": {"bytes": base64.b64decode(block.image.data)}}
            }
        return {"text": f"[image of type {media_type} omitted]"}
    if kind == "document":
        document = block.document
        fmt = DOCUMENT_FORMATS.get(document.media_type)
        if fmt is not None:
            return {
                "document": {
                    "format": fmt,
                    "name": document_name(document.name),
                    "source": {"bytes": base64.b64decode(document.data)},
                }
            }
        return {"text": f"[document {document.name} of type {document.media_type} omitted]"}
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
        TokenUsage(
            int(usage.get("inputTokens", 0)),
            int(usage.get("outputTokens", 0)),
            int(usage.get("cacheReadInputTokens", 0)),
            int(usage.get("cacheWriteInputTokens", 0)),
        ),
        orjson.dumps(raw, default=str).decode(),
    )
