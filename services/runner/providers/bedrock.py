"""Bedrock Converse and ConverseStream: botocore builds, signs and parses each call; aiohttp sends
it, and a streamed answer is read as it arrives (botocore's event-stream framing and parser).

- botocore keeps what it owns: credentials, endpoint resolution (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`
  included), the `bedrock-runtime` service model (request and response shapes, error codes),
  SigV4 or `AWS_BEARER_TOKEN_BEDROCK` bearer auth, and its standard-mode retry rules and backoff.
- The HTTP call is async on one kept aiohttp session: no thread is held while the model thinks, so
  a runner can wait on thousands of calls at once. boto3's own `converse()` runs synchronously on a
  thread pool, which costs two to three times the CPU per call (`tests/bench/converse_call.py`).
- One endpoint per data plane, resolved once off the event loop (loading the service model reads
  files); all data planes share one AWS account today, the key lets one get its own endpoint.
- Exactly one retry layer: botocore's standard rules (`max_attempts` in all), waited out with
  `asyncio.sleep`, nothing else in our code; a stream is not retried once it has started (as
  botocore: an exception inside the stream ends the call). A cancelled run stops its call at
  once, closing a stream's connection.
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
from typing import Any, Final

import aiohttp
import boto3
import botocore
import botocore.exceptions as bce
import orjson
import yarl
from agents.v1 import message_pb2
from botocore import parsers, serialize
from botocore.eventstream import EventStreamBuffer, ParserError
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

from services.common import tracing
from services.common.contract import DOCUMENT_FORMATS, IMAGE_FORMATS
from services.common.incidents import MODEL_INVOCATION_FAILED, MODEL_THROTTLED, MODEL_TIMEOUT
from services.runner.providers.base import (
    OUTPUT_SCHEMA_NAME,
    DeltaSink,
    ModelReply,
    ModelRequest,
    PreparedCall,
    ProviderError,
    ReplyDelta,
    TokenUsage,
)

_THROTTLED = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"}
)
_TIMEOUT = frozenset({"ModelTimeoutException", "RequestTimeout", "RequestTimeoutException"})
_SERIALIZER = serialize.create_serializer("rest-json", include_validation=False)
_PARSER = parsers.create_parser("rest-json")
_EVENT_PARSER = parsers.EventStreamJSONParser()
MESSAGE_CHARS = 500  # of an error answer's message kept on the run (a proxy's page can be big)
USER_AGENT = f"parley Botocore/{botocore.__version__}"  # not signed, as botocore does


@dataclass(frozen=True)
class BedrockOptions:
    max_connections: int = 64  # the runner sets it to its concurrency (0: no limit)
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
    converse_stream: OperationModel
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
            service.operation_model("ConverseStream"),
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
            stream=request.stream,
        )

    async def converse(self, call: PreparedCall, deltas: DeltaSink | None = None) -> ModelReply:
        """Converse, or ConverseStream when `call.stream` (each text and reasoning piece to
        `deltas` as it arrives); botocore's rules retry what fails before an answer starts."""
        endpoint = await self.endpoint(call.data_plane_id)
        operation = endpoint.converse_stream if call.stream else endpoint.converse
        params = {"modelId": call.provider_model_id, **call.body}
        for attempt in itertools.count(1):
            parsed: dict[str, Any] | None = None
            response: AWSResponse | None = None
            failure: bce.BotoCoreError | None = None
            try:
                request = await signed_request(endpoint, params, operation)
                answer = await self._send(endpoint, operation, request, deltas)
                if isinstance(answer, ModelReply):
                    return answer
                response, parsed = answer
                if response.status_code < 300:
                    return parse_reply(parsed)
            except bce.BotoCoreError as exc:
                failure = exc
            context = standard.RetryContext(attempt, operation, parsed, response, failure)
            if not self._retry.should_retry(context):
                raise _classify(parsed, failure)
            await asyncio.sleep(self._retry.compute_retry_delay(context))
        raise AssertionError("unreachable")

    async def _send(
        self,
        endpoint: Endpoint,
        operation: OperationModel,
        request: AWSRequest,
        deltas: DeltaSink | None,
    ) -> tuple[AWSResponse, dict[str, Any]] | ModelReply:
        """One HTTP exchange: the parsed answer (or error) for the retry rules to judge, or a
        streamed reply read to its end (which is never retried)."""
        url = yarl.URL(request.url, encoded=True)  # the path exactly as signed (%3A stays)
        headers = dict(request.headers.items())
        tracing.inject(headers)  # unsigned, as SigV4 allows: the model call's span
        try:
            async with self._session().post(
                url, data=request.body, headers=headers
            ) as http_response:
                if operation.has_event_stream_output and http_response.status < 300:
                    return await read_stream(http_response, endpoint, deltas)
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
        return response, _parse(operation, http_response.status, headers, body)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


