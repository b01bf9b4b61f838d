"""Any OpenAI-compatible Chat Completions server (vLLM, Ollama, llama.cpp's server, OpenAI):
`POST {base_url}/chat/completions`, with `Authorization: Bearer $api_key_env` when the cluster
names a key."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.catalogue import Cluster
from services.runner.providers.chat_http import ChatCompletionsProvider, ChatOptions

PATH = "/chat/completions"


def openai_provider(
    cluster: Cluster, options: ChatOptions, environ: Mapping[str, str]
) -> ChatCompletionsProvider:
    """Reads the cluster's key from `environ` once: a runner serving the cluster holds it."""
    label = f"cluster {cluster.name} (openai)"
    key = environ.get(cluster.api_key_env, "") if cluster.api_key_env else ""
    missing = ""
    if cluster.api_key_env and not key:
        missing = f"{label}: {cluster.api_key_env} is not set in the runner's environment"
    return ChatCompletionsProvider(
        "openai",
        label,
        cluster.base_url + PATH,
        {"Authorization": f"Bearer {key}"} if key else {},
        max_tokens_field=cluster.max_tokens_field,
        options=options,
        missing_credential=missing,
    )
