"""Claims runs and keeps their leases.

A worker serves every execution cluster, or those it was started for (`parley serve runner
--cluster NAME`): its claims name them, and the store leases it runs of those only. How many runs
it executes at once is bounded by memory (capacity.py: its memory budget's worth of runs, at most
PARLEY_RUNNER_CONCURRENCY when an operator sets it); a cluster's `runner_concurrency` caps how
many of its runs the worker executes at once; at the cap, its claims leave that cluster out until
one of its runs ends.
Pickup without polling: with room for a run, the worker keeps one ClaimRun long poll open at the
store, for as many runs as it has room for (the store leases the oldest runnable ones in one
transaction). A new run is leased to a waiting poll in its StartRun's own transaction and handed
over at once; otherwise each queued run wakes one waiting runner, so runners do not race for it,
and a dead runner's runs come back when their leases expire, a deadline the store waits for. With
no room the worker waits for a run to end first. Before its first claim, a worker whose runner
restarted releases the leases its previous process held (same runner name), so those runs resume
at once rather than when their leases expire.
Cancellations come on the store's WatchWork stream, which is reconnected with backoff when the
store goes away. One loop renews the leases of every run in flight with one call per period. A
worker that stops releases the leases of the runs it abandons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import grpc
from agents.v1 import store_service_pb2

from services.common.metrics import (
    RUNNER_IN_FLIGHT,
    RUNNER_PICKUP_SECONDS,
    RUNNER_SLOTS_USED,
)
from services.runner.capacity import Capacity
from services.runner.clients import StoreClient
from services.runner.executor import Executor, RunHandle

log = logging.getLogger("parley.runner")
Signal = store_service_pb2.WatchWorkResponse
CLAIM_WAIT_MS = 30_000  # one long poll's wait at the store; then the worker asks again
CLAIM_BATCH = 32  # runs one claim leases at most (one store transaction: short, to stay fair)
RELEASE_AT_STOP_S = 2.0  # a stop does not wait long for a store that is gone


class Worker:
    def __init__(
        self,
        store: StoreClient,
        executor: Executor,
        runner_name: str,  # stable across restarts
        runner_id: str,  # `<runner_name>/<incarnation>`: this process
        capacity: Capacity,
        lease_seconds: int,
        renew_batch: int,  # run ids per RenewLeases call
        clusters: Sequence[str] = (),  # the execution clusters it serves; (): every one
        limits: Mapping[str, int] | None = None,  # cluster -> its runs executed here at once
        known: Sequence[str] = (),  # every cluster of the catalogue
    ) -> None:
        self._store = store
        self._executor = executor
        self.runner_name = runner_name
        self.runner_id = runner_id
        self._lease_seconds = lease_seconds
        self._renew_batch = renew_batch
        self._clusters = list(clusters)
        self._limits = dict(limits or {})
        self._known = list(known)
        self._per_cluster: Counter[str] = Counter()  # runs in flight, by cluster
        self._ended = asyncio.Event()  # a run ended: room for another, or for its cluster
        self._poll_clusters: list[str] = []  # what the waiting ClaimRun names ([]: every one)
        self._capacity = capacity
        self._in_flight = 0
        self._running: dict[str, RunHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        # the ClaimRun waiting at the store
        self._poll: (
            grpc.aio.UnaryUnaryCall[
                store_service_pb2.ClaimRunRequest, store_service_pb2.ClaimRunResponse
            ]
            | None
        ) = None
        self._nudged = False

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._watch(), name="runner-watch"),
            asyncio.create_task(self._claim_loop(), name="runner-claim"),
            asyncio.create_task(self._renew_loop(), name="runner-renew"),
        ]

    def wake(self) -> None:
        """Ask again at once (NotifyRunsQueued: e.g. runs queued through another store
        process, whose wake-ups do not reach the one this worker waits at)."""
        if self._poll is not None and not self._poll.done():
            self._nudged = True
            self._poll.cancel()

    async def stop(self) -> None:
        """Stop claiming and abandon runs in flight (nothing is committed half-way), then release
        their leases as this runner's next incarnation would, so other runners resume them at
        once; if the store cannot be reached, they resume when their leases expire."""
        abandoned = bool(self._tasks)
        self._capacity.close()
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if abandoned:
            successor = f"{self.runner_name}/{uuid.uuid4().hex[:12]}"
            try:
                await self._store.release_leases(self.runner_name, successor, RELEASE_AT_STOP_S)
            except grpc.aio.AioRpcError as exc:
                log.warning("releasing the leases of abandoned runs failed: %s", exc.details())

    # --- cancellations -----------------------------------------------------------------------

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for signal in self._store.watch_work(self.runner_id):
                    backoff = 0.1
                    handle = self._running.get(signal.run_id)
                    if signal.kind == Signal.KIND_CANCEL_REQUESTED and handle is not None:
                        handle.cancel()
            except grpc.aio.AioRpcError as exc:
                log.info(
                    "cancellation stream from the store ended (%s); reconnecting", exc.code().name
                )
            await asyncio.sleep(backoff)  # reconnect backoff only; never on the hot path
            backoff = min(backoff * 2, 5.0)

    # --- claiming -----------------------------------------------------------------------------

    async def _release_earlier(self) -> None:
        """The runs an earlier incarnation of this runner held become runnable now (its process
        died with them). Retried while the store is unreachable; a store that refuses (an older
        api) leaves them to their leases' expiry."""
        backoff = 0.1
        while True:
            try:
                released = await self._store.release_leases(self.runner_name, self.runner_id)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    log.warning("releasing earlier leases failed (%s): %s", exc.code().name, exc)
                    return
                await asyncio.sleep(backoff)  # the store is not up yet: back off
                backoff = min(backoff * 2, 5.0)
                continue
            if released:
                log.info(
                    "runner %s restarted: %d runs its previous process held resume now",
                    self.runner_name,
                    len(released),
                )
            return

    def _claimable(self) -> list[str] | None:
        """The clusters a claim names now: [] for every one, None for none (all at their cap)."""
        full = {c for c, cap in self._limits.items() if self._per_cluster[c] >= cap}
        if not full:
            return list(self._clusters)
        open_ = [c for c in (self._clusters or self._known) if c not in full]
        return open_ or None

    async def _claim_loop(self) -> None:
        await self._release_earlier()
        backoff = 0.1
        while True:
            self._ended.clear()
            clusters = self._claimable()
            if clusters is None or not self._capacity.admits(self._in_flight):
                await self._ended.wait()  # no room (or every cluster at its cap): wait for a run
                continue
            try:
                claim = await self._claim(clusters)
            except grpc.aio.AioRpcError as exc:
                log.warning("claiming failed (%s): %s", exc.code().name, exc.details())
                await asyncio.sleep(backoff)  # the store is away: back off, never on the hot path
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if claim is not None and claim.HasField("run"):
                for each in (claim, *claim.more):
                    self._start(each)

    def _room(self, clusters: list[str]) -> int:
        """How many runs a claim naming `clusters` may lease: the room left within the capacity
        and within each capped cluster it may lease from, at most CLAIM_BATCH."""
        room = min(CLAIM_BATCH, self._capacity.limit - self._in_flight)
        for cluster, cap in self._limits.items():
            if not clusters or cluster in clusters:
                room = min(room, cap - self._per_cluster[cluster])
        return max(1, room)

    async def _claim(self, clusters: list[str]) -> store_service_pb2.ClaimRunResponse | None:
        """One long poll (for as many runs as there is room for); None when `wake()` cut it
        short."""
        self._poll_clusters = clusters
        self._poll = poll = self._store.claim(
            self.runner_id, self._lease_seconds, CLAIM_WAIT_MS, clusters, self._room(clusters)
        )
        try:
            return await poll
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._nudged or (task is not None and task.cancelling()):
                raise
            return None
        finally:
            self._poll, self._nudged = None, False

    def _start(self, claim: store_service_pb2.ClaimRunResponse) -> None:
        if claim.attempt == 1:
            started = claim.run.started_at.ToDatetime(tzinfo=UTC)
            RUNNER_PICKUP_SECONDS.observe(max(0.0, (datetime.now(UTC) - started).total_seconds()))
        handle = RunHandle(claim.run.id)
        self._running[handle.run_id] = handle
        cluster = claim.run.effective_config.execution_cluster
        self._per_cluster[cluster] += 1
        self._in_flight += 1
        RUNNER_IN_FLIGHT.labels(cluster).inc()
        RUNNER_SLOTS_USED.inc()
        task = asyncio.create_task(self._execute(claim, handle), name=f"run-{handle.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, claim: store_service_pb2.ClaimRunResponse, handle: RunHandle) -> None:
        try:
            await self._executor.execute(claim, handle)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one run's bug must not stop the worker
            log.exception("run %s crashed; its lease will expire and it will be retried", handle)
        finally:
            self._running.pop(handle.run_id, None)
            self._in_flight -= 1
            self._ended.set()  # a claim loop waiting for room goes on
            cluster = claim.run.effective_config.execution_cluster
            self._per_cluster[cluster] -= 1
            RUNNER_IN_FLIGHT.labels(cluster).dec()
            RUNNER_SLOTS_USED.dec()
            if self._per_cluster[cluster] + 1 == self._limits.get(cluster):
                # the cluster was at its cap: claims name it again
                if self._poll_clusters and cluster not in self._poll_clusters:
                    self.wake()  # the waiting ClaimRun leaves it out: ask again

    async def _renew_loop(self) -> None:
        """Every third of the lease: one RenewLeases for all the runs in flight (per 1,000, to
        stay inside the databases' bind-parameter limits). A run claimed since the last round
        has a fresh lease; a failed round is retried at the next one."""
        period = max(self._lease_seconds / 3, 0.2)
        next_at = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + period, time.monotonic())  # a slow round does not pile up
            run_ids = list(self._running)
            for start in range(0, len(run_ids), self._renew_batch):
                await self._renew(run_ids[start : start + self._renew_batch])

    async def _renew(self, run_ids: list[str]) -> None:
        try:
            reply = await self._store.renew_leases(self.runner_id, run_ids, self._lease_seconds)
        except grpc.aio.AioRpcError as exc:
            log.warning("renewing %d leases failed: %s", len(run_ids), exc)
            return
        for run_id in reply.cancel_requested:
            if (handle := self._running.get(run_id)) is not None:
                handle.cancel()
        for run_id in reply.lost:
            if (handle := self._running.get(run_id)) is not None:
                handle.lose_lease()
