"""Runs `loop.py` for one claimed run: carries out each action through the provider, the tool
router and the store, streams the model's deltas and publishes live turns and tool events,
honours cancellation, and commits the outcome.

Each step of the loop costs at most one store write, made before its effect: the turns it
published (with the tool.result events of tool turns), the tool.call events of the calls about to
be made (durable before any is made: a resumed run never makes them again), the last model call,
and the deltas still in the run's outbox (outbox.py). A streamed model call's deltas go to the
outbox as they arrive. A terminal step's write is the commit.

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
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import orjson
from agents.v1 import config_pb2, message_pb2, run_pb2, store_service_pb2
from google.protobuf import json_format, timestamp_pb2

from services.common import incidents, tracing
from services.common.catalogue import Catalogue
from services.common.contract import (
    CANCELLED_MESSAGE,
    approval_policy,
    split_wire_name,
    wire_name,
)
from services.common.metrics import (
    RUNNER_ITERATIONS,
    RUNNER_MODEL_SECONDS,
    RUNNER_RUNS,
    RUNNER_TIME_TO_FIRST_TOKEN,
    RUNNER_TOOL_SECONDS,
)
from services.runner import loop, run_log, run_trace, titling, usage_metrics
from services.runner.clients import StoreClient, ToolRouterClient, is_lease_lost
from services.runner.outbox import (
    Outbox,
    restarted_event,
    tool_call_event,
    tool_result_event,
    turn_event,
)
from services.runner.output import OutputDecoder, decoder_of
from services.runner.providers.base import (
    ForcedTool,
    ModelRequest,
    Provider,
    ProviderError,
    ReplyDelta,
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
    trace: run_trace.RunTrace = run_trace.OFF  # the claim's spans (run_trace.py)
    traceparent: str = ""  # the run's trace, for its log lines

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
    needs_approval: frozenset[str]  # MCP wire names held for approval
    outbox: Outbox
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
        prompt_tokens=usage.prompt,
        completion_tokens=usage.completion,
        total_tokens=usage.total,
        cache_read_input_tokens=usage.cache_read,
        cache_write_input_tokens=usage.cache_write,
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
        handle.trace, handle.traceparent = run_trace.start(claim), claim.traceparent
        run_log.claimed(claim)
        usage_metrics.claimed(claim)
        try:
            await self._execute(claim, handle)
        finally:
            handle.trace.end()

    async def _execute(self, claim: store_service_pb2.ClaimRunResponse, handle: RunHandle) -> None:
        run = claim.run
        self._maybe_title(claim)
        decoder = decoder_of(run.effective_config.output_format_schema)
        outbox = Outbox(
            lambda events: self._store.append_run_events(run.id, self._runner_id, events, None),
            lambda _failure: handle.interrupt.set(),  # the executor raises outbox.failure
        )
        if claim.partial_turn_lost:  # the lost holder's deltas of the next turn: superseded
            outbox.add(restarted_event(len(claim.resumed_turns), claim.attempt))
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
            usage=TokenUsage(
                claim.resumed_usage.prompt_tokens,
                claim.resumed_usage.completion_tokens,
                claim.resumed_usage.cache_read_input_tokens,
                claim.resumed_usage.cache_write_input_tokens,
            ),
            approved=tuple(loop.Approved(a.use, a.approval) for a in claim.approved_calls),
            started=frozenset(claim.started_tool_use_ids),
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
                    ctx = await self._prepare(claim, decoder, handle, outbox)
                except RunFailure as failure:
                    event = loop.Stopped(failure.code, failure.message)
                except Interrupted:
                    event = self._interrupted_event(handle)
                if ctx is not None:
                    mcp = frozenset(t.name for t in ctx.tools) - state.config.caller_tools
                    config = replace(state.config, mcp_tools=mcp, needs_approval=ctx.needs_approval)
                    state = replace(state, config=config)
            job_ids = ctx.job_ids if ctx else list(run.submitted_inference_job_ids)
            while True:
                state, actions = loop.step(state, event)
                # Publish actions (new turns, in order), then at most one effect.
                effect = (
                    actions[-1] if actions and not isinstance(actions[-1], loop.Publish) else None
                )
                events = _events_of(actions)
                await outbox.settle()  # a flush in flight lands first: the log keeps order
                events = outbox.take() + events
                if isinstance(effect, loop.Finish | loop.Pause | loop.Fail):
                    # The terminal write carries the last events and job: one call.
                    await self._commit(run, state, effect, job_ids, ctx, events, handle)
                    return
                iteration = _take(ctx)
                if events or iteration is not None:
                    await self._store.append_run_events(run.id, self._runner_id, events, iteration)
                if isinstance(effect, loop.CallModel):
                    assert ctx is not None
                    handle.trace.iteration(effect.iteration)
                    event = await self._call_model(ctx, state, effect, handle)
                elif isinstance(effect, loop.CallTools):
                    assert ctx is not None
                    event = await self._call_tools(ctx, effect, handle)
                else:
                    raise RuntimeError(f"the loop gave no next step after {actions}")
        except grpc.aio.AioRpcError as exc:
            if is_lease_lost(exc) or handle.lease_lost:
                usage_metrics.lease_lost(claim)
                run_log.lease_lost(claim)
                return
            raise
        except _LeaseLost:
            usage_metrics.lease_lost(claim)
            run_log.lease_lost(claim)
        finally:
            outbox.close()

    # --- preparation --------------------------------------------------------------------------

    async def _prepare(
        self,
        claim: store_service_pb2.ClaimRunResponse,
        decoder: OutputDecoder,
        handle: RunHandle,
        outbox: Outbox,
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
        needs_approval = _needing_approval(cfg.mcp_servers, [t.name for t in tools])
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
            needs_approval,
            outbox,
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
        thinking = cfg.thinking.budget_tokens if cfg.thinking.enabled else None
        request = ModelRequest(
            provider_model_id=ctx.provider_model_id,
            system_prompt=ctx.claim.system_prompt,
            messages=(*ctx.claim.history, ctx.claim.input, *state.turns),
            tools=ctx.tools,
            tool_choice=ctx.forced if action.first else None,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            output_schema=ctx.output_schema,
            stream=cfg.stream if cfg.HasField("stream") else True,
            thinking_budget=thinking,
            prompt_caching=cfg.prompt_caching if cfg.HasField("prompt_caching") else True,
        )
        prepared = ctx.provider.prepare(cfg.data_plane_id, request)
        job = run_pb2.InferenceJob(
            id=str(uuid.uuid4()),
            run_id=run.id,
            iteration=action.iteration,
            provider=ctx.provider.name,
            provider_model_id=ctx.provider_model_id,
            request_json=prepared.request_json,
            started_at=_now_ts(),
        )
        started = time.perf_counter()
        turn_index, attempt, first = len(state.turns), ctx.claim.attempt, [True]

        def delta(piece: ReplyDelta) -> None:
            if first[0]:
                first[0] = False
                RUNNER_TIME_TO_FIRST_TOKEN.labels(ctx.cluster, ctx.provider.name).observe(
                    time.perf_counter() - started
                )
            ctx.outbox.delta(piece.kind, turn_index, piece.block_index, piece.text, attempt)

        event: loop.Event
        usage = state.usage
        with handle.trace.model_call(ctx.provider.name, request) as span:
            try:
                reply = await self._race(ctx.provider.converse(prepared, delta), handle)
            except ProviderError as exc:
                job.error_type, job.error_message = exc.code, exc.message
                event = loop.ModelFailed(exc.code, exc.message)
                tracing.fail(span, exc.code, exc.message)
                run_log.model_failed(ctx.claim, ctx.cluster, exc.code, exc.message)
            except Interrupted:
                if ctx.outbox.failure is not None:  # a delta flush failed: as any failed write
                    raise ctx.outbox.failure from None
                event = self._interrupted_event(handle)
                job.error_type, job.error_message = CANCELLED, "abandoned: the run was cancelled"
            else:
                job.response_json = reply.raw_response
                job.usage.CopyFrom(_usage(reply.usage))
                usage = usage + reply.usage
                event = loop.ModelReplied(reply)
                handle.trace.model_replied(span, reply)
        model = cfg.model
        RUNNER_MODEL_SECONDS.labels(
            ctx.cluster, ctx.provider.name, model, job.error_type or "ok"
        ).observe(time.perf_counter() - started)
        if not job.error_type:
            started_at = run.started_at.ToDatetime(tzinfo=UTC)
            usage_metrics.count(self._catalogue, ctx.cluster, model, started_at, reply.usage)
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
            with handle.trace.tool_call(use) as span:
                try:
                    result = await self._tools.call(
                        servers, run.company_id, run.user_id, use, arguments
                    )
                except grpc.aio.AioRpcError as exc:
                    RUNNER_TOOL_SECONDS.labels("failed").observe(time.perf_counter() - started)
                    tracing.fail(span, exc.code().name, exc.details() or "")
                    run_log.tool_failed(ctx.claim, use.name, exc.details() or exc.code().name)
                    return loop.error_result(
                        use, f"the tool call failed: {exc.details() or exc.code().name}"
                    )
                if result.is_error:
                    tracing.fail(span, "tool_error")
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
        events: list[run_pb2.RunEvent],
        handle: RunHandle,
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
                # Into a google.protobuf.Value ParseDict takes any JSON; the stub says dict only.
                json_format.ParseDict(action.structured, outcome.final_structured_output)  # type: ignore[arg-type]
        elif isinstance(action, loop.Pause):
            outcome.status = run_pb2.RUN_STATUS_REQUIRES_ACTION
            outcome.pending_tool_calls.extend(_pending_call(p) for p in action.pending)
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
            events,
        )
        status = {
            run_pb2.RUN_STATUS_COMPLETED: "completed",
            run_pb2.RUN_STATUS_REQUIRES_ACTION: "requires_action",
            run_pb2.RUN_STATUS_FAILED: "failed",
        }[outcome.status]
        handle.trace.finish(status, outcome.error.type, state.usage, len(job_ids))
        run_log.committed(
            run, handle.traceparent, status, outcome.error.type, outcome.error.message
        )
        RUNNER_RUNS.labels(run.effective_config.execution_cluster, status, outcome.error.type).inc()
        RUNNER_ITERATIONS.observe(len(job_ids))

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


def _events_of(actions: list[loop.Action]) -> list[run_pb2.RunEvent]:
    """The events a step's actions write: each published turn (a tool turn after a tool.result
    event per result), then a tool.call event per MCP call about to be made, or per caller call
    the run pauses on (calls waiting for approval have none: they are not made)."""
    events: list[run_pb2.RunEvent] = []
    for action in actions:
        if isinstance(action, loop.Publish):
            if action.turn.role == message_pb2.ROLE_TOOL:
                events += [
                    tool_result_event(b.tool_result)
                    for b in action.turn.content_blocks
                    if b.WhichOneof("block") == "tool_result"
                ]
            events.append(turn_event(action.turn_index, action.turn))
        elif isinstance(action, loop.CallTools):
            events += [tool_call_event(use, caller=False) for use in action.calls]
        elif isinstance(action, loop.Pause):
            events += [
                tool_call_event(p.use, caller=True) for p in action.pending if p.kind == "caller"
            ]
    return events


def _pending_call(pending: loop.PendingCall) -> run_pb2.PendingToolCall:
    use = pending.use
    call = run_pb2.PendingToolCall(
        tool_use_id=use.tool_use_id, name=use.name, arguments=use.arguments
    )
    if pending.kind == "approval":
        call.kind = run_pb2.PendingToolCall.KIND_APPROVAL
        alias_tool = split_wire_name(use.name)
        if alias_tool is not None:
            call.server_alias = alias_tool[0]
    else:
        call.kind = run_pb2.PendingToolCall.KIND_CALLER
    return call


def _needing_approval(
    servers: Iterable[config_pb2.McpServer], wire_names: list[str]
) -> frozenset[str]:
    """The discovered wire names each server's `require_approval` holds for approval. A named
    tool the server does not offer fails the run: an approval list must not miss by a typo."""
    held: set[str] = set()
    for server in servers:
        value = (
            json_format.MessageToDict(server.require_approval)
            if server.HasField("require_approval")
            else None
        )
        policy = approval_policy(value)  # checked by the API: never raises here
        offered = {
            tool: name
            for name in wire_names
            if (parts := split_wire_name(name)) is not None and parts[0] == server.alias
            for tool in [parts[1]]
        }
        missing = sorted(policy.names - offered.keys())
        if missing:
            raise RunFailure(
                incidents.MCP_DISCOVERY_FAILED,
                f"mcp_servers `{server.alias}`: require_approval names "
                f"{', '.join(missing)}, which the server does not offer",
            )
        held |= {name for tool, name in offered.items() if policy.needs(tool)}
    return frozenset(held)
