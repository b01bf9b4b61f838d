"""Every transition of the pure agent loop."""

from __future__ import annotations

from typing import Any

import pytest
from agents.v1 import message_pb2

from services.runner import loop
from services.runner.output import OutputDecoder
from services.runner.providers.base import ModelReply, TokenUsage
from tests.blocks import assistant, text, tool_result, tool_use

MCP = frozenset({"docs-search", "docs-read"})
CALLER = frozenset({"confirm_booking"})


MCP_HELD = frozenset({"docs-delete"})  # needs approval


def config(max_iterations: int = 3, schema: dict[str, Any] | None = None) -> loop.LoopConfig:
    return loop.LoopConfig(
        max_iterations, MCP | MCP_HELD, CALLER, OutputDecoder(schema).decode, MCP_HELD
    )


def use(tool_use_id: str, name: str) -> message_pb2.ContentBlock:
    return tool_use(tool_use_id, name, q=tool_use_id)


def reply(*blocks: message_pb2.ContentBlock, stop: str = "end_turn") -> loop.ModelReplied:
    return loop.ModelReplied(ModelReply(tuple(blocks), stop, TokenUsage(10, 2)))


def result(tool_use_id: str, is_error: bool = False) -> message_pb2.ToolResultBlock:
    return tool_result(tool_use_id, f"result {tool_use_id}", is_error=is_error).tool_result


def kinds(actions: list[loop.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def results_of(turn: message_pb2.Message) -> list[tuple[str, bool]]:
    return [(b.tool_result.tool_use_id, b.tool_result.is_error) for b in turn.content_blocks]


def test_start_calls_the_model_with_tool_choice_on_the_first_iteration_only() -> None:
    state, actions = loop.step(loop.LoopState(config()), loop.Start())
    assert actions == [loop.CallModel(1, first=True)] and state.iterations == 1
    state, actions = loop.step(state, reply(use("m1", "docs-search")))
    state, actions = loop.step(state, loop.ToolsReturned((result("m1"),)))
    assert actions[-1] == loop.CallModel(2, first=False)


def test_text_reply_finishes_in_text_mode() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, reply(text('{"text": "4"}')))
    assert kinds(actions) == ["Publish", "Finish"]
    assert actions[-1] == loop.Finish(text="4")
    assert state.done and state.usage == TokenUsage(10, 2) and len(state.turns) == 1


def test_plain_prose_is_accepted_in_text_mode() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    _, actions = loop.step(state, reply(text("just 4")))
    assert actions[-1] == loop.Finish(text="just 4")


def test_structured_reply_is_validated() -> None:
    schema = {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
        "additionalProperties": False,
    }
    state, _ = loop.step(loop.LoopState(config(schema=schema)), loop.Start())
    _, actions = loop.step(state, reply(text('{"n": 4}')))
    assert actions[-1] == loop.Finish(structured={"n": 4})
    state, _ = loop.step(loop.LoopState(config(schema=schema)), loop.Start())
    _, actions = loop.step(state, reply(text('{"n": "four"}')))
    assert isinstance(actions[-1], loop.Fail) and actions[-1].code == loop.SCHEMA_DECODE
    state, _ = loop.step(loop.LoopState(config(schema=schema)), loop.Start())
    _, actions = loop.step(state, reply(text("four")))
    assert actions[-1].code == loop.SCHEMA_DECODE and "not JSON" in actions[-1].message


def test_truncated_reply_fails_with_schema_decode() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    _, actions = loop.step(state, reply(text('{"text": "Once'), stop="max_tokens"))
    assert kinds(actions) == ["Publish", "Fail"] and actions[-1].code == loop.SCHEMA_DECODE


def test_mcp_calls_are_executed_then_fed_back() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, reply(use("m1", "docs-search"), use("m2", "docs-read")))
    assert kinds(actions) == ["Publish", "CallTools"]
    assert [u.tool_use_id for u in actions[1].calls] == ["m1", "m2"]
    state, actions = loop.step(state, loop.ToolsReturned((result("m2"), result("m1"))))
    assert kinds(actions) == ["Publish", "CallModel"]
    assert results_of(actions[0].turn) == [("m1", False), ("m2", False)]  # in call order
    assert actions[0].turn_index == 1


def test_missing_tool_result_becomes_an_error_result() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, _ = loop.step(state, reply(use("m1", "docs-search"), use("m2", "docs-read")))
    _, actions = loop.step(state, loop.ToolsReturned((result("m1"),)))
    assert results_of(actions[0].turn) == [("m1", False), ("m2", True)]


def test_caller_calls_pause_with_every_pending_call() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(
        state, reply(text("asking"), use("c1", "confirm_booking"), use("c2", "confirm_booking"))
    )
    assert kinds(actions) == ["Publish", "Pause"]
    assert [p.use.tool_use_id for p in actions[1].pending] == ["c1", "c2"] and state.done
    assert {p.kind for p in actions[1].pending} == {"caller"}


