"""The agent loop as a pure state machine: `step(state, event) -> (state, actions)`.

No I/O, no clock, no ids: the executor carries out the actions and feeds back what happened.
Each step returns Publish actions (new turns, in order) followed by at most one effect
(CallModel, CallTools) or one terminal action (Pause, Finish, Fail).

Committed-history invariant: whenever the loop ends other than by Pause, every tool_use of the
run's last assistant turn has a tool_result (calls that never ran get an is_error result saying
why), and so has every call the run's input approved. On Pause, the MCP calls of the turn that
need no approval are answered; the caller's calls and the calls waiting for approval stay open,
and the resuming run's input answers them (outputs, and approvals: a denial is answered there, an
approved call is executed by that run before its first model call, its result carrying the
approval record).

At-most-once tool calls: a call an earlier holder of the run may have made (an MCP call of a
published assistant turn, or an approved call it announced) is never made again; it is answered
with an error saying it may or may not have run.
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
    needs_approval: frozenset[str] = frozenset()  # MCP wire names held for a person's approval


@dataclass(frozen=True)
class Approved:
    """A call the run's input approved: executed before the first model call."""

    use: ToolUse
    approval: message_pb2.ApprovalRecord


@dataclass(frozen=True)
class PendingCall:
    """A call a paused run waits on: the caller's ("caller") or a person's approval."""

    use: ToolUse
    kind: str  # caller | approval


@dataclass(frozen=True)
class LoopState:
    config: LoopConfig
    turns: tuple[Turn, ...] = ()  # the run's own turns after its input
    iterations: int = 0  # model calls made (each one an inference job)
    usage: TokenUsage = TokenUsage()
    in_flight: tuple[ToolUse, ...] = ()  # MCP calls being executed
    waiting: tuple[PendingCall, ...] = ()  # calls to pause on once in_flight returns
    done: bool = False
    approved: tuple[Approved, ...] = ()  # from the run's input
    started: frozenset[str] = frozenset()  # calls an earlier holder announced (may have run)


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
    pending: tuple[PendingCall, ...]


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
    """A fresh run executes the calls its input approved, then calls the model. A resumed run
    continues after its last published turn."""
    approved = _unanswered_approved(out.state)
    if approved:
        lost = tuple(a for a in approved if a.use.tool_use_id in out.state.started)
        fresh = tuple(a.use for a in approved if a.use.tool_use_id not in out.state.started)
        if lost:
            out.publish(_turn_of([_approved_result(a, error_result(a.use, LOST)) for a in lost]))
        if fresh:
            out.state = replace(out.state, in_flight=fresh)
            out.actions.append(CallTools(fresh))
        else:
            _call_model(out)
        return
    open_calls = _unanswered(out.state)
    last = out.state.turns[-1] if out.state.turns else None
    if not open_calls:
        if last is None or last.role != message_pb2.ROLE_ASSISTANT:
            _call_model(out)
        else:  # an assistant answer that was never committed: read it again
            _final_answer(out, last, truncated=False)
        return
    cfg = out.state.config
    held = tuple(u for u in open_calls if u.name in cfg.needs_approval)
    mcp = tuple(u for u in open_calls if u.name in cfg.mcp_tools and u not in held)
    caller = tuple(u for u in open_calls if u.name not in cfg.mcp_tools)
    if mcp:
        # The lost runner may or may not have executed them: report rather than repeat.
        out.publish(_results_turn(mcp, LOST))
    if caller and not all(u.name in cfg.caller_tools for u in caller):
        _fail_unknown(out, caller)
    elif caller or held:  # calls waiting for approval were never made: ask again
        _pause(out, _pending(cfg, tuple(u for u in open_calls if u in held or u in caller)))
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
    now = tuple(u for u in uses if u.name in cfg.mcp_tools and u.name not in cfg.needs_approval)
    pending = _pending(cfg, tuple(u for u in uses if u not in now))
    if now:
        out.state = replace(out.state, in_flight=now, waiting=pending)
        out.actions.append(CallTools(now))
    else:
        _pause(out, pending)


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
    approvals = {a.use.tool_use_id: a for a in s.approved}
    ordered = []
    for u in s.in_flight:
        found = by_id.get(u.tool_use_id) or error_result(u, "the tool router returned no result")
        approved = approvals.get(u.tool_use_id)
        ordered.append(found if approved is None else _approved_result(approved, found))
    out.state = replace(s, in_flight=())
    out.publish(_turn_of(ordered))
    waiting = out.state.waiting
    if waiting:
        out.state = replace(out.state, waiting=())
        _pause(out, waiting)
    else:
        _call_model(out)


def _pause(out: _Out, pending: tuple[PendingCall, ...]) -> None:
    out.state = replace(out.state, done=True)
    out.actions.append(Pause(pending))


def _pending(cfg: LoopConfig, uses: tuple[ToolUse, ...]) -> tuple[PendingCall, ...]:
    return tuple(
        PendingCall(u, "approval" if u.name in cfg.needs_approval else "caller") for u in uses
    )


def _fail_unknown(out: _Out, unknown: tuple[ToolUse, ...]) -> None:
    names = ", ".join(repr(u.name) for u in unknown)
    _fail(
        out,
        UNKNOWN_TOOL,
        f"the model called {names}, which is neither an MCP tool of the run "
        "({alias}-{tool}) nor a caller-declared tool",
    )


def _fail(out: _Out, code: str, message: str) -> None:
    """End failed, answering every open tool call first: the input's approved calls not answered
    yet, and those of the last assistant turn."""
    why = f"not executed: the run failed ({code}: {message})"
    approved = _unanswered_approved(out.state)
    if approved:
        out.publish(_turn_of([_approved_result(a, error_result(a.use, why)) for a in approved]))
    open_calls = _unanswered(out.state)
    if open_calls:
        out.publish(_results_turn(open_calls, why))
    out.state = replace(out.state, done=True, in_flight=(), waiting=())
    out.actions.append(Fail(code, message))


# --- helpers ----------------------------------------------------------------------------------


LOST = "the runner executing this call was lost; it may or may not have run"


def _answered(state: LoopState) -> set[str]:
    return {
        b.tool_result.tool_use_id
        for turn in state.turns
        for b in turn.content_blocks
        if b.WhichOneof("block") == "tool_result"
    }


def _unanswered_approved(state: LoopState) -> tuple[Approved, ...]:
    """The input's approved calls no turn of the run answers yet."""
    if not state.approved:
        return ()
    answered = _answered(state)
    return tuple(a for a in state.approved if a.use.tool_use_id not in answered)


def _approved_result(approved: Approved, result: ToolResult) -> ToolResult:
    """The result of an approved call, carrying its approval record."""
    kept = ToolResult()
    kept.CopyFrom(result)
    kept.approval.CopyFrom(approved.approval)
    return kept


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
