"""Automatic titling: the first run on an unnamed conversation names it from the first user
message, asynchronously. Deterministic (no model call): the message's first words. The store's
write is conditional (only while the name is null), so a user-set name always wins, and it never
touches the version or the messages."""

from __future__ import annotations

import logging
import re

import grpc

from services.runner.clients import StoreClient

log = logging.getLogger("parley.runner.titling")
MAX_TITLE = 60


def title_from(message: str) -> str:
    """The first line's words up to MAX_TITLE characters, without trailing punctuation."""
    line = next((part for part in message.strip().splitlines() if part.strip()), "")
    words = line.split()
    title = ""
    for word in words:
        candidate = f"{title} {word}".strip()
        if len(candidate) > MAX_TITLE:
            title = (title or word[:MAX_TITLE]).rstrip() + "…"
            break
        title = candidate
    return re.sub(r"[\s.,;:!?]+$", "", title) if not title.endswith("…") else title


async def name_conversation(store: StoreClient, conversation_id: str, message: str) -> None:
    title = title_from(message)
    if not title:
        return
    try:
        await store.set_generated_name(conversation_id, title)
    except grpc.aio.AioRpcError as exc:  # titling is best effort; the run does not depend on it
        log.warning("titling conversation %s failed: %s", conversation_id, exc.details())
