"""The provider protocol and provider-neutral types. Turns are the contract's own protos
(`agents.v1.Message` / `ContentBlock`), so a transcript one provider started continues on
another; each provider converts them to its wire format and its answers back.

Streaming: `converse(call, deltas)` with `call.stream` set (from `ModelRequest.stream`) calls the
provider's streaming API (Bedrock ConverseStream, `stream: true` on chat completions) and hands
each piece of text or reasoning to `deltas` as it arrives; it returns the same `ModelReply` the
unstreamed call would have, assembled from the stream (tool inputs from their fragments, usage
and stop reason from the stream's end). Each delta names the index of the content block it
extends in that reply, so a block's deltas concatenate to its text exactly. The sink is
synchronous and must not block (the runner only buffers); cancelling the awaiting task closes
the stream at once. A provider without a streaming API ignores `deltas`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from agents.v1 import message_pb2

OUTPUT_SCHEMA_NAME: Final = "final_answer"  # the name structured output's schema is sent under


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one call or a sum of calls. `prompt` excludes prompt-cache reads and writes, as
    Bedrock counts them; providers that count them in normalise."""

    prompt: int = 0
    completion: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    @property
    def total(self) -> int:
        """Every token, cache reads and writes included (Bedrock's totalTokens)."""
        return self.prompt + self.completion + self.cache_read + self.cache_write


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: wire name ("{alias}-{tool}" or a bare caller name)."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ForcedTool:
    """The first iteration's tool choice: "auto", "any", or "tool" with the wire name."""

    kind: str
    name: str = ""


@dataclass(frozen=True)
class ModelRequest:
    provider_model_id: str
    system_prompt: str
    messages: tuple[message_pb2.Message, ...]  # history, input and the run's turns, in order
    tools: tuple[ToolSpec, ...]
    tool_choice: ForcedTool | None
    max_tokens: int
    temperature: float
    output_schema: dict[str, Any] | None
    stream: bool = False  # the provider's streaming API, where it has one: deltas as they come
    thinking_budget: int | None = None  # extended reasoning with this many tokens; None: off
    prompt_caching: bool = True  # cache points where the provider takes them (Bedrock)


@dataclass(frozen=True)
class ModelReply:
    content: tuple[message_pb2.ContentBlock, ...]
    stop_reason: str  # end_turn | tool_use | max_tokens | ... (Converse's words)
    usage: TokenUsage
    raw_response: str = ""  # JSON as received, for the inference job record


@dataclass(frozen=True)
class ReplyDelta:
    """A piece of a streamed reply: `text` appended to its content block `block_index`."""

    block_index: int
    text: str
    kind: Literal["text", "reasoning"] = "text"


DeltaSink = Callable[[ReplyDelta], None]


class ProviderError(Exception):
    """A failed call, already classified as a catalogued incident code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class PreparedCall:
    """A request in the provider's wire shape; `request_json` is what the job record keeps."""

    data_plane_id: str
    provider_model_id: str
    body: dict[str, Any]
    request_json: str = field(default="")
    stream: bool = False


class Provider(Protocol):
    name: str  # bedrock | cortex | openai | echo: the inference job's `provider`

    def prepare(self, data_plane_id: str, request: ModelRequest) -> PreparedCall: ...

    async def converse(self, call: PreparedCall, deltas: DeltaSink | None = None) -> ModelReply:
        """The whole reply. A streamed call (`call.stream`, on a provider that streams) also
        hands each piece to `deltas` as it arrives; the reply is the same either way."""
        ...

    async def close(self) -> None: ...