def test_mixed_turn_runs_mcp_calls_then_pauses_for_caller_calls() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, reply(use("m1", "docs-search"), use("c1", "confirm_booking")))
    assert kinds(actions) == ["Publish", "CallTools"]
    state, actions = loop.step(state, loop.ToolsReturned((result("m1"),)))
    assert kinds(actions) == ["Publish", "Pause"]
    assert results_of(actions[0].turn) == [("m1", False)]
    assert [p.use.tool_use_id for p in actions[1].pending] == ["c1"]


def test_unknown_tool_fails_and_answers_every_call_of_the_turn() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, reply(use("x", "ghost-tool"), use("m1", "docs-search")))
    assert kinds(actions) == ["Publish", "Publish", "Fail"]
    assert actions[-1].code == loop.UNKNOWN_TOOL and "'ghost-tool'" in actions[-1].message
    assert results_of(actions[1].turn) == [("x", True), ("m1", True)]
    assert state.done


def test_max_iterations_exceeded_with_the_documented_message() -> None:
    state, _ = loop.step(loop.LoopState(config(max_iterations=2)), loop.Start())
    state, _ = loop.step(state, reply(use("m1", "docs-search")))
    state, actions = loop.step(state, loop.ToolsReturned((result("m1"),)))
    assert actions[-1] == loop.CallModel(2, first=False)
    state, _ = loop.step(state, reply(use("m2", "docs-search")))
    state, actions = loop.step(state, loop.ToolsReturned((result("m2"),)))
    assert kinds(actions) == ["Publish", "Fail"]
    assert actions[-1] == loop.Fail(
        "AgentLoopMaxIterationsExceeded", "max iterations exceeded after 2 iterations"
    )
    assert state.iterations == 2 and state.usage == TokenUsage(20, 4)


def test_model_failure_fails_the_run() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, loop.ModelFailed("ModelThrottled", "slow down"))
    assert actions == [loop.Fail("ModelThrottled", "slow down")] and state.iterations == 1


def test_cancel_during_a_model_call_keeps_the_work_so_far() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, loop.Stopped("AgentLoopCancelled", "cancelled"))
    assert actions == [loop.Fail("AgentLoopCancelled", "cancelled")] and state.turns == ()


def test_cancel_during_tool_calls_answers_the_unfinished_calls() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, _ = loop.step(state, reply(use("m1", "docs-search"), use("c1", "confirm_booking")))
    state, actions = loop.step(state, loop.Stopped("AgentLoopCancelled", "cancelled"))
    assert kinds(actions) == ["Publish", "Fail"]
    assert results_of(actions[0].turn) == [("m1", True), ("c1", True)]
    assert (
        "AgentLoopCancelled" in actions[0].turn.content_blocks[0].tool_result.content[0].text.text
    )
    assert not state.in_flight and not state.waiting


def test_no_step_after_the_end() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, _ = loop.step(state, reply(text("done")))
    with pytest.raises(ValueError):
        loop.step(state, loop.Start())
    with pytest.raises(ValueError):
        loop.step(loop.LoopState(config()), loop.ToolsReturned(()))


def tool_turn(*ids: str) -> message_pb2.Message:
    return message_pb2.Message(
        role=message_pb2.ROLE_TOOL,
        content_blocks=[message_pb2.ContentBlock(tool_result=result(i)) for i in ids],
    )


def test_resume_after_tool_results_calls_the_model() -> None:
    resumed = loop.LoopState(
        config(), turns=(assistant(use("m1", "docs-search")), tool_turn("m1")), iterations=1
    )
    state, actions = loop.step(resumed, loop.Start())
    assert actions == [loop.CallModel(2, first=False)]


def test_resume_with_unfinished_mcp_calls_reports_them_instead_of_repeating() -> None:
    resumed = loop.LoopState(config(), turns=(assistant(use("m1", "docs-search")),), iterations=1)
    state, actions = loop.step(resumed, loop.Start())
    assert kinds(actions) == ["Publish", "CallModel"]
    assert results_of(actions[0].turn) == [("m1", True)] and actions[0].turn_index == 1


def test_resume_with_open_caller_calls_pauses() -> None:
    resumed = loop.LoopState(
        config(),
        turns=(assistant(use("m1", "docs-search"), use("c1", "confirm_booking")), tool_turn("m1")),
        iterations=1,
    )
    _, actions = loop.step(resumed, loop.Start())
    assert kinds(actions) == ["Pause"] and actions[0].pending[0].use.tool_use_id == "c1"


def test_resume_after_an_uncommitted_final_answer_finishes() -> None:
    resumed = loop.LoopState(config(), turns=(assistant(text("4")),), iterations=1)
    _, actions = loop.step(resumed, loop.Start())
    assert actions == [loop.Finish(text="4")]


