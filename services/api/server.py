"""The conversation store's gRPC server: migrates the database, builds the conversation history
(its event log) and the run queue over it, and serves ConversationService (public, behind the
gateway) and StoreService (internal, for the runner)."""

from __future__ import annotations

from agents.v1 import (
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    store_service_pb2,
    store_service_pb2_grpc,
)

from services.api.db.engine import create_database, upgrade_head
from services.api.event_log import EventLog
from services.api.presentation import Presenter
from services.api.run_queue import RunQueue
from services.api.runs import Runs
from services.api.servicer import ConversationServicer
from services.api.store_servicer import StoreServicer
from services.api.validation import ConfigRules
from services.common.config import Settings
from services.common.grpc_server import Running, start_server

SERVICE_NAMES = (
    conversation_service_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    store_service_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
)


async def start(settings: Settings, bind: str) -> Running:
    db = create_database(settings.database_url)
    log = EventLog(db)
    queue = RunQueue(log)
    rules = ConfigRules.from_settings(settings)
    present = Presenter(settings.docs_url)
    public = ConversationServicer(db, Runs(log, queue, rules), rules, settings.jwt_secret, present)
    try:
        await upgrade_head(db)
        server, port = await start_server(
            bind,
            [
                (conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server, public),
                (
                    store_service_pb2_grpc.add_StoreServiceServicer_to_server,
                    StoreServicer(log, queue, present),
                ),
            ],
            SERVICE_NAMES,
        )
    except BaseException:
        await db.dispose()
        raise

    async def stop() -> None:
        await server.stop(grace=2)
        await db.dispose()

    return Running("api", port, stop)
