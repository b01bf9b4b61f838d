"""RunnerService: the store (or an operator) can nudge a runner to claim now."""

from __future__ import annotations

from typing import Any

import grpc
from agents.v1 import runner_service_pb2, runner_service_pb2_grpc

from services.runner.worker import Worker


class RunnerServicer(runner_service_pb2_grpc.RunnerServiceServicer):
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def NotifyRunsQueued(
        self,
        request: runner_service_pb2.NotifyRunsQueuedRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> runner_service_pb2.NotifyRunsQueuedResponse:
        self._worker.wake()
        return runner_service_pb2.NotifyRunsQueuedResponse()
