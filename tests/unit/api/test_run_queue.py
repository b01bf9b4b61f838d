"""The run queue's waiting line: a queued run wakes one waiting claim, never the whole crowd, a
wake-up is never lost, and a StartRun hands its run only to a claim that waits."""

from __future__ import annotations

import asyncio

from services.api.run_queue import Claim, WaitingLine

HANDED = Claim(None, 0)  # what a StartRun hands over (its content does not matter here)


async def test_a_queued_run_wakes_the_longest_waiting_claim_only() -> None:
    line = WaitingLine()
    with line.join("r", 30) as first, line.join("r", 30) as second:
        first.look()
        second.look()
        line.runs_queued()
        await first.wait(1)
        assert first.woken
        await second.wait(0.05)
        assert not second.woken
        line.runs_queued()
        await second.wait(1)
        assert second.woken


async def test_a_run_queued_while_looking_is_not_missed() -> None:
    line = WaitingLine()
    with line.join("r", 30) as waiting:
        waiting.look()  # before looking at the queue
        line.runs_queued()  # queued while the claim's transaction ran
        await waiting.wait(0)  # so it looks again instead of sleeping
        assert waiting.woken


async def test_a_claim_leaving_woken_passes_the_wake_up_on() -> None:
    line = WaitingLine()
    with line.join("r", 30) as waiting:
        waiting.look()
        with line.join("r", 30) as leaving:
            leaving.look()
            line.runs_queued()  # wakes `waiting`, the older one
            await waiting.wait(0)
            assert waiting.woken
            waiting.look()  # looks again (found nothing) and waits on
            line.runs_queued()  # wakes `leaving`, which then returns another run it claimed
        await waiting.wait(1)  # the run that woke `leaving` is not stranded
        assert waiting.woken


async def test_nobody_waiting_keeps_no_wake_up() -> None:
    line = WaitingLine()
    line.runs_queued()  # the run stays in the database; the next claim finds it by looking
    with line.join("r", 30) as waiting:
        waiting.look()
        await waiting.wait(0.01)
        assert not waiting.woken


async def test_only_a_waiting_claim_is_handed_a_new_run() -> None:
    line = WaitingLine()
    with line.join("looking", 30) as looking, line.join("waiting", 30) as waiting:
        looking.look()  # its claim transaction under way: not free to be handed a run
        waiting.look()
        task = asyncio.create_task(waiting.wait(5))
        await asyncio.sleep(0)  # let it start waiting
        taken = line.take()
        assert taken is waiting and line.take() is None
        taken.hand(HANDED)
        assert await task is HANDED
        line.runs_queued()  # the hand-over was no wake-up of the queue: `looking` gets this one
        await looking.wait(0)
        assert looking.woken


async def test_a_taken_claim_outlasts_its_timeout_until_released() -> None:
    line = WaitingLine()
    with line.join("r", 30) as waiting:
        waiting.look()
        task = asyncio.create_task(waiting.wait(0.01))
        await asyncio.sleep(0)  # let it start waiting
        assert line.take() is waiting
        done, _ = await asyncio.wait({task}, timeout=0.05)  # well past its own 0.01 s
        assert not done  # taken: it waits for the StartRun, not for its timeout
        waiting.release()  # the StartRun made no run (say it failed): the claim looks again
        assert await task is None and waiting.woken


async def test_a_queued_run_wakes_only_a_claim_that_serves_its_cluster() -> None:
    line = WaitingLine()
    with (
        line.join("a", 30, frozenset({"a"})) as on_a,
        line.join("b", 30, frozenset({"b"})) as on_b,
        line.join("any", 30) as on_any,
    ):
        for waiting in (on_a, on_b, on_any):
            waiting.look()
        line.runs_queued("b")  # on_a waits longer, but does not serve b
        await on_b.wait(1)
        assert on_b.woken and not on_a.woken and not on_any.woken
        line.runs_queued("c")  # only the claim of every cluster serves c
        await on_any.wait(1)
        assert on_any.woken and not on_a.woken


async def test_a_new_run_is_handed_only_to_a_claim_that_serves_its_cluster() -> None:
    line = WaitingLine()
    with line.join("a", 30, frozenset({"a"})) as on_a, line.join("any", 30) as on_any:
        on_a.look()
        on_any.look()
        tasks = [asyncio.create_task(w.wait(5)) for w in (on_a, on_any)]
        await asyncio.sleep(0)  # let them start waiting
        assert line.names_clusters()
        assert line.take("b") is on_any  # on_a waits longer but does not serve b
        assert line.take("b") is None
        on_any.release()
        assert line.take(None) is None  # a run of an unknown cluster: only a claim of every one
        assert line.take("a") is on_a
        on_a.hand(HANDED)
        assert await tasks[0] is HANDED and await tasks[1] is None


async def test_a_claim_leaving_woken_passes_the_wake_up_on_for_its_cluster() -> None:
    line = WaitingLine()
    with line.join("b", 30, frozenset({"b"})) as on_b, line.join("a2", 30, frozenset({"a"})) as a2:
        on_b.look()
        a2.look()
        with line.join("a1", 30, frozenset({"a"})) as a1:
            a1.look()
            line.runs_queued("a")  # wakes a2, the oldest serving a
            await a2.wait(0)
            a2.look()
            line.runs_queued("a")  # wakes a1, which then leaves with another run
        await a2.wait(1)
        assert a2.woken and not on_b.woken  # the wake-up went to a claim serving a
