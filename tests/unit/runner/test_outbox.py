"""outbox.py: the coalescing rule for a run's deltas, and the order of what it writes."""

from __future__ import annotations

import asyncio

import pytest
from agents.v1 import run_pb2

from services.runner import outbox as ob


class Store:
    """Records each write; `hold` keeps the next writes in flight until released."""

    def __init__(self) -> None:
        self.writes: list[list[run_pb2.RunEvent]] = []
        self.wrote = asyncio.Event()
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail: Exception | None = None

    async def write(self, events: list[run_pb2.RunEvent]) -> None:
        await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        self.writes.append(events)
        self.wrote.set()


def texts(events: list[run_pb2.RunEvent]) -> list[tuple[str, int, str]]:
    return [(e.type, e.block_index, e.text) for e in events]


async def test_deltas_of_a_block_merge_and_wait_for_the_runners_own_write() -> None:
    store, failures = Store(), []
    box = ob.Outbox(store.write, failures.append)
    for piece in ("Hel", "lo", " wor", "ld"):
        box.delta("text", 0, 1, piece, 1)
    box.delta("reasoning", 0, 0, "hmm", 1)
    box.delta("text", 0, 1, "!", 1)  # after another block's delta: a new event
    await box.settle()
    assert store.writes == []  # nothing is due yet: the turn's own write takes it all
    taken = box.take()
    assert texts(taken) == [
        ("message.delta", 1, "Hello world"),
        ("reasoning.delta", 0, "hmm"),
        ("message.delta", 1, "!"),
    ]
    assert all(e.turn_index == 0 and e.attempt == 1 for e in taken)
    assert box.take() == [] and failures == [] and box.flushes == 0


async def test_a_delta_waits_at_most_the_flush_interval() -> None:
    store = Store()
    box = ob.Outbox(store.write, lambda exc: None)
    box.delta("text", 2, 0, "first", 3)
    await asyncio.wait_for(store.wrote.wait(), 5)  # the timer flushed it, with no other delta
    assert [texts(w) for w in store.writes] == [[("message.delta", 0, "first")]]
    assert box.flushes == 1 and box.take() == []


async def test_enough_text_flushes_at_once_and_more_waits_for_the_write_in_flight() -> None:
    store = Store()
    store.hold.clear()
    box = ob.Outbox(store.write, lambda exc: None)
    box.delta("text", 0, 0, "x" * ob.FLUSH_CHARS, 1)  # due now: a write starts
    box.delta("text", 0, 0, "y", 1)
    box.delta("text", 0, 0, "z" * ob.FLUSH_CHARS, 1)  # due too, but one write at a time
    store.hold.set()
    for _ in range(100):
        if len(store.writes) == 2:
            break
        await asyncio.sleep(0.01)
    assert [texts(w) for w in store.writes] == [
        [("message.delta", 0, "x" * ob.FLUSH_CHARS)],
        [("message.delta", 0, "y" + "z" * ob.FLUSH_CHARS)],
    ]


async def test_events_added_go_with_the_next_write_in_order() -> None:
    store = Store()
    box = ob.Outbox(store.write, lambda exc: None)
    box.add(ob.restarted_event(1, 2))
    box.delta("text", 1, 0, "again", 2)
    taken = box.take()
    assert [e.type for e in taken] == ["turn.restarted", "message.delta"]
    assert (taken[0].turn_index, taken[0].attempt) == (1, 2)


async def test_a_failed_flush_stops_flushing_and_is_raised_by_settle() -> None:
    store, failures = Store(), []
    store.fail = RuntimeError("store away")
    box = ob.Outbox(store.write, failures.append)
    box.delta("text", 0, 0, "x" * ob.FLUSH_CHARS, 1)
    with pytest.raises(RuntimeError, match="store away"):
        await box.settle()
    assert failures == [store.fail]
    box.delta("text", 0, 0, "x" * ob.FLUSH_CHARS, 1)  # not written: the run is failing
    await asyncio.sleep(0)
    assert store.writes == []


def test_event_builders() -> None:
    from tests.blocks import tool_result, tool_use

    call = ob.tool_call_event(tool_use("t1", "docs-search", q="x").tool_use, caller=False)
    assert (call.type, call.tool_use_id, call.name) == ("tool.call", "t1", "docs-search")
    assert call.kind == run_pb2.RunEvent.TOOL_KIND_MCP and call.arguments["q"] == "x"
    paused = ob.tool_call_event(tool_use("c1", "confirm").tool_use, caller=True)
    assert paused.kind == run_pb2.RunEvent.TOOL_KIND_CALLER
    result = ob.tool_result_event(tool_result("t1", "hit", is_error=True).tool_result)
    assert (result.type, result.is_error, result.content.values[0].text.text) == (
        "tool.result",
        True,
        "hit",
    )


async def test_a_closed_outbox_starts_no_flush() -> None:
    store = Store()
    box = ob.Outbox(store.write, lambda exc: None)
    box.delta("text", 0, 0, "late", 1)
    box.close()  # the run ended here (its lease was lost): the timer is gone
    box.delta("text", 0, 0, "x" * ob.FLUSH_CHARS, 1)  # due by size, but closed
    for _ in range(3):
        await asyncio.sleep(0)  # a flush task, had one started, would have written by now
    assert store.writes == [] and texts(box.take()) == [
        ("message.delta", 0, "late" + "x" * ob.FLUSH_CHARS)
    ]


async def test_settle_waits_for_the_flush_a_finished_flush_starts() -> None:
    """A flush that ends with enough deltas waiting starts the next one at once; settle waits for
    that one too, so the runner's own write (the turn) never lands before the turn's last
    deltas (the chaos test saw a turn's stream end short of its text that way)."""
    store = Store()
    store.hold.clear()

    async def slow_write(events: list[run_pb2.RunEvent]) -> None:
        await store.write(events)
        for _ in range(20):  # a store round trip: the write ends some loop turns later
            await asyncio.sleep(0)

    box = ob.Outbox(slow_write, lambda exc: None)
    box.delta("text", 0, 0, "x" * ob.FLUSH_CHARS, 1)  # due now: a write starts, held
    box.delta("text", 0, 0, "y" * ob.FLUSH_CHARS, 1)  # due too: waits for the write in flight
    settling = asyncio.create_task(box.settle())
    await asyncio.sleep(0)
    store.hold.set()
    await settling
    assert box._writing is None  # nothing in flight once settled
    assert [texts(w) for w in store.writes] == [
        [("message.delta", 0, "x" * ob.FLUSH_CHARS)],
        [("message.delta", 0, "y" * ob.FLUSH_CHARS)],
    ]
    assert box.take() == []
