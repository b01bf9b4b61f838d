"""A run's events, as GET /agents/runs/{id}/events streams them, typed by their `type`.

A type this client does not know (or a known one in a shape it does not expect) parses as the
base `RunEvent`, with every field kept in `model_extra`: a newer server never breaks the stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError

from parley_client.models import (
    TERMINAL_STATUSES,
    ContentBlock,
    LiveTurn,
    ParleyModel,
    Run,
    Usage,
)

TERMINAL_TYPES = frozenset({"run.completed", "run.requires_action", "run.failed"})


class RunEvent(ParleyModel):
    seq: int
    type: str
    created_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """The run's last event: the server ends the stream after it."""
        if self.type in TERMINAL_TYPES:
            return True
        run = getattr(self, "run", None)
        return isinstance(run, Run) and run.status in TERMINAL_STATUSES


class RunStatusEvent(RunEvent):
    """`run.status`: pending, then running."""

    status: str


class TurnEvent(RunEvent):
    """`turn`: a turn the run produced (a tool call before it runs, its result after)."""

    turn: LiveTurn


class UsageEvent(RunEvent):
    """`usage`: token totals so far."""

    usage: Usage


class RunTerminalEvent(RunEvent):
    """`run.completed` / `run.requires_action` / `run.failed`: the run as GET shows it."""

    run: Run
    status: str | None = None


class RunCompletedEvent(RunTerminalEvent):
    pass


class RunRequiresActionEvent(RunTerminalEvent):
    pass


class RunFailedEvent(RunTerminalEvent):
    pass


class MessageDeltaEvent(RunEvent):
    """`message.delta`: text as the model produces it; the deltas of a turn's latest `attempt`
    concatenate to its text."""

    turn_index: int
    block_index: int = 0
    text: str = ""
    attempt: int = 1


class ReasoningDeltaEvent(MessageDeltaEvent):
    """`reasoning.delta`: the model's reasoning text as it is produced."""


class TurnRestartedEvent(RunEvent):
    """`turn.restarted`: the runner writing turn `turn_index` was lost; the turn is written
    again: drop that turn's deltas from attempts before `attempt`."""

    turn_index: int
    attempt: int


class ToolCallEvent(RunEvent):
    """`tool.call`: a tool call the model made (`kind`: "mcp" or "caller")."""

    tool_use_id: str
    name: str
    kind: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultEvent(RunEvent):
    """`tool.result`: the result of a tool call."""

    tool_use_id: str
    is_error: bool = False
    content: list[ContentBlock] = Field(default_factory=list)


EVENT_TYPES: dict[str, type[RunEvent]] = {
    "run.status": RunStatusEvent,
    "turn": TurnEvent,
    "usage": UsageEvent,
    "run.completed": RunCompletedEvent,
    "run.requires_action": RunRequiresActionEvent,
    "run.failed": RunFailedEvent,
    "message.delta": MessageDeltaEvent,
    "reasoning.delta": ReasoningDeltaEvent,
    "turn.restarted": TurnRestartedEvent,
    "tool.call": ToolCallEvent,
    "tool.result": ToolResultEvent,
}


def parse_event(data: dict[str, Any], event_name: str | None = None) -> RunEvent:
    """An event from its JSON (`type` inside, else the SSE `event:` name)."""
    kind = data.get("type") or event_name or ""
    typed = EVENT_TYPES.get(kind)
    if typed is not None:
        try:
            return typed.model_validate({**data, "type": kind})
        except ValidationError:
            pass  # a shape this client does not expect: keep it untyped rather than fail
    return RunEvent.model_validate({**data, "type": kind})