async def signed_request(
    endpoint: Endpoint, params: dict[str, Any], operation: OperationModel | None = None
) -> AWSRequest:
    request_dict = _SERIALIZER.serialize_to_request(params, operation or endpoint.converse)
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


# --- ConverseStream ------------------------------------------------------------------------------


async def read_stream(
    http_response: aiohttp.ClientResponse, endpoint: Endpoint, deltas: DeltaSink | None
) -> ModelReply:
    """A ConverseStream answer read as it arrives: every event framed and parsed by botocore,
    handed to a StreamAssembler; its deltas go to `deltas`. Any way out but the stream's end
    (a cancelled run, a failure) closes the connection at once."""
    buffer = EventStreamBuffer()
    assembler = StreamAssembler()
    shape = endpoint.converse_stream.output_shape.members["stream"]
    try:
        async for chunk in http_response.content.iter_any():
            buffer.add_data(chunk)
            for message in buffer:
                parsed = _EVENT_PARSER.parse(message.to_response_dict(), shape)
                if "Error" in parsed:
                    raise _classify_stream_error(parsed["Error"])
                delta = assembler.feed(parsed)
                if delta is not None and deltas is not None:
                    deltas(delta)
    except ParserError as exc:
        http_response.close()
        raise ProviderError(
            MODEL_INVOCATION_FAILED, f"unreadable Bedrock stream: {type(exc).__name__}: {exc}"
        ) from None
    except aiohttp.ServerTimeoutError:
        http_response.close()
        raise ProviderError(
            MODEL_TIMEOUT, f"Bedrock's stream went quiet ({endpoint.url}): read timeout"
        ) from None
    except aiohttp.ClientError as exc:
        http_response.close()
        raise ProviderError(
            MODEL_INVOCATION_FAILED, f"Bedrock's stream broke off: {type(exc).__name__}: {exc}"
        ) from None
    except BaseException:
        http_response.close()
        raise
    return parse_reply(assembler.response())


def _classify_stream_error(error: dict[str, Any]) -> ProviderError:
    """An exception event inside the stream (botocore names it by member: throttlingException)."""
    member = str(error.get("Code", ""))
    code = member[:1].upper() + member[1:]
    return _classify({"Error": {"Code": code, "Message": error.get("Message", "")}}, None)


@dataclass
class _StreamedBlock:
    kind: str  # text | reasoning | toolUse
    parts: list[str]
    signature: str = ""
    redacted: bytes | None = None
    tool_use_id: str = ""
    name: str = ""


