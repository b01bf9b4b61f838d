"""StoreService: the runner's internal interface to the store (no bearer token; not routed by the
gateway, which only exposes ConversationService)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from agents.v1 import store_service_pb2, store_service_pb2_grpc

from services.api import events, lifecycle
from services.api.db.engine import Database
from services.common.config import Settings

Context = grpc.aio.ServicerContext


class StoreServicer(store_service_pb2_grpc.StoreServiceServicer):
    def __init__(self, db: Database, settings: Settings, hub: events.Hub) -> None:
        self._db = db
        self._hub = hub
        self._docs_url = settings.docs_url

    async def ClaimRun(
        self, request: store_service_pb2.ClaimRunRequest, context: Context
    ) -> store_service_pb2.ClaimRunResponse:
        """Claim at once, or wait (a long poll, up to wait_ms): a StartRun may hand this claim
        its new run, already leased to it; a queued run or the earliest running lease's expiry
        wakes it to look again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, request.wait_ms) / 1000
        with self._hub.claimer(request.runner_id, request.lease_seconds) as claimer:
            while True:
                claimer.arm()
                claim = await lifecycle.claim_run(
                    self._db, self._hub, request.runner_id, request.lease_seconds
                )
                left = deadline - loop.time()
                if claim.claimed is not None or left <= 0:
                    return lifecycle.claim_response(claim, self._docs_url)
                if claim.retry_after_ms:
                    left = min(left, claim.retry_after_ms / 1000)
                await claimer.wait(left)
                handed = claimer.take_handed()
                if handed is not None:  # a StartRun leased its new run to this claim
                    return lifecycle.claim_response(handed, self._docs_url)

    async def RenewLeases(
        self, request: store_service_pb2.RenewLeasesRequest, context: Context
    ) -> store_service_pb2.RenewLeasesResponse:
        return await lifecycle.renew_leases(self._db, request)

    async def CommitRun(
        self, request: store_service_pb2.CommitRunRequest, context: Context
    ) -> store_service_pb2.CommitRunResponse:
        version = await lifecycle.commit_run(self._db, self._hub, request, self._docs_url)
        return store_service_pb2.CommitRunResponse(version=version)

    async def WatchWork(
        self, request: store_service_pb2.WatchWorkRequest, context: Context
    ) -> AsyncIterator[store_service_pb2.WatchWorkResponse]:
        with self._hub.watch() as signals:
            while True:
                yield await signals.get()

    async def AppendLiveTurn(
        self, request: store_service_pb2.AppendLiveTurnRequest, context: Context
    ) -> store_service_pb2.AppendLiveTurnResponse:
        seq = await lifecycle.append_live_turn(self._db, self._hub, request)
        return store_service_pb2.AppendLiveTurnResponse(seq=seq)

    async def GetInferenceJob(
        self, request: store_service_pb2.GetInferenceJobRequest, context: Context
    ) -> store_service_pb2.InferenceJob:
        return await lifecycle.get_inference_job(self._db, request.id)

    async def SetGeneratedName(
        self, request: store_service_pb2.SetGeneratedNameRequest, context: Context
    ) -> store_service_pb2.SetGeneratedNameResponse:
        applied = await lifecycle.set_generated_name(
            self._db, request.conversation_id, request.name
        )
        return store_service_pb2.SetGeneratedNameResponse(applied=applied)
