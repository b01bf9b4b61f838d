"""The spans of one claim of a run, under the trace its StartRun began (ClaimRunResponse's
traceparent): `invoke_agent` for the claim, an `iteration N` span per model call and the tool
calls after it, `chat {model}` per model call and `execute_tool {name}` per MCP call, with the
OpenTelemetry GenAI attributes. A run resumed by another runner adds its claim's `invoke_agent`
span to the same trace (`parley.run.attempt` tells them apart).

The run span, then each iteration's, is the executor task's current span, so the store and tool
router calls made meanwhile carry it (their server spans nest under it). With tracing off,
`start` answers OFF, whose every method does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from agents.v1 import message_pb2, store_service_pb2

from services.common import tracing
from services.runner.providers.base import ModelReply, ModelRequest, TokenUsage

# gen_ai.provider.name values (the conventions' list) for Parley's providers.
GEN_AI_PROVIDERS = {"bedrock": "aws.bedrock", "openai": "openai", "cortex": "snowflake.cortex"}


class RunTrace:
    """Does nothing: tracing is off (OFF), or the subclass does it."""

    def iteration(self, number: int) -> None:
        pass

    @contextlib.contextmanager
    def model_call(self, provider: str, request: ModelRequest) -> Iterator[Any]:
        yield None

    def model_replied(self, span: Any, reply: ModelReply) -> None:
        pass

    @contextlib.contextmanager
    def tool_call(self, use: message_pb2.ToolUseBlock) -> Iterator[Any]:
        yield None

    def finish(self, status: str, error_type: str, usage: TokenUsage, iterations: int) -> None:
        pass

    def end(self) -> None:
        pass


OFF = RunTrace()


def start(claim: store_service_pb2.ClaimRunResponse) -> RunTrace:
    return _Spans(claim) if tracing.ENABLED else OFF


class _Spans(RunTrace):
    def __init__(self, claim: store_service_pb2.ClaimRunResponse) -> None:
        from opentelemetry import context, trace

        self._context, self._trace = context, trace
        run = claim.run
        cfg = run.effective_config
        self._run = tracing.tracer().start_span(
            "invoke_agent parley",
            context=tracing.extract(claim.traceparent),
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "parley",
                "gen_ai.conversation.id": run.conversation_id,
                "gen_ai.request.model": cfg.model,
                "parley.run.id": run.id,
                "parley.run.attempt": claim.attempt,
                "parley.execution_cluster": cfg.execution_cluster,
                "parley.company_id": run.company_id,
                "parley.user_id": run.user_id,
            },
        )
        self._token = context.attach(trace.set_span_in_context(self._run))
        self._iteration: Any = None
        self._iteration_token: Any = None

    def iteration(self, number: int) -> None:
        self._end_iteration()
        self._iteration = tracing.tracer().start_span(
            f"iteration {number}", attributes={"parley.iteration": number}
        )
        self._iteration_token = self._context.attach(
            self._trace.set_span_in_context(self._iteration)
        )

    def _end_iteration(self) -> None:
        if self._iteration is not None:
            self._context.detach(self._iteration_token)
            self._iteration.end()
            self._iteration = None

    @contextlib.contextmanager
    def model_call(self, provider: str, request: ModelRequest) -> Iterator[Any]:
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": GEN_AI_PROVIDERS.get(provider, provider),
            "gen_ai.request.model": request.provider_model_id,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "parley.stream": request.stream,
        }
        name = f"chat {request.provider_model_id}"
        with tracing.span(name, attributes, kind="client") as span:
            yield span

    def model_replied(self, span: Any, reply: ModelReply) -> None:
        usage = reply.usage
        tracing.set_attributes(
            span,
            {
                "gen_ai.usage.input_tokens": usage.prompt + usage.cache_read + usage.cache_write,
                "gen_ai.usage.output_tokens": usage.completion,
                "gen_ai.usage.cache_read.input_tokens": usage.cache_read,
                "gen_ai.usage.cache_creation.input_tokens": usage.cache_write,
                "gen_ai.response.finish_reasons": [reply.stop_reason],
            },
        )

    @contextlib.contextmanager
    def tool_call(self, use: message_pb2.ToolUseBlock) -> Iterator[Any]:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": use.name,
            "gen_ai.tool.call.id": use.tool_use_id,
            "gen_ai.tool.type": "extension",  # an MCP server's tool, run by Parley
        }
        with tracing.span(f"execute_tool {use.name}", attributes) as span:
            yield span

    def finish(self, status: str, error_type: str, usage: TokenUsage, iterations: int) -> None:
        tracing.set_attributes(
            self._run,
            {
                "parley.run.status": status,
                "parley.iterations": iterations,
                "gen_ai.usage.input_tokens": usage.prompt + usage.cache_read + usage.cache_write,
                "gen_ai.usage.output_tokens": usage.completion,
            },
        )
        if error_type:
            tracing.fail(self._run, error_type)

    def end(self) -> None:
        self._end_iteration()
        self._context.detach(self._token)
        self._run.end()
