"""The provider cells of `make bench`: the same turn (one MCP tool call, two model calls, SSE)
on an execution cluster of each provider, under one `parley up` whose catalogue (PARLEY_CATALOGUE)
has `shared` on the fake Converse (Bedrock), `snowflake` on the fake Chat Completions server's
Cortex path and `local` on its OpenAI-compatible path. A cell per provider: turn latency and
Parley's CPU per turn, beside the fakes' own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.bench import stack
from tests.bench.client import DATA_PLANE, Client, defaults, http_client

if TYPE_CHECKING:
    from tests.bench.run import Bench

CLUSTERS = {"bedrock": "shared", "cortex": "snowflake", "openai": "local"}
TURNS = 50  # at most, per provider (the plan's sequential count when smaller)
PAT, KEY = "bench-pat", "bench-key"


def catalogue(chat_url: str) -> str:
    return f"""
[[data_planes]]
id = "{DATA_PLANE}"
companies = ["*"]

[[clusters]]
name = "shared"
provider = "bedrock"
companies = ["*"]

[[clusters]]
name = "snowflake"
provider = "cortex"
base_url = "{chat_url}"
token_env = "BENCH_SNOWFLAKE_PAT"
companies = ["*"]

[[clusters]]
name = "local"
provider = "openai"
base_url = "{chat_url}/v1"
api_key_env = "BENCH_LOCAL_KEY"
companies = ["*"]

[[models]]
id = "anthropic.claude-opus-4.6"
bedrock = "us.anthropic.claude-opus-4-6-v1"
cortex = "claude-opus-4-6"
openai = "bench-model"
"""


class ClusterClient(Client):
    """The load client, its conversations on one execution cluster."""

    def __init__(self, *args: Any, cluster: str, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cluster = cluster

    async def create_conversation(self, scenario: str) -> dict[str, Any]:
        body = {
            "name": f"bench {scenario} on {self.cluster}",
            "defaults": {**defaults(scenario, self.mcp_url), "execution_cluster": self.cluster},
        }
        return await self._post("/agents/conversations", body, 200)


async def cells(bench: Bench) -> None:
    chat, _ = stack.spawn(
        "fake-chat",
        stack.python("tests.bench.fake_chat"),
        stack.base_env(),
        r"listening (\d+)",
        log_dir=bench.logs,
    )
    chat_url = f"http://127.0.0.1:{stack.listening_port(chat)}"
    path = Path(bench.logs) / "providers-catalogue.toml"
    path.write_text(catalogue(chat_url))
    env = {"PARLEY_CATALOGUE": str(path), "BENCH_SNOWFLAKE_PAT": PAT, "BENCH_LOCAL_KEY": KEY}
    parley = stack.parley_up(
        bench.converse_url, bench.logs, extra_env=env, name="parley-up-providers"
    )
    turns = min(TURNS, bench.plan.seq_turns)
    try:
        async with http_client(parley.url) as http:
            for provider, cluster in CLUSTERS.items():
                client = ClusterClient(http, parley.token, bench.mcp_url, cluster=cluster)
                if bench.plan.warmup:
                    await bench.run_turns(client, "one_tool", "sse", min(bench.plan.warmup, 5))
                chat0 = chat.cpu_seconds()
                data = await bench.measured(
                    parley, lambda c=client: bench.run_turns(c, "one_tool", "sse", turns)
                )
                data["fake_chat_cpu_s"] = chat.cpu_seconds() - chat0
                data.pop("latencies_ms", None)
                bench.cell(
                    f"providers/{provider}", {"provider": provider, "cluster": cluster, **data}
                )
    finally:
        parley.stop()
        chat.stop()
