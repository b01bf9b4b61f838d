"""What a page of GET /agents/runs costs on PostgreSQL at 10 runs and at a million, in one run so
the figures compare (services/api/run_listing.py; the `listing` cell of `make bench`):

    .venv/bin/python -m tests.bench.run_listing [--runs 1000000] [--pages 300]

Two databases, migrated by `parley migrate`: one holding 10 runs of the caller, one holding
`--runs` runs (seeded in SQL with generate_series: one user's runs over 1,000 conversations,
statuses cycling). Each gets its own `parley serve api` process; this process calls ListRuns over
gRPC: the first page, pages deep in the listing (following cursors), a page filtered by two
statuses, and a conversation's page. Reported per page: the api process's CPU (its process tree,
psutil) and the wall time, and PostgreSQL's own EXPLAIN (ANALYZE, BUFFERS) of each page's query:
the plan's top node and the buffers it touched, which stay flat when a page is one index range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from agents.v1 import conversation_service_pb2, conversation_service_pb2_grpc
from sqlalchemy import literal, tuple_
from sqlalchemy.dialects import postgresql

from services.api import run_listing
from services.api.db.models import runs
from services.common.auth import mint_token
from tests.bench import stack

LIMIT = 20
CONVERSATIONS = 1000
_CONFIG = json.dumps({"model": "anthropic.claude-opus-4.6", "data_plane_id": "dp"})


def _seed_sql(count: int) -> list[str]:
    """Statements that write `count` runs of user (1, 1) and their conversations, in bulk."""
    conversations = min(CONVERSATIONS, count)
    return [
        f"""INSERT INTO conversations (id, company_id, user_id, name, system_prompt, defaults,
            version, active_run_id, latest_run_id, created_at, updated_at)
        SELECT md5('c' || g)::uuid::text, 1, 1, 'bench', NULL, '{_CONFIG}', 0, NULL, NULL,
            now(), now()
        FROM generate_series(1, {conversations}) g""",
        f"""INSERT INTO runs (id, conversation_id, company_id, user_id, client_op_id, status,
            payload, tool_choice, effective_config, iterations_used, prompt_tokens,
            completion_tokens, total_tokens, submitted_inference_job_ids, pending_tool_calls,
            final_text, final_structured_output, error_type, error_message, lease_owner,
            lease_expires_at, started_at, completed_at, event_seq, attempts, cancel_requested,
            execution_cluster, model, execution_started_at, cache_read_tokens,
            cache_write_tokens, cost_nano_usd, run_metadata, request_hash, traceparent)
        SELECT md5('r' || g)::uuid::text, md5('c' || (g % {conversations} + 1))::uuid::text, 1, 1,
            md5('o' || g)::uuid::text,
            (ARRAY['completed', 'failed', 'requires_action'])[g % 3 + 1],
            '{{}}', NULL, '{_CONFIG}', 1, 100, 20, 120, '[]', '[]', 'ok', NULL, NULL, NULL, NULL,
            NULL, timestamptz '2026-01-01' + g * interval '1 second',
            timestamptz '2026-01-01' + g * interval '1 second' + interval '2 seconds', 3, 1,
            false, 'shared', 'anthropic.claude-opus-4.6',
            timestamptz '2026-01-01' + g * interval '1 second', 0, 0, 1000,
            '{{}}', '', '00-' || md5('t' || g) || '-' || left(md5('s' || g), 16) || '-00'
        FROM generate_series(1, {count}) g""",
        "ANALYZE",
    ]


async def _seed(name: str, count: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        for statement in _seed_sql(count):
            await conn.execute(statement)
    finally:
        await conn.close()
    return time.perf_counter() - started


def _page_sql(conversation_id: str | None, statuses: list[str] | None, after: Any) -> str:
    """The SQL of a page as run_listing builds it, with its values inlined (for EXPLAIN)."""
    if conversation_id is None:
        scope = [runs.c.company_id == 1, runs.c.user_id == 1]
    else:
        scope = [runs.c.conversation_id == conversation_id]
    if after is not None:
        scope.append(
            tuple_(runs.c.started_at, runs.c.id)
            < tuple_(literal(after[0], runs.c.started_at.type), literal(after[1]))
        )
    statement = run_listing._page_statement(scope, statuses, LIMIT + 1)
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


async def _explain(name: str, sql: str) -> dict[str, Any]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))
    finally:
        await conn.close()
    top = plan[0]["Plan"]
    nodes = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else ""))
        for child in node.get("Plans", []):
            walk(child)

    walk(top)
    return {
        "plan": " > ".join(nodes),
        "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        "rows_read": top.get("Actual Rows", 0),
        "exec_ms": plan[0]["Execution Time"],
    }


async def _pages(call: Any, auth: tuple[tuple[str, str], ...], make: Any, n: int) -> None:
    """`n` pages of the RPC `call`, each request `make(before)`, following each page's cursor
    (from the top again after the last page)."""
    before = None
    for _ in range(n):
        page = await call(make(before), metadata=auth)
        before = page.next_before if page.HasField("next_before") else None


def _runs(status: str | None = None) -> Any:
    def make(before: str | None) -> conversation_service_pb2.ListRunsRequest:
        request = conversation_service_pb2.ListRunsRequest(limit=LIMIT)
        if status:
            request.status = status
        if before:
            request.before = before
        return request

    return make


def _conversation_runs(conversation_id: str) -> Any:
    def make(before: str | None) -> conversation_service_pb2.ListConversationRunsRequest:
        request = conversation_service_pb2.ListConversationRunsRequest(
            id=conversation_id, limit=LIMIT
        )
        if before:
            request.before = before
        return request

    return make


async def _measure_store(name: str, count: int, pages: int, log_dir: Path) -> dict[str, Any]:
    seeded_s = await _seed(name, count)
    url = stack.pg_url(name)
    port, store_port = stack.free_port(), stack.free_port()
    env = {
        **stack.base_env(),
        "PARLEY_JWT_SECRET": stack.JWT_SECRET,
        "PARLEY_INTERNAL_SECRET": stack.INTERNAL_SECRET,
        "PARLEY_DATABASE_URL": url,
        "PARLEY_API_ADDR": f"127.0.0.1:{port}",
        "PARLEY_STORE_ADDR": f"127.0.0.1:{store_port}",
        "PARLEY_METRICS_PORT": str(stack.free_port()),
    }
    api, _ = stack.spawn(
        f"listing-api-{count}",
        [str(stack.BIN / "parley"), "serve", "api"],
        env,
        r"parley api is serving",
        log_dir=log_dir,
    )
    auth = (("authorization", f"Bearer {mint_token(stack.JWT_SECRET, 1, 1)}"),)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
    conversation_id = await conn.fetchval(
        "SELECT conversation_id FROM runs ORDER BY started_at DESC LIMIT 1"
    )
    deep = await conn.fetchrow(
        f"SELECT started_at, id FROM runs ORDER BY started_at DESC, id DESC "
        f"OFFSET {max(0, count // 2)} LIMIT 1"
    )
    await conn.close()
    out: dict[str, Any] = {"runs": count, "seed_s": round(seeded_s, 1)}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
            variants = {
                "all": (stub.ListRuns, _runs()),
                "two_statuses": (stub.ListRuns, _runs("completed,failed")),
                "conversation": (stub.ListConversationRuns, _conversation_runs(conversation_id)),
            }
            for call, make in variants.values():  # warm: connections, plans, caches
                await _pages(call, auth, make, 20)
            for label, (call, make) in variants.items():
                cpu, wall = api.cpu_seconds(), time.perf_counter()
                await _pages(call, auth, make, pages)
                out[f"{label}_api_cpu_ms_per_page"] = (api.cpu_seconds() - cpu) * 1000 / pages
                out[f"{label}_wall_ms_per_page"] = (time.perf_counter() - wall) * 1000 / pages
    finally:
        api.stop()
    deep_key = (deep["started_at"], deep["id"]) if deep else None
    explained = {
        "first_page": _page_sql(None, None, None),
        "deep_page": _page_sql(None, None, deep_key),
        "two_statuses": _page_sql(None, ["completed", "failed"], deep_key),
        "conversation": _page_sql(conversation_id, None, None),
    }
    out["explain"] = {label: await _explain(name, sql) for label, sql in explained.items()}
    return out


async def measure(log_dir: Path, runs_count: int = 1_000_000, pages: int = 300) -> dict[str, Any]:
    """The cell: the same listing at 10 runs and at `runs_count`."""
    result: dict[str, Any] = {"page_limit": LIMIT, "pages_each": pages}
    for count in (10, runs_count):
        name = await stack.create_pg_database()
        try:
            migrate_env = {**stack.base_env(), "PARLEY_DATABASE_URL": stack.pg_url(name)}
            await asyncio.to_thread(
                stack.subprocess.run,
                [str(stack.BIN / "parley"), "migrate"],
                env=migrate_env,
                check=True,
                capture_output=True,
                timeout=120,
            )
            result[f"at_{count}"] = await _measure_store(name, count, pages, log_dir)
        finally:
            await stack.drop_pg_database(name)
    return result


def _print(result: dict[str, Any]) -> None:
    sizes = [k for k in result if k.startswith("at_")]
    print(f"{'per page (limit 20)':<34}" + "".join(f"{k[3:]:>14} runs" for k in sizes))
    for label in ("all", "two_statuses", "conversation"):
        for what in ("api_cpu_ms", "wall_ms"):
            key = f"{label}_{what}_per_page"
            row = "".join(f"{result[k][key]:>16.3f} ms" for k in sizes)
            print(f"{label + ' ' + what.replace('_ms', ''):<34}{row}")
    for label in ("first_page", "deep_page", "two_statuses", "conversation"):
        row = "".join(f"{result[k]['explain'][label]['buffers']:>14} bufs  " for k in sizes)
        print(f"{'EXPLAIN ' + label + ' buffers':<34}{row}")
    for k in sizes:
        for label, plan in result[k]["explain"].items():
            print(f"  {k[3:]} runs, {label}: {plan['plan']} ({plan['exec_ms']:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    result = asyncio.run(
        measure(Path(tempfile.mkdtemp(prefix="parley-listing-")), args.runs, args.pages)
    )
    _print(result)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
