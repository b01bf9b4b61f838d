"""Automatic titling: the first run on an unnamed conversation names it from the first user
message, in the background. A small catalogued model on the run's own cluster is asked for a short
title ("Tomorrow Afternoon Meeting"), bounded in time and tokens; when it fails or answers no
title (nothing, a sentence, a cut-off answer), the message's first words are the title. It never
delays or fails the run. The store's write is conditional (only while the name is null), so a
user-set name always wins, and it never touches the version or the messages."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Final

import grpc
from agents.v1 import message_pb2

from services.common.metrics import RUNNER_TITLES
from services.runner.clients import StoreClient
from services.runner.providers.base import ModelRequest, Provider, ProviderError

log = logging.getLogger("parley.runner.titling")
MAX_TITLE: Final = 60
MAX_TITLE_WORDS: Final = 10
TITLE_TIMEOUT_S: Final = 5.0
TITLE_MAX_TOKENS: Final = 20
MESSAGE_CHARS: Final = 2000  # of the first message shown to the model
# The whole system prompt of a title request: how providers' fakes tell title requests apart.
TITLE_PROMPT: Final = (
    "You name conversations. The user's message below is the first message of a conversation. "
    "Reply with a short title for the conversation: two to six words in Title Case, with no "
    'quotes, no punctuation at the end and nothing else. For example, for "Find me a meeting '
    'time for tomorrow afternoon." reply: Tomorrow Afternoon Meeting'
)
_QUOTES = "\"'`“”‘’«»"


@dataclass(frozen=True)
class Titler:
    """The model that names conversations of one run's cluster."""

    cluster: str
    provider: Provider
    provider_model_id: str
    data_plane_id: str


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


def clean_title(answer: str) -> str | None:
    """The model's answer as a title, or None when it is none: empty, more than one line, too
    long, or without a letter or digit."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    title = re.sub(r"^(title\s*:\s*)", "", lines[0], flags=re.IGNORECASE)
    title = title.strip().strip("#*_").strip().strip(_QUOTES).strip()
    title = re.sub(r"[\s.,;:!?]+$", "", title)
    if not title or len(title) > MAX_TITLE or len(title.split()) > MAX_TITLE_WORDS:
        return None
    if not any(ch.isalnum() for ch in title):
        return None
    return title


async def model_title(titler: Titler, message: str) -> str | None:
    """The model's title for `message`, or None when it fails, is slow or answers no title."""
    request = ModelRequest(
        provider_model_id=titler.provider_model_id,
        system_prompt=TITLE_PROMPT,
        messages=(
            message_pb2.Message(
                role=message_pb2.ROLE_USER,
                content_blocks=[
                    message_pb2.ContentBlock(
                        text=message_pb2.TextBlock(text=message[:MESSAGE_CHARS])
                    )
                ],
            ),
        ),
        tools=(),
        tool_choice=None,
        max_tokens=TITLE_MAX_TOKENS,
        temperature=0.0,
        output_schema=None,
    )
    try:
        async with asyncio.timeout(TITLE_TIMEOUT_S):
            reply = await titler.provider.converse(
                titler.provider.prepare(titler.data_plane_id, request)
            )
    except (ProviderError, TimeoutError) as exc:
        log.info("the titling model of cluster %s gave no title: %s", titler.cluster, exc)
        return None
    if reply.stop_reason == "max_tokens":
        return None  # cut off: not a short title
    return clean_title("".join(b.text.text for b in reply.content if b.HasField("text")))


async def name_conversation(
    store: StoreClient, conversation_id: str, message: str, titler: Titler | None
) -> None:
    title = await model_title(titler, message) if titler is not None else None
    RUNNER_TITLES.labels(titler.cluster if titler else "", "model" if title else "fallback").inc()
    title = title or title_from(message)
    if not title:
        return
    try:
        await store.set_generated_name(conversation_id, title)
    except grpc.aio.AioRpcError as exc:  # titling is best effort; the run does not depend on it
        log.warning("titling conversation %s failed: %s", conversation_id, exc.details())
