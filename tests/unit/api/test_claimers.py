"""The hub's claim wake-ups: a queued run wakes one waiting claim, never the whole crowd, and a
wake-up is never lost."""

from __future__ import annotations

import asyncio

from services.api.events import Hub


async def test_a_queued_run_wakes_the_longest_waiting_claim_only() -> None:
    hub = Hub()
    with hub.claimer("r", 30) as first, hub.claimer("r", 30) as second:
        first.arm()
        second.arm()
        hub.runs_queued()
        assert await first.wait(1)
        assert not await second.wait(0.05)
        hub.runs_queued()
        assert await second.wait(1)


async def test_a_run_queued_while_looking_is_not_missed() -> None:
    hub = Hub()
    with hub.claimer("r", 30) as claimer:
        claimer.arm()  # before looking at the queue
        hub.runs_queued()  # queued while the claim's transaction ran
        assert await claimer.wait(0)  # so it looks again instead of sleeping


async def test_a_claimer_leaving_woken_passes_the_wake_up_on() -> None:
    hub = Hub()
    with hub.claimer("r", 30) as waiting:
        waiting.arm()
        with hub.claimer("r", 30) as leaving:
            leaving.arm()
            hub.runs_queued()  # wakes `waiting`, the older one
            assert await waiting.wait(0)
            waiting.arm()  # looks again (found nothing) and waits on
            hub.runs_queued()  # wakes `leaving`, which then returns another run it claimed
        assert await waiting.wait(1)  # the run that woke `leaving` is not stranded


async def test_nobody_waiting_keeps_no_wake_up() -> None:
    hub = Hub()
    hub.runs_queued()  # the run stays in the database; the next claim finds it by looking
    with hub.claimer("r", 30) as claimer:
        claimer.arm()
        assert not await claimer.wait(0.01)


async def test_only_a_waiting_claim_is_handed_a_new_run() -> None:
    hub = Hub()
    with hub.claimer("looking", 30) as looking, hub.claimer("waiting", 30) as waiting:
        looking.arm()  # armed, its claim transaction under way: not free to be handed a run
        waiting.arm()
        task = asyncio.create_task(waiting.wait(5))
        await asyncio.sleep(0)
        taken = hub.waiting_claimer()
        assert taken is waiting and hub.waiting_claimer() is None
        taken.hand("the claim")
        assert await task
        assert waiting.take_handed() == "the claim" and waiting.take_handed() is None
        hub.runs_queued()  # the hand-over was no wake-up of the queue: `looking` gets this one
        assert await looking.wait(0)


async def test_a_taken_claim_outlasts_its_timeout_until_handed_or_released() -> None:
    hub = Hub()
    with hub.claimer("r", 30) as claimer:
        claimer.arm()
        task = asyncio.create_task(claimer.wait(0.01))
        await asyncio.sleep(0)
        assert hub.waiting_claimer() is claimer
        await asyncio.sleep(0.05)  # its timeout has passed: it still waits for the StartRun
        assert not task.done()
        claimer.release()  # the StartRun made no run (say it failed): the claim looks again
        assert await task and claimer.take_handed() is None
