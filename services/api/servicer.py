"""ConversationService: authenticate, call one operation, map (and present) the result. No
decisions here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from agents.v1 import (
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    run_pb2,
)

from services.api import conversations, mapping, run_listing
from services.api.db.engine import Database
from services.api.db.rows import RunRow
from services.api.presentation import Presenter
from services.api.runs import ReadRun, Runs
from services.api.validation import ConfigRules
from services.common import tracing
from services.common.auth import READ_SCOPE, WRITE_SCOPE, Principal, verify_authorization
from services.common.grpc_server import HTTP_STATUS_KEY, metadata_value

log = logging.getLogger("parley.api.runs")

Context = grpc.aio.ServicerContext[object, object]

# StartRun's answer says whether it started the run or found it (a replay): initial metadata,
# which the gateway sends as the Parley-Start-Outcome header (the RPC's response_headers).
START_OUTCOME_KEY = "parley-start-outcome"


class ConversationServicer(conversation_service_pb2_grpc.ConversationServiceServicer):
    def __init__(
        self, db: Database, runs: Runs, rules: ConfigRules, secret: str, present: Presenter
    ) -> None:
        self._db = db
        self._runs = runs
        self._rules = rules
        self._secret = secret
        self._present = present
        self._cursors = run_listing.Cursors(secret)

    def _principal(self, context: Context, scope: str) -> Principal:
        return verify_authorization(self._secret, metadata_value(context, "authorization"), scope)

    def _run(self, read: ReadRun) -> run_pb2.Run:
        return self._present.run(mapping.run_to_proto(read.row, read.current_name, read.live))

    async def CreateConversation(
        self, request: conversation_service_pb2.CreateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        principal = self._principal(context, WRITE_SCOPE)
        row = await conversations.create_conversation(self._db, self._rules, principal, request)
        return mapping.conversation_to_proto(row)

    async def ListConversations(
        self, request: conversation_service_pb2.ListConversationsRequest, context: Context
    ) -> conversation_service_pb2.ListConversationsResponse:
        principal = self._principal(context, READ_SCOPE)
        page = await conversations.list_conversations(self._db, principal, request)
        return mapping.conversation_page_to_proto(page)

    async def GetConversation(
        self, request: conversation_service_pb2.GetConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        principal = self._principal(context, READ_SCOPE)
        row = await conversations.get_conversation(self._db, principal, request.id)
        return mapping.conversation_to_proto(row)

    async def ListMessages(
        self, request: conversation_service_pb2.ListMessagesRequest, context: Context
    ) -> conversation_service_pb2.ListMessagesResponse:
        principal = self._principal(context, READ_SCOPE)
        page = await conversations.list_messages(self._db, principal, request)
        return mapping.message_page_to_proto(page)

    async def StartRun(
        self, request: conversation_service_pb2.StartRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, WRITE_SCOPE)
        incoming = metadata_value(context, tracing.TRACEPARENT)
        started = await self._runs.start(principal, request, tracing.run_traceparent(incoming))
        if started.replayed:  # the original row, answered 200 instead of the method's 202
            await context.send_initial_metadata(
                ((HTTP_STATUS_KEY, "200"), (START_OUTCOME_KEY, "duplicate"))
            )
        else:
            await context.send_initial_metadata(((START_OUTCOME_KEY, "accepted"),))
            _log_transition("run accepted", started.row)
        return self._present.run(mapping.run_to_proto(started.row, started.current_name))

    async def ListRuns(
        self, request: conversation_service_pb2.ListRunsRequest, context: Context
    ) -> conversation_service_pb2.ListRunsResponse:
        principal = self._principal(context, READ_SCOPE)
        page = await run_listing.list_runs(self._db, self._cursors, principal, request)
        return self._present.runs(run_listing.page_to_proto(page))

    async def ListConversationRuns(
        self, request: conversation_service_pb2.ListConversationRunsRequest, context: Context
    ) -> conversation_service_pb2.ListRunsResponse:
        principal = self._principal(context, READ_SCOPE)
        page = await run_listing.list_runs(self._db, self._cursors, principal, request, request.id)
        return self._present.runs(run_listing.page_to_proto(page))

    async def GetUsage(
        self, request: conversation_service_pb2.GetUsageRequest, context: Context
    ) -> conversation_service_pb2.GetUsageResponse:
        principal = self._principal(context, READ_SCOPE)
        return await run_listing.usage(self._db, principal, request)

    async def GetRun(
        self, request: conversation_service_pb2.GetRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, READ_SCOPE)
        return self._run(await self._runs.get(principal, request.id))

    async def CancelRun(
        self, request: conversation_service_pb2.CancelRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, WRITE_SCOPE)
        read = await self._runs.cancel(principal, request.id)
        _log_transition("run cancel requested", read.row)
        return self._run(read)

    async def ListModels(
        self, request: conversation_service_pb2.ListModelsRequest, context: Context
    ) -> conversation_service_pb2.ListModelsResponse:
        principal = self._principal(context, READ_SCOPE)
        return mapping.models_to_proto(self._rules.catalogue.usable_models(principal.company_id))

    async def ListRunInferenceJobs(
        self, request: conversation_service_pb2.ListRunInferenceJobsRequest, context: Context
    ) -> conversation_service_pb2.ListRunInferenceJobsResponse:
        principal = self._principal(context, READ_SCOPE)
        jobs = await self._runs.inference_jobs(principal, request.id)
        return conversation_service_pb2.ListRunInferenceJobsResponse(
            inference_jobs=[mapping.job_to_proto(job) for job in jobs]
        )

    async def StreamRunEvents(
        self, request: conversation_service_pb2.StreamRunEventsRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        principal = self._principal(context, READ_SCOPE)
        async for event in self._runs.events(principal, request.id, request.after_seq):
            yield self._present.event(event)


def _log_transition(what: str, row: RunRow) -> None:
    """One line per run transition the API makes (the runner logs the others), with its ids."""
    fields: dict[str, Any] = {
        "run_id": row.id,
        "conversation_id": row.conversation_id,
        "company_id": row.company_id,
        "user_id": row.user_id,
        "status": row.status,
    }
    trace_id = tracing.trace_id_of(row.traceparent)
    if trace_id is not None:
        fields["trace_id"] = trace_id
    log.info(what, extra=fields)
