"""The agent loop as a pure state machine: `step(state, event) -> (state, actions)`.

No I/O, no clock, no ids: the executor carries out the actions and feeds back what happened.
Each step returns Publish actions (new turns, in order) followed by at most one effect
(CallModel, CallTools) or one terminal action (Pause, Finish, Fail).

Committed-history invariant: whenever the loop ends other than by Pause, every tool_use of the
run's last assistant turn has a tool_result (calls that never ran get an is_error result saying
why). On Pause, the MCP calls of the turn are answered and only the caller's calls stay open;
the resuming run's input supplies those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agents.v1 import message_pb2

from services.common import incidents
from services.runner.output import Decoded
from services.runner.providers.base import ModelReply, TokenUsage

Block = message_pb2.ContentBlock
Turn = message_pb2.Message
ToolUse = message_pb2.ToolUseBlock
ToolResult = message_pb2.ToolResultBlock

MAX_ITERATIONS = incidents.AGENT_LOOP_MAX_ITERATIONS_EXCEEDED
SCHEMA_DECODE = incidents.AGENT_LOOP_SCHEMA_DECODE_FAILED
UNKNOWN_TOOL = incidents.AGENT_LOOP_UNKNOWN_TOOL_ALIAS


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopConfig:
    max_iterations: int
    mcp_tools: frozenset[str]
    caller_tools: frozenset[str]
    decode: Callable[[str, bool], Decoded]  # (reply text, truncated) -> Decoded; pure


@dataclass(frozen=True)
class LoopState:
    config: LoopConfig
    turns: tuple[Turn, ...] = ()  # the run's own turns after its input
    iterations: int = 0  # model calls made (each one an inference job)
    usage: TokenUsage = TokenUsage()
    in_flight: tuple[ToolUse, ...] = ()  # MCP calls being executed
    waiting: tuple[ToolUse, ...] = ()  # caller calls to pause on once in_flight returns
    done: bool = False


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin (or resume, when the state already holds turns)."""


@dataclass(frozen=True)
class ModelReplied:
    reply: ModelReply


@dataclass(frozen=True)
class ModelFailed:
    code: str
    message: str


@dataclass(frozen=True)
class ToolsReturned:
    results: tuple[ToolResult, ...]  # one per in-flight call, any order


@dataclass(frozen=True)
class Stopped:
    """Cancelled, or given up (runner lost): stop where we are."""

    code: str
    message: str


Event = Start | ModelReplied | ModelFailed | ToolsReturned | Stopped


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    turn: Turn
    turn_index: int


@dataclass(frozen=True)
class CallModel:
    iteration: int  # 1-based
    first: bool  # the run's tool_choice applies only to the first iteration


@dataclass(frozen=True)
class CallTools:
    calls: tuple[ToolUse, ...]


@dataclass(frozen=True)
class Pause:
    pending: tuple[ToolUse, ...]


@dataclass(frozen=True)
class Finish:
    text: str | None = None
    structured: object = None


@dataclass(frozen=True)
class Fail:
    code: str
    message: str


Action = Publish | CallModel | CallTools | Pause | Finish | Fail


@dataclass
class _Out:
    state: LoopState
    actions: list[Action] = field(default_factory=list)

    def publish(self, turn: Turn) -> None:
        index = len(self.state.turns)
        self.state = replace(self.state, turns=(*self.state.turns, turn))
        self.actions.append(Publish(turn, index))


# --- transitions ------------------------------------------------------------------------------


def step(state: LoopState, event: Event) -> tuple[LoopState, list[Action]]:
    if state.done:
        raise ValueError(f"the loop already ended; got {type(event).__name__}")
    out = _Out(state)
    if isinstance(event, Start):
        _start(out)
    elif isinstance(event, ModelReplied):
        _model_replied(out, event.reply)
    elif isinstance(event, ModelFailed | Stopped):
        _fail(out, event.code, event.message)
    elif isinstance(event, ToolsReturned):
        _tools_returned(out, event.results)
    else:  # pragma: no cover - exhaustive
        raise TypeError(event)
    return out.state, out.actions


def _start(out: _Out) -> None:
    """A fresh run calls the model. A resumed run continues after its last published turn."""
    open_calls = _unanswered(out.state)
    last = out.state.turns[-1] if out.state.turns else None
    if not open_calls:
        if last is None or last.role != message_pb2.ROLE_ASSISTANT:
            _call_model(out)
        else:  # an assistant answer that was never committed: read it again
            _final_answer(out, last, truncated=False)
        return
    cfg = out.state.config
    mcp = tuple(u for u in open_calls if u.name in cfg.mcp_tools)
    caller = tuple(u for u in open_calls if u.name not in cfg.mcp_tools)
    if mcp:
        # The lost runner may or may not have executed them: report rather than repeat.
        out.publish(
            _results_turn(
                mcp, "the runner executing this call was lost; it may or may not have run"
            )
        )
    if caller and all(u.name in cfg.caller_tools for u in caller):
        _pause(out, caller)
    elif caller:
        _fail_unknown(out, caller)
    else:
        _call_model(out)