class StreamAssembler:
    """A ConverseStream's events gathered into the Converse answer they stand for, so that a
    streamed reply is exactly the unstreamed one: text and reasoning from their deltas, a tool
    call's input from its JSON fragments, the stop reason and usage from the stream's end.
    Blocks the reply does not keep (citations, images, unknown members) are skipped; a delta's
    block_index is its block's place among the kept ones."""

    def __init__(self) -> None:
        self._blocks: dict[int, _StreamedBlock] = {}
        self._order: list[int] = []  # Bedrock content block indexes, in order of appearance
        self._stop: dict[str, Any] | None = None
        self._metadata: dict[str, Any] = {}

    def _block(self, index: int, kind: str) -> tuple[int, _StreamedBlock]:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = _StreamedBlock(kind, [])
            self._order.append(index)
        return self._order.index(index), block

    def feed(self, event: dict[str, Any]) -> ReplyDelta | None:
        """One parsed event ({member: payload}); the text or reasoning delta it carries."""
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if use is not None:
                _, block = self._block(int(start.get("contentBlockIndex", 0)), "toolUse")
                block.tool_use_id, block.name = use.get("toolUseId", ""), use.get("name", "")
            return None
        if "contentBlockDelta" in event:
            payload = event["contentBlockDelta"]
            index, delta = int(payload.get("contentBlockIndex", 0)), payload.get("delta") or {}
            if "text" in delta:
                position, block = self._block(index, "text")
                block.parts.append(delta["text"])
                return ReplyDelta(position, delta["text"]) if delta["text"] else None
            if "reasoningContent" in delta:
                reasoning = delta["reasoningContent"]
                position, block = self._block(index, "reasoning")
                if "text" in reasoning:
                    block.parts.append(reasoning["text"])
                    if reasoning["text"]:
                        return ReplyDelta(position, reasoning["text"], "reasoning")
                if "signature" in reasoning:
                    block.signature += reasoning["signature"]
                if "redactedContent" in reasoning:
                    block.redacted = (block.redacted or b"") + reasoning["redactedContent"]
                return None
            if "toolUse" in delta:
                _, block = self._block(index, "toolUse")
                block.parts.append((delta["toolUse"] or {}).get("input", ""))
            return None
        if "messageStop" in event:
            self._stop = event["messageStop"]
        elif "metadata" in event:
            self._metadata = event["metadata"]
        return None

    def response(self) -> dict[str, Any]:
        """The Converse answer, once the stream has ended; ModelInvocationFailed when it ended
        before `messageStop` or a tool call's input is not JSON."""
        if self._stop is None:
            raise ProviderError(
                MODEL_INVOCATION_FAILED,
                "unreadable Bedrock stream: it ended before its messageStop event",
            )
        content = [self._converse_block(self._blocks[i]) for i in self._order]
        response: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop.get("stopReason", ""),
            "usage": self._metadata.get("usage") or {},
            "metrics": self._metadata.get("metrics") or {},
        }
        if "additionalModelResponseFields" in self._stop:
            response["additionalModelResponseFields"] = self._stop["additionalModelResponseFields"]
        return response

    @staticmethod
    def _converse_block(block: _StreamedBlock) -> dict[str, Any]:
        if block.kind == "text":
            return {"text": "".join(block.parts)}
        if block.kind == "reasoning":
            if block.redacted is not None:
                return {"reasoningContent": {"redactedContent": block.redacted}}
            text = "".join(block.parts)
            return {
                "reasoningContent": {"reasoningText": {"text": text, "signature": block.signature}}
            }
        raw = "".join(block.parts)
        try:
            arguments = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise ProviderError(
                MODEL_INVOCATION_FAILED,
                f"unreadable Bedrock stream: the input of tool call {block.tool_use_id} is not "
                f"JSON ({len(raw)} characters)",
            ) from None
        return {"toolUse": {"toolUseId": block.tool_use_id, "name": block.name, "input": arguments}}


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
    parsed: dict[str, Any] | None
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
    if (
        parsed is None
        or not isinstance(output, dict)
        or not isinstance(output.get("message"), dict)
    ):
        detail = f"unreadable Bedrock answer (HTTP {status}): {_unread(body)}"
        raise ProviderError(MODEL_INVOCATION_FAILED, detail)
    return parsed


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


