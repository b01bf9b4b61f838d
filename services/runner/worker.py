"""Claims runs and keeps their leases.

Pickup without polling: the worker keeps the store's WatchWork stream open. The store sends a
signal at once (so runs queued while no runner was up are claimed) and whenever a run is queued
or a cancellation is requested. On a queued signal the worker claims while the store answers
`has_more`; at its concurrency cap it waits for a finished run's slot, then claims on. Every
runner gets every signal and races for ClaimRun: the store's row lock (FOR UPDATE SKIP LOCKED on
PostgreSQL, the single writer on SQLite) makes each claim exclusive.

A dead runner's runs come back by lease expiry: when nothing is claimable the store says when the
earliest running lease expires, and the worker sets one timer for then (a deadline, not a poll
interval). The stream itself is reconnected with backoff when the store goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import grpc
from agents.v1 import store_service_pb2

from services.common.metrics import RUNNER_PICKUP_SECONDS
from services.runner.clients import StoreClient, is_lease_lost
from services.runner.executor import Executor, RunHandle

log = logging.getLogger("parley.runner")
Signal = store_service_pb2.WatchWorkResponse


class Worker:
    def __init__(
        self,
        store: StoreClient,
        executor: Executor,
        runner_id: str,
        concurrency: int,
        lease_seconds: int,
    ) -> None:
        self._store = store
        self._executor = executor
        self.runner_id = runner_id
        self._lease_seconds = lease_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._running: dict[str, RunHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._watch(), name="runner-watch"),
            asyncio.create_task(self._claim_loop(), name="runner-claim"),
        ]

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming and abandon runs in flight: their leases expire and another runner
        resumes them (nothing is committed half-way)."""
        if self._timer is not None:
            self._timer.cancel()
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- signals ------------------------------------------------------------------------------

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for signal in self._store.watch_work(self.runner_id):
                    backoff = 0.1
                    if signal.kind == Signal.KIND_RUNS_QUEUED:
                        self._wake.set()
                    elif signal.kind == Signal.KIND_CANCEL_REQUESTED:
                        handle = self._running.get(signal.run_id)
                        if handle is not None:
                            handle.cancel()
                        else:  # maybe held by a dead runner: claim it once its lease ends
                            self._wake.set()
            except grpc.aio.AioRpcError as exc:
                log.info("work stream from the store ended (%s); reconnecting", exc.code().name)
            await asyncio.sleep(backoff)  # reconnect backoff only; never on the hot path
            backoff = min(backoff * 2, 5.0)

    def _wake_after(self, delay_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay_ms / 1000, self._wake.set)

    # --- claiming -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._claim_all()
            except grpc.aio.AioRpcError as exc:
                log.warning("claiming failed (%s): %s", exc.code().name, exc.details())
                self._wake_after(500)

    async def _claim_all(self) -> None:
        """Claim while the store says more is runnable; at the cap, wait for a free slot."""
        while True:
            await self._slots.acquire()
            try:
                claim = await self._store.claim(self.runner_id, self._lease_seconds)
            except BaseException:
                self._slots.release()
                raise
            if claim.HasField("run"):
                self._start(claim)
            else:
                self._slots.release()
            if not claim.has_more:
                if claim.retry_after_ms:
                    self._wake_after(claim.retry_after_ms)
                return

    def _start(self, claim: store_service_pb2.ClaimRunResponse) -> None:
        if claim.attempt == 1:
            started = claim.run.started_at.ToDatetime(tzinfo=UTC)
            RUNNER_PICKUP_SECONDS.observe(max(0.0, (datetime.now(UTC) - started).total_seconds()))
        handle = RunHandle(claim.run.id)
        self._running[handle.run_id] = handle
        task = asyncio.create_task(self._execute(claim, handle), name=f"run-{handle.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, claim: store_service_pb2.ClaimRunResponse, handle: RunHandle) -> None:
        renewer = asyncio.create_task(self._renew(handle))
        try:
            await self._executor.execute(claim, handle)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one run's bug must not stop the worker
            log.exception("run %s crashed; its lease will expire and it will be retried", handle)
        finally:
            renewer.cancel()
            self._running.pop(handle.run_id, None)
            self._slots.release()  # a claim loop waiting at the cap goes on

    async def _renew(self, handle: RunHandle) -> None:
        period = max(self._lease_seconds / 3, 0.2)
        next_at = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            try:
                if await self._store.renew(handle.run_id, self.runner_id, self._lease_seconds):
                    handle.cancel()
            except grpc.aio.AioRpcError as exc:
                if is_lease_lost(exc):
                    handle.lose_lease()
                    return
                log.warning("renewing the lease of run %s failed: %s", handle.run_id, exc)
