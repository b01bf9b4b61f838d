"""A run's events on their way to the store, and the rule that coalesces its deltas.

The rule, in one place: text and reasoning deltas wait in the run's outbox, merged per content
block, until the oldest has waited FLUSH_AFTER_S or FLUSH_CHARS characters are waiting; then all
that waits goes to the store in one AppendRunEvents (one event per block and kind). At most one
such write per run is in flight; deltas that arrive meanwhile go with the next. When the model
call ends, what is left goes with the runner's next write of its own (the turn the deltas belong
to, or the commit), before that turn's event: a turn's deltas concatenate to its text, and a
reply that arrives in one piece costs no write of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from agents.v1 import message_pb2, run_pb2
from google.protobuf import struct_pb2

FLUSH_AFTER_S: Final = 0.1  # the longest a delta waits for company
FLUSH_CHARS: Final = 2048  # ... or until this much text waits

MESSAGE_DELTA: Final = "message.delta"
REASONING_DELTA: Final = "reasoning.delta"
TURN_RESTARTED: Final = "turn.restarted"
TURN: Final = "turn"
TOOL_CALL: Final = "tool.call"
TOOL_RESULT: Final = "tool.result"
_DELTA_TYPES = {"text": MESSAGE_DELTA, "reasoning": REASONING_DELTA}

Write = Callable[[list[run_pb2.RunEvent]], Awaitable[None]]


class Outbox:
    """The events of one run due with its next store write, and the coalesced flushes of its
    deltas (written by `write`; a failed flush is handed to `failed` and stops the flushing)."""

    def __init__(
        self,
        write: Write,
        failed: Callable[[BaseException], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._failed = failed
        self._clock = clock
        self._pending: list[run_pb2.RunEvent] = []
        self._chars = 0  # delta text waiting
        self._oldest: float | None = None  # when the oldest waiting delta arrived
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.flushes = 0  # writes of its own so far (deltas alone)
        self._closed = False

    def delta(self, kind: str, turn_index: int, block_index: int, text: str, attempt: int) -> None:
        """Text or reasoning appended to a block; merged into the waiting delta of the same
        block when it is the last event waiting."""
        kind_type = _DELTA_TYPES[kind]
        last = self._pending[-1] if self._pending else None
        if (
            last is not None
            and last.type == kind_type
            and last.turn_index == turn_index
            and last.block_index == block_index
            and last.attempt == attempt
        ):
            last.text += text
        else:
            self._pending.append(
                run_pb2.RunEvent(
                    type=kind_type,
                    turn_index=turn_index,
                    block_index=block_index,
                    text=text,
                    attempt=attempt,
                )
            )
        self._chars += len(text)
        if self._oldest is None:
            self._oldest = self._clock()
            self._arm(FLUSH_AFTER_S)
        if self._chars >= FLUSH_CHARS:
            self._flush()

    def add(self, *events: run_pb2.RunEvent) -> None:
        """Events for the next write, whichever it is (a flush or the runner's own)."""
        self._pending.extend(events)

    def take(self) -> list[run_pb2.RunEvent]:
        """Everything waiting, for the runner's own write (call `settle` first)."""
        self._disarm()
        taken, self._pending = self._pending, []
        self._chars, self._oldest = 0, None
        return taken

    async def settle(self) -> None:
        """No more timed flushes; wait for the writes in flight. Raises their failure. A flush
        that ends may start the next at once (deltas that waited meanwhile): that one is waited
        for too, or it would race the runner's own write and land after the turn."""
        self._disarm()
        while self._writing is not None:
            await asyncio.shield(self._writing)
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        """The run is over here (committed, or given up): no flush starts any more; what still
        waits is dropped (a runner resuming the run writes its turn again)."""
        self._disarm()
        self._closed = True

    # --- the rule ---------------------------------------------------------------------------

    def _due(self) -> bool:
        if self._oldest is None:
            return False
        return self._chars >= FLUSH_CHARS or self._clock() - self._oldest >= FLUSH_AFTER_S

    def _arm(self, delay: float) -> None:
        if self._timer is None and self._writing is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._writing is not None or self.failure is not None or self._closed:
            return
        if not self._pending:
            return
        self._writing = asyncio.create_task(self._send(self.take()))

    async def _send(self, batch: list[run_pb2.RunEvent]) -> None:
        try:
            await self._write(batch)
            self.flushes += 1
        except Exception as exc:  # noqa: BLE001 - the executor decides what a failure means
            self.failure = exc
            self._failed(exc)
        finally:
            self._writing = None
        if self.failure is None and self._oldest is not None:  # deltas came meanwhile
            if self._due():
                self._flush()
            else:
                self._arm(max(0.0, FLUSH_AFTER_S - (self._clock() - self._oldest)))


# --- the events a runner writes -------------------------------------------------------------


def turn_event(turn_index: int, turn: message_pb2.Message) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        type=TURN,
        turn=run_pb2.LiveTurn(
            turn_index=turn_index, role=turn.role, content_blocks=turn.content_blocks
        ),
    )


def tool_call_event(use: message_pb2.ToolUseBlock, caller: bool) -> run_pb2.RunEvent:
    kind = run_pb2.RunEvent.TOOL_KIND_CALLER if caller else run_pb2.RunEvent.TOOL_KIND_MCP
    arguments = struct_pb2.Struct()
    arguments.CopyFrom(use.arguments)
    return run_pb2.RunEvent(
        type=TOOL_CALL, tool_use_id=use.tool_use_id, name=use.name, kind=kind, arguments=arguments
    )


def tool_result_event(result: message_pb2.ToolResultBlock) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        type=TOOL_RESULT,
        tool_use_id=result.tool_use_id,
        is_error=result.is_error,
        content=run_pb2.ContentBlockList(values=result.content),
    )


def restarted_event(turn_index: int, attempt: int) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(type=TURN_RESTARTED, turn_index=turn_index, attempt=attempt)
