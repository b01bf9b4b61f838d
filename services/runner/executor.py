"""Runs `loop.py` for one claimed run: carries out each action through the provider, the tool
router and the store, publishes live turns, honours cancellation, and commits the outcome.

Cancellation and a lost lease interrupt the run's current wait (a model or tool call) at once:
every external wait races the run's `interrupt` event. A cancelled run is committed failed with
AgentLoopCancelled and its partial work; a run whose lease was lost is left alone (another runner
owns it now).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import orjson
from agents.v1 import config_pb2, message_pb2, run_pb2, store_service_pb2
from google.protobuf import json_format, timestamp_pb2

from services.common import incidents
from services.common.catalogue import Catalogue
from services.common.contract import CANCELLED_MESSAGE, wire_name
from services.common.metrics import (
    RUNNER_ITERATIONS,
    RUNNER_MODEL_SECONDS,
    RUNNER_RUNS,
    RUNNER_TOKENS,
    RUNNER_TOOL_SECONDS,
)
from services.runner import loop, titling
from services.runner.clients import StoreClient, ToolRouterClient, is_lease_lost
from services.runner.output import OutputDecoder
from services.runner.providers.base import (
    ForcedTool,
    ModelRequest,
    Provider,
    ProviderError,
    TokenUsage,
    ToolSpec,
)

log = logging.getLogger("parley.runner")
T = TypeVar("T")

CANCELLED = incidents.AGENT_LOOP_CANCELLED
RUNNER_LOST = incidents.AGENT_LOOP_RUNNER_LOST
MAX_ATTEMPTS = 3  # claims of one run before it is failed with AgentLoopRunnerLost


class Interrupted(Exception):
    """The run was cancelled or its lease was lost while waiting."""


@dataclass
class RunHandle:
    """What the worker holds for a run in flight: how to interrupt it."""

    run_id: str
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    lease_lost: bool = False

    def cancel(self) -> None:
        self.cancel_requested = True
        self.interrupt.set()

    def lose_lease(self) -> None:
        self.lease_lost = True
        self.interrupt.set()


class RunFailure(Exception):
    """A failure before the loop starts (configuration, discovery)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Run:
    """One run's immutable inputs plus its job ids."""

    claim: store_service_pb2.ClaimRunResponse
    cluster: str
    provider: Provider
    provider_model_id: str
    tools: tuple[ToolSpec, ...]
    forced: ForcedTool | None
    output_schema: dict[str, Any] | None
    job_ids: list[str]
    # The last model call, recorded with the next store write (its turn, or the commit).
    unrecorded: store_service_pb2.Iteration | None = None

    @property
    def run(self) -> run_pb2.Run:
        return self.claim.run


def _now_ts() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def _usage(usage: TokenUsage) -> run_pb2.Usage:
    return run_pb2.Usage(
        prompt_tokens=usage.prompt, completion_tokens=usage.completion, total_tokens=usage.total
    )


