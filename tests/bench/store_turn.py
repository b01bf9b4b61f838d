"""What the store's side of a turn costs, in-process and without gRPC: the store operations a
`one_tool` (or `no_tool`) turn makes, in the order the runner makes them, with the requests it
sends (a waiting claim takes each new run from its StartRun, a reader follows the run's events),
measured as CPU per turn of this process (the store thread included):

    .venv/bin/python -m tests.bench.store_turn [--turns 400] [--scenario one_tool] [--db URL]

Run it on two branches to compare their store work; `--profile FILE` writes py-spy's raw stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from agents.v1 import (
    conversation_service_pb2,
    message_pb2,
    run_pb2,
    store_service_pb2,
)
from google.protobuf import json_format, struct_pb2

from services.api import conversations, run_reports
from services.api.db.engine import create_database
from services.api.db.migrate import upgrade
from services.api.event_log import EventLog
from services.api.run_queue import RunQueue
from services.api.runs import Runs
from services.api.validation import ConfigRules
from services.common.auth import DEFAULT_SCOPE, Principal
from services.common.config import DEFAULT_DATA_PLANE_ID, Settings

RUNNER = "bench/1"
MCP_URL = "http://127.0.0.1:9/mcp"
DEFAULTS = {
    "model": "anthropic.claude-opus-4.6",
    "data_plane_id": DEFAULT_DATA_PLANE_ID,
    "execution_cluster": "shared",
    "max_iterations": 3,
    "max_tokens": 256,
    "temperature": 0.0,
}
REQUEST_JSON = orjson.dumps(
    {
        "modelId": "us.anthropic.claude-opus-4-6-v1",
        "messages": [{"role": "user", "content": [{"text": "What is 2 + 2?"}]}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.0},
    }
).decode()


def _arguments() -> struct_pb2.Struct:
    arguments = struct_pb2.Struct()
    arguments.update({"text": "ping"})
    return arguments


def _job(run_id: str, iteration: int, response: str) -> store_service_pb2.Iteration:
    now = time.time()
    job = run_pb2.InferenceJob(
        id=str(uuid.uuid4()),
        run_id=run_id,
        iteration=iteration,
        provider="bedrock",
        provider_model_id="us.anthropic.claude-opus-4-6-v1",
        request_json=REQUEST_JSON,
        response_json=response,
        usage=run_pb2.Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12),
    )
    job.started_at.FromNanoseconds(int(now * 1e9))
    job.completed_at.FromNanoseconds(int(now * 1e9) + 3_000_000)
    usage = run_pb2.Usage(
        prompt_tokens=10 * iteration, completion_tokens=2 * iteration, total_tokens=12 * iteration
    )
    return store_service_pb2.Iteration(job=job, run_usage=usage)


def _tool_use() -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(
        tool_use=message_pb2.ToolUseBlock(
            tool_use_id="tu_1", name="bench-echo", arguments=_arguments()
        )
    )


def _tool_result() -> message_pb2.ContentBlock:
    text = message_pb2.ContentBlock(text=message_pb2.TextBlock(text="echo:ping"))
    return message_pb2.ContentBlock(
        tool_result=message_pb2.ToolResultBlock(tool_use_id="tu_1", content=[text])
    )


def _text(text: str) -> message_pb2.ContentBlock:
    return message_pb2.ContentBlock(text=message_pb2.TextBlock(text=text))


class Turns:
    def __init__(self, url: str, scenario: str) -> None:
        self.url = url
        self.scenario = scenario
        self.db = create_database(url)
        self.log = EventLog(self.db)
        self.queue = RunQueue(self.log)
        catalogue = ConfigRules.from_settings(Settings(database_url=url)).catalogue
        self.rules = ConfigRules(catalogue, allow_private_networks=True)  # the fake MCP URL
        self.runs = Runs(self.log, self.queue, self.rules)
        self.principal = Principal(1, 1, frozenset({DEFAULT_SCOPE}))
        defaults = dict(DEFAULTS)
        if scenario == "one_tool":
            defaults["mcp_servers"] = [{"alias": "bench", "url": MCP_URL}]
        self.create = json_format.ParseDict(
            {"name": "bench", "defaults": defaults},
            conversation_service_pb2.CreateConversationRequest(),
        )

    async def turn(self) -> None:
        conversation = await conversations.create_conversation(
            self.db, self.rules, self.principal, self.create
        )
        claim = asyncio.create_task(self.queue.claim(RUNNER, 60, 10_000))
        await asyncio.sleep(0)  # the claim waits in line before the StartRun
        await asyncio.sleep(0)
        start = conversation_service_pb2.StartRunRequest(
            id=conversation.id, client_op_id=str(uuid.uuid4()), expected_version=0
        )
        start.payload.user_message.text = "What is 2 + 2?"
        started = await self.runs.start(self.principal, start, "")
        run_id = started.row.id
        follow = asyncio.create_task(self._follow(run_id))
        claimed = await claim
        assert claimed.run.id == run_id, "the waiting claim did not take the new run"
        if self.scenario == "one_tool":
            await self._one_tool(run_id)
        else:
            await self._no_tool(run_id)
        await follow

    async def _follow(self, run_id: str) -> None:
        async for _ in self.runs.events(self.principal, run_id, 0):
            pass

    async def _one_tool(self, run_id: str) -> None:
        use = _tool_use()
        call = run_pb2.RunEvent(
            type="tool.call",
            tool_use_id="tu_1",
            name="bench-echo",
            kind=run_pb2.RunEvent.TOOL_KIND_MCP,
            arguments=_arguments(),
        )
        assistant = message_pb2.Message(role=message_pb2.ROLE_ASSISTANT, content_blocks=[use])
        turn = run_pb2.LiveTurn(role=message_pb2.ROLE_ASSISTANT, content_blocks=[use])
        first = _job(run_id, 1, '{"stopReason":"tool_use"}')
        await run_reports.append_run_events(
            self.log,
            store_service_pb2.AppendRunEventsRequest(
                run_id=run_id,
                runner_id=RUNNER,
                events=[run_pb2.RunEvent(type="turn", turn=turn), call],
                iteration=first,
            ),
        )
        result = _tool_result()
        tool = message_pb2.Message(role=message_pb2.ROLE_TOOL, content_blocks=[result])
        result_event = run_pb2.RunEvent(
            type="tool.result",
            tool_use_id="tu_1",
            content=run_pb2.ContentBlockList(values=result.tool_result.content),
        )
        tool_turn = run_pb2.LiveTurn(
            turn_index=1, role=message_pb2.ROLE_TOOL, content_blocks=[result]
        )
        await run_reports.append_run_events(
            self.log,
            store_service_pb2.AppendRunEventsRequest(
                run_id=run_id,
                runner_id=RUNNER,
                events=[result_event, run_pb2.RunEvent(type="turn", turn=tool_turn)],
            ),
        )
        second = _job(run_id, 2, '{"stopReason":"end_turn"}')
        await self._commit(run_id, [assistant, tool], 2, [first, second])

    async def _no_tool(self, run_id: str) -> None:
        await self._commit(run_id, [], 0, [_job(run_id, 1, '{"stopReason":"end_turn"}')])

    async def _commit(
        self,
        run_id: str,
        earlier: list[message_pb2.Message],
        turn_index: int,
        iterations: list[store_service_pb2.Iteration],
    ) -> None:
        final = "done: echo:ping"
        reply = message_pb2.Message(role=message_pb2.ROLE_ASSISTANT, content_blocks=[_text(final)])
        live = run_pb2.LiveTurn(
            turn_index=turn_index, role=message_pb2.ROLE_ASSISTANT, content_blocks=[_text(final)]
        )
        last = iterations[-1]
        outcome = run_pb2.Run(
            status=run_pb2.RUN_STATUS_COMPLETED,
            iterations_used=len(iterations),
            usage=last.run_usage,
            submitted_inference_job_ids=[i.job.id for i in iterations],
            final_text=final,
        )
        delta = run_pb2.RunEvent(type="message.delta", turn_index=turn_index, text=final, attempt=1)
        await run_reports.commit_run(
            self.log,
            self.rules.catalogue,
            store_service_pb2.CommitRunRequest(
                run_id=run_id,
                runner_id=RUNNER,
                run=outcome,
                turns=[*earlier, reply],
                iteration=last,
                events=[delta, run_pb2.RunEvent(type="turn", turn=live)],
            ),
        )


async def main(args: argparse.Namespace) -> None:
    url = (
        args.db
        or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='parley-turn-')) / 'store.db'}"
    )
    await upgrade(url)
    turns = Turns(url, args.scenario)
    try:
        for _ in range(min(50, args.turns)):
            await turns.turn()
        spy = None
        if args.profile:
            import subprocess

            from tests.bench import stack

            spy = subprocess.Popen(
                [str(stack.BIN / "py-spy"), "record", "--pid", str(os.getpid()), "--rate", "1000",
                 "--format", "raw", "--output", args.profile, "--gil", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.turns):
            await turns.turn()
        cpu_ms = (time.process_time() - cpu) / args.turns * 1000
        wall_ms = (time.perf_counter() - wall) / args.turns * 1000
        if spy is not None:
            import signal

            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        print(f"{args.scenario}: {cpu_ms:.3f} ms CPU per turn, {wall_ms:.3f} ms wall", flush=True)
    finally:
        await turns.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--scenario", choices=("one_tool", "no_tool"), default="one_tool")
    parser.add_argument("--db", default=None, help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--profile", default=None, help="py-spy raw stacks to this file")
    asyncio.run(main(parser.parse_args()))
