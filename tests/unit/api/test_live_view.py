"""event_log.partial_turn: the turn in flight as live.messages shows it, from its deltas (pure)."""

from __future__ import annotations

from agents.v1 import message_pb2, run_pb2

from services.api import event_log


def delta(
    text: str, block: int = 0, attempt: int = 1, kind: str = "message.delta"
) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type=kind, turn_index=2, block_index=block, text=text, attempt=attempt)


def restarted(attempt: int) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type="turn.restarted", turn_index=2, attempt=attempt)


def shown(turn: run_pb2.LiveTurn | None) -> list[tuple[str, str]]:
    assert turn is not None
    out = []
    for block in turn.content_blocks:
        kind = block.WhichOneof("block")
        out.append((kind, block.reasoning.text if kind == "reasoning" else block.text.text))
    return out


def test_the_blocks_so_far_in_block_order() -> None:
    turn = event_log.partial_turn(
        2,
        [
            delta("Let me ", 0, kind="reasoning.delta"),
            delta("think.", 0, kind="reasoning.delta"),
            delta("The answer", 1),
            delta(" is 4", 1),
        ],
    )
    assert turn is not None and turn.partial and turn.turn_index == 2
    assert turn.role == message_pb2.ROLE_ASSISTANT
    assert shown(turn) == [("reasoning", "Let me think."), ("text", "The answer is 4")]


def test_a_restarted_turn_shows_only_its_latest_attempt() -> None:
    lost = [delta("Hello wo"), restarted(2)]
    assert event_log.partial_turn(2, lost) is None  # the new attempt wrote nothing yet
    again = [*lost, delta("Hi", attempt=2), delta(" there", attempt=2)]
    assert shown(event_log.partial_turn(2, again)) == [("text", "Hi there")]


def test_nothing_written_yet() -> None:
    assert event_log.partial_turn(0, []) is None