def test_resume_with_the_budget_spent_fails() -> None:
    resumed = loop.LoopState(
        config(max_iterations=1),
        turns=(assistant(use("m1", "docs-search")), tool_turn("m1")),
        iterations=1,
    )
    _, actions = loop.step(resumed, loop.Start())
    assert actions == [
        loop.Fail("AgentLoopMaxIterationsExceeded", "max iterations exceeded after 1 iterations")
    ]


def test_runner_lost_closes_open_calls() -> None:
    resumed = loop.LoopState(config(), turns=(assistant(use("m1", "docs-search")),), iterations=1)
    state, actions = loop.step(resumed, loop.Stopped("AgentLoopRunnerLost", "gave up"))
    assert kinds(actions) == ["Publish", "Fail"] and results_of(actions[0].turn) == [("m1", True)]


# --- approval -----------------------------------------------------------------------------------

RECORD = message_pb2.ApprovalRecord(
    decision=message_pb2.APPROVAL_DECISION_APPROVE, company_id=1, user_id=7
)


def approved(*ids: str) -> tuple[loop.Approved, ...]:
    return tuple(loop.Approved(use(i, "docs-delete").tool_use, RECORD) for i in ids)


def test_a_call_that_needs_approval_pauses_the_run_without_being_made() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(state, reply(use("a1", "docs-delete")))
    assert kinds(actions) == ["Publish", "Pause"]
    assert [(p.use.tool_use_id, p.kind) for p in actions[1].pending] == [("a1", "approval")]


def test_calls_without_approval_run_first_then_the_run_pauses_for_the_others() -> None:
    state, _ = loop.step(loop.LoopState(config()), loop.Start())
    state, actions = loop.step(
        state,
        reply(use("a1", "docs-delete"), use("m1", "docs-search"), use("c1", "confirm_booking")),
    )
    assert kinds(actions) == ["Publish", "CallTools"]
    assert [u.tool_use_id for u in actions[1].calls] == ["m1"]
    state, actions = loop.step(state, loop.ToolsReturned((result("m1"),)))
    assert kinds(actions) == ["Publish", "Pause"]
    assert [(p.use.tool_use_id, p.kind) for p in actions[1].pending] == [
        ("a1", "approval"),
        ("c1", "caller"),
    ]


def test_approved_calls_run_before_the_first_model_call_with_their_record() -> None:
    state, actions = loop.step(
        loop.LoopState(config(), approved=approved("a1", "a2")), loop.Start()
    )
    assert kinds(actions) == ["CallTools"]
    assert [u.tool_use_id for u in actions[0].calls] == ["a1", "a2"]
    state, actions = loop.step(state, loop.ToolsReturned((result("a2"), result("a1"))))
    assert kinds(actions) == ["Publish", "CallModel"] and actions[1] == loop.CallModel(1, True)
    results = [b.tool_result for b in actions[0].turn.content_blocks]
    assert [r.tool_use_id for r in results] == ["a1", "a2"]
    assert all(r.approval == RECORD and not r.is_error for r in results)


def test_approved_calls_an_earlier_holder_announced_are_not_made_again() -> None:
    resumed = loop.LoopState(config(), approved=approved("a1", "a2"), started=frozenset({"a1"}))
    state, actions = loop.step(resumed, loop.Start())
    assert kinds(actions) == ["Publish", "CallTools"]
    assert results_of(actions[0].turn) == [("a1", True)]
    assert actions[0].turn.content_blocks[0].tool_result.approval == RECORD
    assert (
        "may or may not have run"
        in actions[0].turn.content_blocks[0].tool_result.content[0].text.text
    )
    assert [u.tool_use_id for u in actions[1].calls] == ["a2"]
    _, actions = loop.step(state, loop.ToolsReturned((result("a2"),)))
    assert kinds(actions) == ["Publish", "CallModel"]


def test_answered_approved_calls_are_not_looked_at_again() -> None:
    resumed = loop.LoopState(
        config(), turns=(tool_turn("a1"),), approved=approved("a1"), started=frozenset({"a1"})
    )
    _, actions = loop.step(resumed, loop.Start())
    assert actions == [loop.CallModel(1, first=True)]


def test_a_run_that_fails_before_its_approved_calls_answers_them() -> None:
    state = loop.LoopState(config(), approved=approved("a1"))
    _, actions = loop.step(state, loop.Stopped("AgentLoopCancelled", "cancelled"))
    assert kinds(actions) == ["Publish", "Fail"]
    (block,) = actions[0].turn.content_blocks
    assert block.tool_result.is_error and block.tool_result.approval == RECORD


def test_resume_asks_again_for_approval_of_calls_never_made() -> None:
    resumed = loop.LoopState(
        config(),
        turns=(assistant(use("a1", "docs-delete"), use("m1", "docs-search")),),
        iterations=1,
    )
    _, actions = loop.step(resumed, loop.Start())
    assert kinds(actions) == ["Publish", "Pause"]
    assert results_of(actions[0].turn) == [("m1", True)]  # it may have run: reported
    assert [(p.use.tool_use_id, p.kind) for p in actions[1].pending] == [("a1", "approval")]
