"""StoreService: the runner's internal interface to the store (no bearer token; not routed by the
gateway, which only exposes ConversationService)."""

from __future__ import annotations

import grpc
from agents.v1 import store_service_pb2, store_service_pb2_grpc

from services.api import lifecycle
from services.api.db.engine import Database
from services.common.config import Settings

Context = grpc.aio.ServicerContext


class StoreServicer(store_service_pb2_grpc.StoreServiceServicer):
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._docs_url = settings.docs_url

    async def ClaimRun(
        self, request: store_service_pb2.ClaimRunRequest, context: Context
    ) -> store_service_pb2.ClaimRunResponse:
        claimed = await lifecycle.claim_run(self._db, request.runner_id, request.lease_seconds)
        return lifecycle.claim_response(claimed, self._docs_url)

    async def RenewLease(
        self, request: store_service_pb2.RenewLeaseRequest, context: Context
    ) -> store_service_pb2.RenewLeaseResponse:
        await lifecycle.renew_lease(
            self._db, request.run_id, request.runner_id, request.lease_seconds
        )
        return store_service_pb2.RenewLeaseResponse()

    async def CommitRun(
        self, request: store_service_pb2.CommitRunRequest, context: Context
    ) -> store_service_pb2.CommitRunResponse:
        return store_service_pb2.CommitRunResponse(
            version=await lifecycle.commit_run(self._db, request)
        )