def _block(block: message_pb2.ContentBlock, reasoning: bool) -> dict[str, Any] | None:
    """A Converse content block; kinds Converse cannot carry become a short text note. Reasoning
    goes back as it came (signature and all) when `reasoning` (thinking is on), else not at all."""
    kind = block.WhichOneof("block")
    if kind == "reasoning":
        return _reasoning_block(block.reasoning) if reasoning else None
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


def _reasoning_block(block: message_pb2.ReasoningBlock) -> dict[str, Any]:
    if block.HasField("redacted_content"):
        return {"reasoningContent": {"redactedContent": base64.b64decode(block.redacted_content)}}
    return {
        "reasoningContent": {"reasoningText": {"text": block.text, "signature": block.signature}}
    }


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


def converse_messages(
    turns: tuple[message_pb2.Message, ...], reasoning: bool = False
) -> list[dict[str, Any]]:
    """Converse wants alternating user/assistant messages with all tool results for an assistant
    turn in the one user message after it. The committed stream may hold several user-side
    messages in a row (the MCP results a pausing run committed, then the caller's tool outputs
    that resumed it; or a cancelled run's user message before the next one): they are merged.
    With `reasoning` (thinking on), assistant turns keep their reasoning blocks, in place: a
    tool loop with thinking on fails on Bedrock without them."""
    out: list[dict[str, Any]] = []
    for turn in turns:
        role = "assistant" if turn.role == message_pb2.ROLE_ASSISTANT else "user"
        content = [b for b in (_block(x, reasoning) for x in turn.content_blocks) if b is not None]
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
    thinking = request.thinking_budget is not None
    body: dict[str, Any] = {
        "messages": converse_messages(request.messages, reasoning=thinking),
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }
    if thinking:
        body["additionalModelRequestFields"] = {
            "thinking": {"type": "enabled", "budget_tokens": request.thinking_budget}
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
    if request.prompt_caching:
        _add_cache_points(body)
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


# Bedrock caches a prompt prefix only from about 1,024 tokens (Claude; more for some models): a
# cachePoint after a shorter prefix is ignored. Estimated at ~4 characters a token, as JSON.
CACHE_MIN_TOKENS: Final = 1024
_CHARS_PER_TOKEN: Final = 4


def _add_cache_points(body: dict[str, Any]) -> None:
    """A cachePoint after the tool list and after the system prompt, where the prefix up to it
    (tools first, then system: the order the model reads them) is long enough to be cached.
    Every call of a run's tool loop repeats that prefix, so each call after the first reads it
    from the cache at the cache-read price."""
    prefix_chars = 0
    tools = (body.get("toolConfig") or {}).get("tools")
    if tools:
        prefix_chars += len(orjson.dumps(tools))
        if prefix_chars >= CACHE_MIN_TOKENS * _CHARS_PER_TOKEN:
            tools.append({"cachePoint": {"type": "default"}})
    system = body.get("system")
    if system:
        prefix_chars += len(orjson.dumps(system))
        if prefix_chars >= CACHE_MIN_TOKENS * _CHARS_PER_TOKEN:
            system.append({"cachePoint": {"type": "default"}})


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
        elif "reasoningContent" in block:
            content.append(message_pb2.ContentBlock(reasoning=_reasoning(block)))
        # citations and unknown members (SDK_UNKNOWN_MEMBER) are not kept
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
        orjson.dumps(raw, default=_wire_json).decode(),
    )


def _reasoning(block: dict[str, Any]) -> message_pb2.ReasoningBlock:
    reasoning = block["reasoningContent"] or {}
    if "redactedContent" in reasoning:
        redacted = reasoning["redactedContent"]
        if isinstance(redacted, str):  # a body not parsed by botocore keeps it base64
            redacted = base64.b64decode(redacted)
        return message_pb2.ReasoningBlock(redacted_content=base64.b64encode(redacted).decode())
    text = reasoning.get("reasoningText") or {}
    return message_pb2.ReasoningBlock(
        text=text.get("text", ""), signature=text.get("signature", "")
    )