class Executor:
    def __init__(
        self,
        store: StoreClient,
        tools: ToolRouterClient,
        providers: dict[str, Provider],  # by the name of the execution cluster they serve
        runner_id: str,
        catalogue: Catalogue,
    ) -> None:
        self._store = store
        self._tools = tools
        self._providers = providers
        self._runner_id = runner_id
        self._catalogue = catalogue
        self._background: set[asyncio.Task[None]] = set()

    # --- entry point --------------------------------------------------------------------------

    async def execute(self, claim: store_service_pb2.ClaimRunResponse, handle: RunHandle) -> None:
        run = claim.run
        self._maybe_title(claim)
        decoder = OutputDecoder(
            json_format.MessageToDict(run.effective_config.output_format_schema)
        )
        state = loop.LoopState(
            config=loop.LoopConfig(
                max_iterations=run.effective_config.max_iterations,
                mcp_tools=frozenset(),
                caller_tools=frozenset(t.name for t in run.effective_config.tools),
                decode=decoder.decode,
            ),
            turns=tuple(
                message_pb2.Message(role=t.role, content_blocks=t.content_blocks)
                for t in claim.resumed_turns
            ),
            iterations=len(run.submitted_inference_job_ids),
            usage=loop.TokenUsage(
                claim.resumed_usage.prompt_tokens, claim.resumed_usage.completion_tokens
            ),
        )
        if claim.cancel_requested or handle.cancel_requested:
            event: loop.Event = loop.Stopped(CANCELLED, CANCELLED_MESSAGE)
        elif claim.attempt > MAX_ATTEMPTS:
            event = loop.Stopped(
                RUNNER_LOST,
                f"the run's runner was lost {claim.attempt - 1} times; giving up on it",
            )
        else:
            event = loop.Start()
        ctx: _Run | None = None
        try:
            if isinstance(event, loop.Start):
                try:
                    ctx = await self._prepare(claim, decoder, handle)
                except RunFailure as failure:
                    event = loop.Stopped(failure.code, failure.message)
                except Interrupted:
                    event = self._interrupted_event(handle)
                if ctx is not None:
                    mcp = frozenset(t.name for t in ctx.tools) - state.config.caller_tools
                    state = replace(state, config=replace(state.config, mcp_tools=mcp))
            job_ids = ctx.job_ids if ctx else list(run.submitted_inference_job_ids)
            while True:
                state, actions = loop.step(state, event)
                # Publish actions (new turns, in order), then at most one effect.
                effect = (
                    actions[-1] if actions and not isinstance(actions[-1], loop.Publish) else None
                )
                published = [a for a in actions if isinstance(a, loop.Publish)]
                if isinstance(effect, loop.Finish | loop.Pause | loop.Fail):
                    # The terminal write carries the last turns and job: one call, not three.
                    await self._commit(run, state, effect, job_ids, ctx, published)
                    return
                for action in published:
                    await self._store.append_live_turn(
                        run.id, self._runner_id, _live(action), _take(ctx)
                    )
                if isinstance(effect, loop.CallModel):
                    assert ctx is not None
                    event = await self._call_model(ctx, state, effect, handle)
                elif isinstance(effect, loop.CallTools):
                    assert ctx is not None
                    event = await self._call_tools(ctx, effect, handle)
                else:
                    raise RuntimeError(f"the loop gave no next step after {actions}")
        except grpc.aio.AioRpcError as exc:
            if is_lease_lost(exc) or handle.lease_lost:
                log.warning("run %s: lease lost; another runner owns it now", run.id)
                return
            raise
        except _LeaseLost:
            log.warning("run %s: lease lost; another runner owns it now", run.id)

    # --- preparation --------------------------------------------------------------------------

    async def _prepare(
        self, claim: store_service_pb2.ClaimRunResponse, decoder: OutputDecoder, handle: RunHandle
    ) -> _Run:
        run = claim.run
        cfg = run.effective_config
        cluster = self._catalogue.clusters.get(cfg.execution_cluster)
        provider = self._providers.get(cfg.execution_cluster)
        if cluster is None or provider is None:
            raise RunFailure(
                incidents.AGENT_LOOP_INVALID_EFFECTIVE_CONFIG,
                f"execution cluster {cfg.execution_cluster!r} is not one this runner serves "
                "(is it in the runner's catalogue?)",
            )
        provider_model_id = self._catalogue.provider_model_id(cfg.model, cluster)
        if provider_model_id is None:
            raise RunFailure(
                incidents.AGENT_LOOP_INVALID_EFFECTIVE_CONFIG,
                f"model {cfg.model!r} has no id on execution cluster {cluster.name!r} "
                f"({cluster.provider}) in the runner's catalogue",
            )
        tools: list[ToolSpec] = []
        if cfg.mcp_servers:
            try:
                discovered = await self._race(
                    self._tools.discover(list(cfg.mcp_servers), run.company_id, run.user_id),
                    handle,
                )
            except grpc.aio.AioRpcError as exc:
                raise RunFailure(
                    incidents.MCP_DISCOVERY_FAILED, f"tool discovery failed: {exc.details()}"
                ) from None
            tools += [
                ToolSpec(t.wire_name, t.description, orjson.loads(t.input_schema_json or "{}"))
                for t in discovered
            ]
        tools += [
            ToolSpec(t.name, t.description, json_format.MessageToDict(t.input_schema))
            for t in cfg.tools
        ]
        forced = None
        if run.HasField("tool_choice") and tools:
            kind = run.tool_choice.WhichOneof("choice")
            if kind == "any":
                forced = ForcedTool("any")
            elif kind == "specific_tool":
                choice = run.tool_choice.specific_tool
                name = (
                    wire_name(choice.mcp_alias, choice.name)
                    if choice.HasField("mcp_alias")
                    else choice.name
                )
                forced = ForcedTool("tool", name)
            elif kind == "auto":
                forced = ForcedTool("auto")
        return _Run(
            claim,
            cluster.name,
            provider,
            provider_model_id,
            tuple(tools),
            forced,
            # text mode asks for prose: no outputConfig (see output.py)
            None if decoder.text_mode else decoder.schema,
            list(run.submitted_inference_job_ids),
        )

    def _maybe_title(self, claim: store_service_pb2.ClaimRunResponse) -> None:
        run = claim.run
        if run.live.HasField("current_name") or claim.history:  # a resumed run titles too
            return
        texts = [b.text.text for b in claim.input.content_blocks if b.WhichOneof("block") == "text"]
        if claim.input.role != message_pb2.ROLE_USER or not texts:
            return
        task = asyncio.create_task(
            titling.name_conversation(
                self._store, run.conversation_id, texts[0], self._titler(run.effective_config)
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _titler(self, cfg: config_pb2.AgentConfig) -> titling.Titler | None:
        """The model that names the run's conversation, on the run's own cluster."""
        cluster = self._catalogue.clusters.get(cfg.execution_cluster)
        provider = self._providers.get(cfg.execution_cluster)
        if cluster is None or provider is None:
            return None
        chosen = self._catalogue.titling_model(cluster, cfg.model)
        if chosen is None:
            return None
        return titling.Titler(cluster.name, provider, chosen[1], cfg.data_plane_id)

    # --- actions ------------------------------------------------------------------------------

    async def _race(self, work: Awaitable[T], handle: RunHandle) -> T:
        """`work`, unless the run is interrupted first (then the work is cancelled)."""
        task = asyncio.ensure_future(work)
        interrupted = asyncio.ensure_future(handle.interrupt.wait())
        try:
            done, _ = await asyncio.wait({task, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            interrupted.cancel()
            raise
        if task in done:
            interrupted.cancel()
            return task.result()
        task.cancel()
        raise Interrupted()

    def _interrupted_event(self, handle: RunHandle) -> loop.Event:
        """The event for an interrupted wait: Stopped when cancelled; a lost lease ends the run
        here (another runner owns it)."""
        if handle.lease_lost:
            raise _LeaseLost() from None
        return loop.Stopped(CANCELLED, CANCELLED_MESSAGE)

    async def _call_model(
        self, ctx: _Run, state: loop.LoopState, action: loop.CallModel, handle: RunHandle
    ) -> loop.Event:
        run = ctx.run
        cfg = run.effective_config
        request = ModelRequest(
            provider_model_id=ctx.provider_model_id,
            system_prompt=ctx.claim.system_prompt,
            messages=(*ctx.claim.history, ctx.claim.input, *state.turns),
            tools=ctx.tools,
            tool_choice=ctx.forced if action.first else None,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            output_schema=ctx.output_schema,
        )
        prepared = ctx.provider.prepare(cfg.data_plane_id, request)
        job = store_service_pb2.InferenceJob(
            id=str(uuid.uuid4()),
            run_id=run.id,
            iteration=action.iteration,
            provider=ctx.provider.name,
            provider_model_id=ctx.provider_model_id,
            request_json=prepared.request_json,
            started_at=_now_ts(),
        )
        started = time.perf_counter()
        event: loop.Event
        usage = state.usage
        try:
            reply = await self._race(ctx.provider.converse(prepared), handle)
        except ProviderError as exc:
            job.error_type, job.error_message = exc.code, exc.message
            event = loop.ModelFailed(exc.code, exc.message)
        except Interrupted:
            event = self._interrupted_event(handle)
            job.error_type, job.error_message = CANCELLED, "abandoned: the run was cancelled"
        else:
            job.response_json = reply.raw_response
            job.usage.CopyFrom(_usage(reply.usage))
            usage = usage + reply.usage
            event = loop.ModelReplied(reply)
        RUNNER_MODEL_SECONDS.labels(ctx.cluster, ctx.provider.name, job.error_type or "ok").observe(
            time.perf_counter() - started
        )
        job.completed_at.CopyFrom(_now_ts())
        if ctx.unrecorded is not None:
            raise RuntimeError("the previous model call was never recorded")
        ctx.unrecorded = store_service_pb2.Iteration(job=job, run_usage=_usage(usage))
        ctx.job_ids.append(job.id)
        return event

    async def _call_tools(self, ctx: _Run, action: loop.CallTools, handle: RunHandle) -> loop.Event:
        run = ctx.run
        servers = list(run.effective_config.mcp_servers)

        async def call(use: message_pb2.ToolUseBlock) -> message_pb2.ToolResultBlock:
            started = time.perf_counter()
            arguments = orjson.dumps(json_format.MessageToDict(use.arguments)).decode()
            try:
                result = await self._tools.call(
                    servers, run.company_id, run.user_id, use, arguments
                )
            except grpc.aio.AioRpcError as exc:
                RUNNER_TOOL_SECONDS.labels("failed").observe(time.perf_counter() - started)
                return loop.error_result(
                    use, f"the tool call failed: {exc.details() or exc.code().name}"
                )
            outcome = "error" if result.is_error else "ok"
            RUNNER_TOOL_SECONDS.labels(outcome).observe(time.perf_counter() - started)
            return result

        try:
            results = await self._race(asyncio.gather(*(call(use) for use in action.calls)), handle)
        except Interrupted:
            return self._interrupted_event(handle)
        return loop.ToolsReturned(tuple(results))

    async def _commit(
        self,
        run: run_pb2.Run,
        state: loop.LoopState,
        action: loop.Action,
        job_ids: list[str],
        ctx: _Run | None,
        published: list[loop.Publish],
    ) -> None:
        outcome = run_pb2.Run(
            iterations_used=len(job_ids),
            usage=_usage(state.usage),
            submitted_inference_job_ids=job_ids,
        )
        if isinstance(action, loop.Finish):
            outcome.status = run_pb2.RUN_STATUS_COMPLETED
            if action.text is not None:
                outcome.final_text = action.text
            else:
                json_format.ParseDict(action.structured, outcome.final_structured_output)
        elif isinstance(action, loop.Pause):
            outcome.status = run_pb2.RUN_STATUS_REQUIRES_ACTION
            outcome.pending_tool_calls.extend(
                run_pb2.PendingToolCall(
                    tool_use_id=use.tool_use_id, name=use.name, arguments=use.arguments
                )
                for use in action.pending
            )
        elif isinstance(action, loop.Fail):
            outcome.status = run_pb2.RUN_STATUS_FAILED
            outcome.error.CopyFrom(run_pb2.RunError(type=action.code, message=action.message))
        else:  # pragma: no cover - exhaustive
            raise TypeError(action)
        await self._store.commit(
            run.id,
            self._runner_id,
            outcome,
            list(state.turns),
            _take(ctx),
            [_live(p) for p in published],
        )
        status = {
            run_pb2.RUN_STATUS_COMPLETED: "completed",
            run_pb2.RUN_STATUS_REQUIRES_ACTION: "requires_action",
            run_pb2.RUN_STATUS_FAILED: "failed",
        }[outcome.status]
        RUNNER_RUNS.labels(run.effective_config.execution_cluster, status, outcome.error.type).inc()
        RUNNER_ITERATIONS.observe(len(job_ids))
        RUNNER_TOKENS.labels("prompt").inc(state.usage.prompt)
        RUNNER_TOKENS.labels("completion").inc(state.usage.completion)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()


class _LeaseLost(Exception):
    pass


def _take(ctx: _Run | None) -> store_service_pb2.Iteration | None:
    """The model call not recorded yet (it goes with the next store write), once."""
    if ctx is None:
        return None
    iteration, ctx.unrecorded = ctx.unrecorded, None
    return iteration


def _live(action: loop.Publish) -> run_pb2.LiveTurn:
    return run_pb2.LiveTurn(
        turn_index=action.turn_index,
        role=action.turn.role,
        content_blocks=action.turn.content_blocks,
    )