def _call_model(out: _Out) -> None:
    s = out.state
    if s.iterations >= s.config.max_iterations:
        _fail(out, MAX_ITERATIONS, f"max iterations exceeded after {s.iterations} iterations")
        return
    out.state = replace(s, iterations=s.iterations + 1)
    out.actions.append(CallModel(s.iterations + 1, first=s.iterations == 0))


def _model_replied(out: _Out, reply: ModelReply) -> None:
    out.state = replace(out.state, usage=out.state.usage + reply.usage)
    turn = Turn(role=message_pb2.ROLE_ASSISTANT, content_blocks=list(reply.content))
    if reply.content:
        out.publish(turn)
    uses = tuple(b.tool_use for b in reply.content if b.WhichOneof("block") == "tool_use")
    if not uses:
        _final_answer(out, turn, truncated=reply.stop_reason == "max_tokens")
        return
    cfg = out.state.config
    unknown = tuple(
        u for u in uses if u.name not in cfg.mcp_tools and u.name not in cfg.caller_tools
    )
    if unknown:
        _fail_unknown(out, unknown)
        return
    mcp = tuple(u for u in uses if u.name in cfg.mcp_tools)
    caller = tuple(u for u in uses if u.name in cfg.caller_tools)
    if mcp:
        out.state = replace(out.state, in_flight=mcp, waiting=caller)
        out.actions.append(CallTools(mcp))
    else:
        _pause(out, caller)


def _final_answer(out: _Out, turn: Turn, truncated: bool) -> None:
    text = "".join(b.text.text for b in turn.content_blocks if b.WhichOneof("block") == "text")
    decoded = out.state.config.decode(text, truncated)
    if not decoded.ok:
        _fail(out, SCHEMA_DECODE, decoded.error)
        return
    out.state = replace(out.state, done=True)
    out.actions.append(Finish(decoded.text, decoded.structured))


def _tools_returned(out: _Out, results: tuple[ToolResult, ...]) -> None:
    s = out.state
    if not s.in_flight:
        raise ValueError("tool results arrived but no tool call is in flight")
    by_id = {r.tool_use_id: r for r in results}
    ordered = [
        by_id.get(u.tool_use_id) or error_result(u, "the tool router returned no result")
        for u in s.in_flight
    ]
    out.state = replace(s, in_flight=())
    out.publish(_turn_of(ordered))
    waiting = out.state.waiting
    if waiting:
        out.state = replace(out.state, waiting=())
        _pause(out, waiting)
    else:
        _call_model(out)


def _pause(out: _Out, pending: tuple[ToolUse, ...]) -> None:
    out.state = replace(out.state, done=True)
    out.actions.append(Pause(pending))


def _fail_unknown(out: _Out, unknown: tuple[ToolUse, ...]) -> None:
    names = ", ".join(repr(u.name) for u in unknown)
    _fail(
        out,
        UNKNOWN_TOOL,
        f"the model called {names}, which is neither an MCP tool of the run "
        "({alias}-{tool}) nor a caller-declared tool",
    )


def _fail(out: _Out, code: str, message: str) -> None:
    """End failed, answering every open tool call of the last assistant turn first."""
    open_calls = _unanswered(out.state)
    if open_calls:
        out.publish(_results_turn(open_calls, f"not executed: the run failed ({code}: {message})"))
    out.state = replace(out.state, done=True, in_flight=(), waiting=())
    out.actions.append(Fail(code, message))


# --- helpers ----------------------------------------------------------------------------------


def _unanswered(state: LoopState) -> tuple[ToolUse, ...]:
    """tool_uses of the last assistant turn that no later tool turn answers."""
    last_assistant = None
    answered: set[str] = set()
    for turn in state.turns:
        if turn.role == message_pb2.ROLE_ASSISTANT:
            last_assistant, answered = turn, set()
        else:
            answered |= {
                b.tool_result.tool_use_id
                for b in turn.content_blocks
                if b.WhichOneof("block") == "tool_result"
            }
    if last_assistant is None:
        return ()
    return tuple(
        b.tool_use
        for b in last_assistant.content_blocks
        if b.WhichOneof("block") == "tool_use" and b.tool_use.tool_use_id not in answered
    )


def error_result(use: ToolUse, why: str) -> ToolResult:
    return ToolResult(
        tool_use_id=use.tool_use_id,
        is_error=True,
        content=[Block(text=message_pb2.TextBlock(text=why))],
    )


def _turn_of(results: list[ToolResult]) -> Turn:
    return Turn(role=message_pb2.ROLE_TOOL, content_blocks=[Block(tool_result=r) for r in results])


def _results_turn(uses: tuple[ToolUse, ...], why: str) -> Turn:
    return _turn_of([error_result(u, why) for u in uses])
