"""The conversation store's gRPC servers: checks that the database is at head (`parley migrate`
brings it there), builds the conversation history (its event log) and the run queue over it,
listens for the other api processes' notifications (PostgreSQL), then serves
ConversationService on the public listener (behind the gateway) and StoreService, for the runner
and operators, on an internal listener of its own (PARLEY_STORE_ADDR; internal credentials,
optional TLS)."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from agents.v1 import (
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    store_service_pb2,
    store_service_pb2_grpc,
)

from services.api.db.engine import create_database
from services.api.db.migrate import require_head
from services.api.event_log import EventLog
from services.api.presentation import Presenter
from services.api.run_queue import RunQueue
from services.api.runs import Runs
from services.api.servicer import ConversationServicer
from services.api.store_servicer import StoreServicer
from services.api.validation import ConfigRules
from services.common import internal_tls
from services.common.config import Settings
from services.common.grpc_server import Running, start_server

PUBLIC_SERVICE = conversation_service_pb2.DESCRIPTOR.services_by_name[
    "ConversationService"
].full_name
STORE_SERVICE = store_service_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name


async def start(settings: Settings, bind: str, store_bind: str) -> Running:
    """Serve the public API on `bind` and the StoreService on `store_bind`."""
    db = create_database(settings.database_url)
    log = EventLog(db)
    queue = RunQueue(log)
    rules = ConfigRules.from_settings(settings)
    present = Presenter(settings.docs_url)
    public = ConversationServicer(db, Runs(log, queue, rules), rules, settings.jwt_secret, present)
    servers: list[grpc.aio.Server] = []
    reporter: asyncio.Task[None] | None = None
    try:
        await require_head(db, settings.database_url)
        await log.notifications.start()  # hears the other api processes before serving
        public_server, port = await start_server(
            bind,
            [(conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server, public)],
            [PUBLIC_SERVICE],
        )
        servers.append(public_server)
        store, store_port = await start_server(
            store_bind,
            [
                (
                    store_service_pb2_grpc.add_StoreServiceServicer_to_server,
                    StoreServicer(log, queue, present, rules.catalogue),
                )
            ],
            [STORE_SERVICE],
            internal_secret=settings.internal_secret,
            tls=internal_tls.server_credentials(settings),
        )
        servers.append(store)
        reporter = asyncio.create_task(
            queue.report_pending(settings.catalogue.clusters), name="api-runs-pending"
        )
    except BaseException:
        for server in servers:
            await server.stop(None)
        await log.notifications.stop()
        await db.dispose()
        raise

    async def stop() -> None:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        await asyncio.gather(*(server.stop(grace=2) for server in servers))
        await log.notifications.stop()
        await db.dispose()

    return Running("api", port, stop, internal_port=store_port)
