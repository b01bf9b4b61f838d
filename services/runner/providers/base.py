"""The provider protocol and provider-neutral types. Turns are the contract's own protos
(`agents.v1.Message` / `ContentBlock`); a provider converts them to its wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.v1 import message_pb2


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    completion: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.prompt + other.prompt, self.completion + other.completion)

    @property
    def total(self) -> int:
        return self.prompt + self.completion


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


@dataclass(frozen=True)
class ModelReply:
    content: tuple[message_pb2.ContentBlock, ...]
    stop_reason: str  # end_turn | tool_use | max_tokens | ... (the provider's words)
    usage: TokenUsage
    raw_response: str = ""  # JSON as received, for the inference job record


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


class Provider(Protocol):
    name: str

    def prepare(self, data_plane_id: str, request: ModelRequest) -> PreparedCall: ...

    async def converse(self, call: PreparedCall) -> ModelReply: ...

    async def close(self) -> None: ...
