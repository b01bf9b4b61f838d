"""ConversationService: authenticate, call one operation, map the result. No decisions here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from agents.v1 import (
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    run_pb2,
)

from services.api import conversations, events, mapping, runs
from services.api.db.engine import Database
from services.api.validation import ConfigRules
from services.common.auth import READ_SCOPE, WRITE_SCOPE, Principal, verify_authorization
from services.common.config import Settings
from services.common.grpc_server import HTTP_STATUS_KEY, metadata_value

Context = grpc.aio.ServicerContext


class ConversationServicer(conversation_service_pb2_grpc.ConversationServiceServicer):
    def __init__(self, db: Database, settings: Settings, hub: events.Hub) -> None:
        self._db = db
        self._hub = hub
        self._secret = settings.jwt_secret
        self._docs_url = settings.docs_url
        self._rules = ConfigRules.from_settings(settings)

    def _principal(self, context: Context, scope: str) -> Principal:
        authorization = metadata_value(context, "authorization")
        return verify_authorization(self._secret, authorization, scope)

    async def CreateConversation(
        self, request: conversation_service_pb2.CreateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        principal = self._principal(context, WRITE_SCOPE)
        row = await conversations.create_conversation(self._db, self._rules, principal, request)
        return mapping.conversation_to_proto(row)

    async def ListConversations(
        self, request: conversation_service_pb2.ListConversationsRequest, context: Context
    ) -> conversation_service_pb2.ListConversationsResponse:
        page = await conversations.list_conversations(
            self._db, self._principal(context, READ_SCOPE), request
        )
        response = conversation_service_pb2.ListConversationsResponse(
            current_page=page.page,
            total_records=page.total_records,
            total_pages=page.total_pages,
            records=[mapping.conversation_to_proto(row) for row in page.rows],
        )
        if page.page > 1 and page.total_pages >= 1:
            response.prev_page = min(page.page - 1, page.total_pages)
        if page.page < page.total_pages:
            response.next_page = page.page + 1
        return response

    async def GetConversation(
        self, request: conversation_service_pb2.GetConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        principal = self._principal(context, READ_SCOPE)
        return mapping.conversation_to_proto(
            await conversations.get_conversation(self._db, principal, request.id)
        )

    async def ListMessages(
        self, request: conversation_service_pb2.ListMessagesRequest, context: Context
    ) -> conversation_service_pb2.ListMessagesResponse:
        page = await conversations.list_messages(
            self._db, self._principal(context, READ_SCOPE), request
        )
        response = conversation_service_pb2.ListMessagesResponse(
            current_version=page.current_version,
            messages=[mapping.message_to_proto(row) for row in page.rows],
        )
        if page.next_since is not None:
            response.next_since = page.next_since
        return response

    async def StartRun(
        self, request: conversation_service_pb2.StartRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, WRITE_SCOPE)
        # A runner waiting for work gets the new run leased in the same transaction.
        claimer = self._hub.waiting_claimer()
        try:
            started = await runs.start_run(
                self._db, self._hub, self._rules, principal, request, claimer
            )
        except BaseException:
            if claimer is not None:
                claimer.release()
            raise
        if claimer is not None:
            if started.claim is not None:
                claimer.hand(started.claim)
            else:
                claimer.release()  # a replay made no run
        elif not started.replayed:
            self._hub.runs_queued()
        if started.replayed:  # the original row, answered 200 instead of the method's 202
            await context.send_initial_metadata(((HTTP_STATUS_KEY, "200"),))
        return mapping.run_to_proto(started.row, started.current_name, self._docs_url)

    async def GetRun(
        self, request: conversation_service_pb2.GetRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, READ_SCOPE)
        row, live = await runs.get_run(self._db, principal, request.id)
        return mapping.run_to_proto(row, row["current_name"], self._docs_url, live)

    async def CancelRun(
        self, request: conversation_service_pb2.CancelRunRequest, context: Context
    ) -> run_pb2.Run:
        principal = self._principal(context, WRITE_SCOPE)
        row, live = await runs.cancel_run(
            self._db, self._hub, principal, request.id, self._docs_url
        )
        return mapping.run_to_proto(row, row["current_name"], self._docs_url, live)

    async def StreamRunEvents(
        self, request: conversation_service_pb2.StreamRunEventsRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        principal = self._principal(context, READ_SCOPE)
        async for event in runs.stream_run_events(
            self._db, self._hub, principal, request.id, request.after_seq
        ):
            yield event
