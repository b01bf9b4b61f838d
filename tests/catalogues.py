"""The catalogues tests run Parley with: execution clusters on the fake Bedrock and on the fake
Chat Completions server (both its paths), and companies kept apart."""

from __future__ import annotations

from services.common import catalogue
from services.common.catalogue import Catalogue
from tests.fakes import chat_completions as fc
from tests.spec_examples import DATA_PLANE

ACME = 7  # a company with a data plane and a cluster of its own
ACME_DATA_PLANE = "00000000-0000-4000-8000-00000000ac3e"
PAT_ENV, KEY_ENV = "SNOWFLAKE_PAT", "LOCAL_LLM_KEY"
LOCAL_KEY = "sk-local-test"
ENVIRON = {PAT_ENV: fc.PAT, KEY_ENV: LOCAL_KEY}  # what the runners of these clusters hold
OPENAI_OPUS = "local/claude-opus-compatible"  # the model's id on the OpenAI-compatible cluster


def _cluster(name: str, provider: str, chat_url: str, companies: str = '["*"]', **more: str) -> str:
    lines = [f'name = "{name}"', f'provider = "{provider}"', f"companies = {companies}"]
    if provider == "cortex":
        lines += [f'base_url = "{chat_url}"', f'token_env = "{PAT_ENV}"']
    elif provider == "openai":
        lines += [f'base_url = "{chat_url}/v1"', f'api_key_env = "{KEY_ENV}"']
    lines += [f"{key} = {value}" for key, value in more.items()]
    return "[[clusters]]\n" + "\n".join(lines) + "\n"


def text(chat_url: str, *, shared: str = "bedrock", **shared_more: str) -> str:
    """Clusters `shared` (on `shared`'s provider), `snowflake` (cortex), `local` (openai) for
    every company, `acme` (openai) for ACME only; Example 1's data plane for everyone and one
    of ACME's own."""
    if shared == "bedrock":
        shared_more.setdefault("titling_model", '"anthropic.claude-haiku-4.5"')
    return f"""
[[data_planes]]
id = "{DATA_PLANE}"
companies = ["*"]

[[data_planes]]
id = "{ACME_DATA_PLANE}"
companies = [{ACME}]

{_cluster("shared", shared, chat_url, **shared_more)}
{_cluster("snowflake", "cortex", chat_url)}
{_cluster("local", "openai", chat_url)}
{_cluster("acme", "openai", chat_url, companies=f"[{ACME}]")}

[[models]]
id = "anthropic.claude-opus-4.6"
bedrock = "us.anthropic.claude-opus-4-6-v1"
cortex = "claude-opus-4-6"
openai = "{OPENAI_OPUS}"
[models.price]
input_per_mtok = 5.0
output_per_mtok = 25.0
cache_read_per_mtok = 0.5
cache_write_per_mtok = 6.25
as_of = "2026-11-01"

[[models]]
id = "anthropic.claude-haiku-4.5"
bedrock = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
cortex = "claude-haiku-4-5"

[[models]]
id = "amazon.nova-pro"
bedrock = "us.amazon.nova-pro-v1:0"
"""


def clusters(chat_url: str, *, shared: str = "bedrock", **shared_more: str) -> Catalogue:
    return catalogue.parse(text(chat_url, shared=shared, **shared_more), "tests/catalogues.py")
