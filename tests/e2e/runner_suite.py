"""The whole suite with a runner: api + runner + tooling + gateway on loopback, the runner's boto3
pointed at the scripted fake Bedrock and its chat-completions clusters (given a catalogue) at the
fake Chat Completions server. Helpers poll runs through the gateway with a deadline
(condition-based waiting, never a fixed sleep)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from gateway import app as gateway_app
from services.api import server as api_server
from services.common.catalogue import Catalogue
from services.common.config import Settings
from services.common.grpc_server import Running
from services.runner import server as runner_server
from services.tooling import server as tooling_server
from tests import catalogues
from tests.fakes.bedrock import FakeBedrock, aws_environ, serve_fake_bedrock
from tests.fakes.chat_completions import FakeChatCompletions, serve_fake_chat
from tests.internal import INTERNAL_SECRET

from .conftest import DOCS, SECRET, GatewayClient

TERMINAL = {"completed", "requires_action", "failed"}


@dataclass
class RunnerSuite(GatewayClient):
    """The whole suite, the runner included, with its providers pointed at the scripted fakes."""

    bedrock: FakeBedrock
    chat: FakeChatCompletions
    settings: Settings  # with the real api/store/tooling addresses
    api_port: int
    store_port: int
    tooling_port: int

    async def start_run(
        self, conversation_id: str, text: str | None = None, **body: Any
    ) -> dict[str, Any]:
        """A new run (202), with `text` as its user message."""
        if text is not None:
            body["payload"] = {"kind": "user_message", "text": text}
        r = await self.post_run(conversation_id, **body)
        assert r.status_code == 202, r.text
        return r.json()

    async def wait_run(
        self,
        run_id: str,
        statuses: set[str] = TERMINAL,
        deadline_s: float = 20.0,
        user: tuple[int, int] = (1, 1),
    ) -> dict[str, Any]:
        until = time.monotonic() + deadline_s
        seen: list[str] = []
        while True:
            run = await self.get_run(run_id, user)
            if not seen or seen[-1] != run["status"]:
                seen.append(run["status"])
            if run["status"] in statuses:
                return run
            assert time.monotonic() < until, f"run {run_id} stuck: {seen}"
            await asyncio.sleep(0.02)


def unique(text: str) -> str:
    """A first user message no other test uses (the fake's scripts are keyed on it)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


async def wait_until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Until `condition()` holds, or fail at the deadline (looked at every 10 ms)."""
    until = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < until, f"condition not met in {deadline_s} s"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def aws_env(url: str) -> AsyncIterator[None]:
    """What the runner's providers read: AWS for the fake Bedrock, the chat clusters' keys."""
    environ = {**aws_environ(url), **catalogues.ENVIRON}
    saved = {k: os.environ.get(k) for k in [*environ, "AWS_BEARER_TOKEN_BEDROCK"]}
    os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    os.environ.update(environ)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def start_runner(settings: Settings) -> Running:
    return await runner_server.start(settings, "127.0.0.1:0")


@asynccontextmanager
async def running_runner_suite(
    database_url: str,
    *,
    with_runner: bool = True,
    catalogue: Callable[[str], Catalogue] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunnerSuite]:
    """`catalogue`, given the fake Chat Completions server's URL, replaces the packaged one."""
    settings = Settings(
        **{
            "database_url": database_url,
            "jwt_secret": SECRET,
            "internal_secret": INTERNAL_SECRET,
            "docs_base_url": DOCS,
            "bedrock_max_attempts": 2,
            "chat_max_attempts": 2,
            "runner_lease_seconds": 5,
            **overrides,
        }
    )
    async with (
        serve_fake_bedrock() as bedrock,
        serve_fake_chat(catalogues.LOCAL_KEY) as chat,
        aws_env(bedrock.url),
    ):
        if catalogue is not None:
            settings = settings.with_overrides(catalogue=catalogue(chat.url))
        api = await api_server.start(settings, "127.0.0.1:0", "127.0.0.1:0")
        tooling = await tooling_server.start(settings, "127.0.0.1:0")
        settings = settings.with_overrides(
            api_addr=f"127.0.0.1:{api.port}",
            store_addr=f"127.0.0.1:{api.internal_port}",
            tooling_addr=f"127.0.0.1:{tooling.port}",
        )
        runner = await start_runner(settings) if with_runner else None
        gateway = await gateway_app.start(settings, settings.api_addr, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway.port}", timeout=30
            ) as http:
                yield RunnerSuite(
                    http, bedrock, chat, settings, api.port, api.internal_port, tooling.port
                )
        finally:
            await gateway.stop()
            if runner is not None:
                await runner.stop()
            await tooling.stop()
            await api.stop()
