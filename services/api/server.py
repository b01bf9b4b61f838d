"""The conversation store's gRPC server: checks that the database is migrated (`parley migrate`),
then serves ConversationService (public, behind the gateway) and StoreService (internal, for the
runner)."""

from __future__ import annotations

from agents.v1 import (
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    store_service_pb2,
    store_service_pb2_grpc,
)

from services.api import events
from services.api.db.engine import create_database
from services.api.db.migrate import require_head
from services.api.servicer import ConversationServicer
from services.api.store_servicer import StoreServicer
from services.common.config import Settings
from services.common.grpc_server import Running, start_server

SERVICE_NAMES = (
    conversation_service_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    store_service_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
)


async def start(settings: Settings, bind: str) -> Running:
    db = create_database(settings.database_url)
    hub = events.Hub()
    try:
        await require_head(db, settings.database_url)
        server, port = await start_server(
            bind,
            [
                (
                    conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server,
                    ConversationServicer(db, settings, hub),
                ),
                (
                    store_service_pb2_grpc.add_StoreServiceServicer_to_server,
                    StoreServicer(db, settings, hub),
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
