"""A chat-completions endpoint over HTTP: the provider of cortex and openai clusters (`cortex.py`
and `openai.py` give it its URL and credentials; `chat_completions.py` its shapes).

- One aiohttp session per provider, built at its first call, with explicit connect and read
  timeouts (a read timeout bounds each wait for the next bytes: a whole answer, or the gap between
  two streamed chunks).
- Exactly one retry layer, here: a 429, a 5xx or a failed connection is tried again up to
  `max_attempts` in all, after the server's Retry-After (`retry-after-ms`, `retry-after`) or an
  exponential backoff with jitter; nothing else is retried. A stream is never retried once a piece
  of it reached the caller. A cancelled run stops its call at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from services.common import tracing
from services.common.incidents import MODEL_INVOCATION_FAILED, MODEL_THROTTLED, MODEL_TIMEOUT
from services.runner.providers import chat_completions
from services.runner.providers.base import (
    DeltaSink,
    ModelReply,
    ModelRequest,
    PreparedCall,
    ProviderError,
)

MESSAGE_CHARS = 500  # of an error answer's message kept on the run
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ChatOptions:
    max_connections: int = 64  # the runner sets it to its concurrency (0: no limit)
    max_attempts: int = 3
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    max_retry_after_s: float = 30.0  # a server asking to wait longer is not waited for


class _Failure(ProviderError):
    """One attempt's failure; `retryable` ones are tried again, after `delay` when the server
    named one."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, delay: float | None = None
    ) -> None:
        super().__init__(code, message)
        self.retryable = retryable
        self.delay = delay


class ChatCompletionsProvider:
    def __init__(
        self,
        name: str,
        label: str,
        url: str,
        headers: Mapping[str, str],
        *,
        max_tokens_field: str,
        options: ChatOptions = ChatOptions(),
        missing_credential: str = "",
    ) -> None:
        self.name = name  # cortex | openai
        self.label = label  # in error messages: "cluster snowflake (cortex)"
        self.url = url
        self._headers = {"Content-Type": "application/json", "User-Agent": "parley", **headers}
        self._max_tokens_field = max_tokens_field
        self._options = options
        self.missing_credential = missing_credential  # why every call fails, when non-empty
        self._http: aiohttp.ClientSession | None = None

    def prepare(self, data_plane_id: str, request: ModelRequest) -> PreparedCall:
        body = chat_completions.request_body(
            request, max_tokens_field=self._max_tokens_field, stream=request.stream
        )
        return PreparedCall(
            data_plane_id,
            request.provider_model_id,
            body,
            orjson.dumps(body).decode(),
            stream=request.stream,
        )

    async def converse(self, call: PreparedCall, deltas: DeltaSink | None = None) -> ModelReply:
        if self.missing_credential:
            raise ProviderError(MODEL_INVOCATION_FAILED, self.missing_credential)
        payload = call.request_json.encode()
        for attempt in itertools.count(1):
            try:
                return await self._attempt(payload, call.stream, deltas)
            except _Failure as failure:
                if not failure.retryable or attempt >= self._options.max_attempts:
                    raise ProviderError(failure.code, failure.message) from None
                await asyncio.sleep(self._delay(attempt, failure.delay))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return asked
        o = self._options
        return random.uniform(0, min(o.backoff_cap_s, o.backoff_base_s * 2 ** (attempt - 1)))

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

    async def _attempt(self, payload: bytes, stream: bool, deltas: DeltaSink | None) -> ModelReply:
        headers = {**self._headers, "Accept": "text/event-stream" if stream else "application/json"}
        tracing.inject(headers)
        streamed = False
        try:
            async with self._session().post(self.url, data=payload, headers=headers) as response:
                if response.status >= 300:
                    raise self._refused(response.status, response.headers, await response.read())
                if not stream:
                    body = await response.read()
                    return self._parse(response.status, body)
                gathered = chat_completions.StreamedReply()
                async for chunk in _sse_data(response.content):
                    for delta in gathered.feed(chunk):
                        streamed = True
                        if deltas is not None:
                            deltas(delta)
                return gathered.reply()
        except aiohttp.ConnectionTimeoutError as exc:
            raise _Failure(
                MODEL_TIMEOUT, f"{self.label}: could not connect in time ({exc})", retryable=True
            ) from None
        except aiohttp.ServerTimeoutError:
            raise _Failure(
                MODEL_TIMEOUT,
                f"{self.label} did not answer in time "
                f"(nothing for {self._options.read_timeout_s:g} s)",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise _Failure(
                MODEL_INVOCATION_FAILED, f"{self.label}: cannot connect: {exc}", retryable=True
            ) from None
        except aiohttp.ClientError as exc:  # the connection broke, or the answer did
            raise _Failure(
                MODEL_INVOCATION_FAILED,
                f"{self.label}: the call failed: {type(exc).__name__}: {exc}",
                retryable=not streamed,
            ) from None

    def _parse(self, status: int, body: bytes) -> ModelReply:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Failure(
                MODEL_INVOCATION_FAILED,
                f"{self.label}: unreadable answer (HTTP {status}, {len(body)} bytes that are not "
                "JSON)",
            ) from None
        try:
            return chat_completions.parse_reply(answer, body.decode("utf-8", errors="replace"))
        except ProviderError as exc:
            raise _Failure(exc.code, f"{self.label}: {exc.message}") from None

    def _refused(self, status: int, headers: Mapping[str, str], body: bytes) -> _Failure:
        detail = f"{self.label} answered HTTP {status}: {_error_message(body)}"
        if status == 429:
            code = MODEL_THROTTLED
        elif status in (408, 504):
            code = MODEL_TIMEOUT
        else:
            code = MODEL_INVOCATION_FAILED
        if status not in _RETRYABLE_STATUS:
            return _Failure(code, detail)
        asked = retry_after(headers)
        if asked is not None and asked > self._options.max_retry_after_s:
            return _Failure(code, f"{detail} (it asks to retry after {asked:g} s)")
        return _Failure(code, detail, retryable=True, delay=asked)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: `retry-after-ms` (OpenAI), else `retry-after` (seconds
    or an HTTP date); None when it names none."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(body: bytes) -> str:
    """The provider's words: OpenAI's `error.message`, Snowflake's `message`, else the text."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:MESSAGE_CHARS] if text else "(an empty body)"
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:MESSAGE_CHARS]
        for key in ("message", "error", "detail"):
            if value.get(key):
                return str(value[key])[:MESSAGE_CHARS]
    return body.decode("utf-8", errors="replace")[:MESSAGE_CHARS]


async def _sse_data(content: aiohttp.StreamReader) -> Any:
    """The JSON of each `data:` event of a Server-Sent Events body, until `data: [DONE]`."""
    buffer = b""
    data: list[bytes] = []
    async for piece in content.iter_any():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif not line and data:
                event, data = b"\n".join(data), []
                if event == b"[DONE]":
                    return
                try:
                    yield orjson.loads(event)
                except orjson.JSONDecodeError:
                    raise ProviderError(
                        MODEL_INVOCATION_FAILED, f"a streamed chunk is not JSON: {event[:200]!r}"
                    ) from None
    raise ProviderError(MODEL_INVOCATION_FAILED, "the stream ended before `data: [DONE]`")
