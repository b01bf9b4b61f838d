"""Snowflake Cortex: its OpenAI-compatible endpoint, `POST {base_url}/api/v2/cortex/v1/chat/
completions`, with the cluster's programmatic access token (`token_env`) as bearer."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.catalogue import Cluster
from services.runner.providers.chat_http import ChatCompletionsProvider, ChatOptions

PATH = "/api/v2/cortex/v1/chat/completions"
TOKEN_TYPE = "PROGRAMMATIC_ACCESS_TOKEN"


def cortex_provider(
    cluster: Cluster, options: ChatOptions, environ: Mapping[str, str]
) -> ChatCompletionsProvider:
    """Reads the cluster's token from `environ` once: a runner serving the cluster holds it."""
    token = environ.get(cluster.token_env, "")
    label = f"cluster {cluster.name} (cortex)"
    return ChatCompletionsProvider(
        "cortex",
        label,
        cluster.base_url + PATH,
        {"Authorization": f"Bearer {token}", "X-Snowflake-Authorization-Token-Type": TOKEN_TYPE},
        max_tokens_field="max_completion_tokens",
        options=options,
        missing_credential=""
        if token
        else f"{label}: {cluster.token_env} is not set in the "
        "runner's environment (the programmatic access token)",
    )
