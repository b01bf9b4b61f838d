"""StoreService: the runner's internal interface to the store (not routed by the gateway, which
only exposes ConversationService). Each method calls the run queue or the history and maps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from agents.v1 import run_pb2, store_service_pb2, store_service_pb2_grpc

from services.api import conversations, run_reports
from services.api.event_log import EventLog
from services.api.presentation import Presenter
from services.api.run_queue import RunQueue
from services.common.catalogue import Catalogue

Context = grpc.aio.ServicerContext[object, object]


class StoreServicer(store_service_pb2_grpc.StoreServiceServicer):
    def __init__(
        self, log: EventLog, queue: RunQueue, present: Presenter, catalogue: Catalogue
    ) -> None:
        self._log = log
        self._catalogue = catalogue
        self._db = log.db
        self._queue = queue
        self._present = present

    async def ClaimRun(
        self, request: store_service_pb2.ClaimRunRequest, context: Context
    ) -> store_service_pb2.ClaimRunResponse:
        claim = await self._queue.claim(
            request.runner_id,
            request.lease_seconds,
            request.wait_ms,
            request.clusters,
            request.max_runs,
        )
        for each in (claim, *claim.more):
            self._present.run(each.run)
        return claim

    async def RenewLeases(
        self, request: store_service_pb2.RenewLeasesRequest, context: Context
    ) -> store_service_pb2.RenewLeasesResponse:
        return await self._queue.renew(request.runner_id, request.run_ids, request.lease_seconds)

    async def ReleaseLeases(
        self, request: store_service_pb2.ReleaseLeasesRequest, context: Context
    ) -> store_service_pb2.ReleaseLeasesResponse:
        return await self._queue.release(request.runner_name, request.runner_id)

    async def WatchWork(
        self, request: store_service_pb2.WatchWorkRequest, context: Context
    ) -> AsyncIterator[store_service_pb2.WatchWorkResponse]:
        with self._queue.watch() as signals:
            while True:
                yield await signals.get()

    async def CommitRun(
        self, request: store_service_pb2.CommitRunRequest, context: Context
    ) -> store_service_pb2.CommitRunResponse:
        version = await run_reports.commit_run(self._log, self._catalogue, request)
        return store_service_pb2.CommitRunResponse(version=version)

    async def AppendLiveTurn(
        self, request: store_service_pb2.AppendLiveTurnRequest, context: Context
    ) -> store_service_pb2.AppendLiveTurnResponse:
        seq = await run_reports.append_live_turn(self._log, request)
        return store_service_pb2.AppendLiveTurnResponse(seq=seq)

    async def AppendRunEvents(
        self, request: store_service_pb2.AppendRunEventsRequest, context: Context
    ) -> store_service_pb2.AppendRunEventsResponse:
        last_seq = await run_reports.append_run_events(self._log, request)
        return store_service_pb2.AppendRunEventsResponse(last_seq=last_seq)

    async def GetInferenceJob(
        self, request: store_service_pb2.GetInferenceJobRequest, context: Context
    ) -> run_pb2.InferenceJob:
        return await run_reports.get_inference_job(self._db, request.id)

    async def SetGeneratedName(
        self, request: store_service_pb2.SetGeneratedNameRequest, context: Context
    ) -> store_service_pb2.SetGeneratedNameResponse:
        applied = await conversations.set_generated_name(
            self._db, request.conversation_id, request.name
        )
        return store_service_pb2.SetGeneratedNameResponse(applied=applied)
