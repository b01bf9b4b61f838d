"""What one Converse call costs the caller, by how it is sent (the choice behind
services/runner/providers/bedrock.py), measured in one run so the figures compare as ratios:

    .venv/bin/python -m tests.bench.converse_call [--n 1000]

Against the benchmark's fake Converse server in its own process, three ways, each one call at a
time and 32 at once: boto3's `converse()` on a thread pool (how Parley called it before), the
same botocore request building, signing and parsing sent with httpx2 (the HTTP client the MCP
SDK brings), and Parley's provider itself (botocore + aiohttp). CPU is this process's only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx2
from botocore import parsers
from botocore.awsrequest import HeadersDict
from botocore.config import Config

from agents.v1 import message_pb2

from services.runner.providers import bedrock
from services.runner.providers.base import ModelRequest
from tests.bench import cpu_per_call

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CONCURRENCY = (1, 32)


async def measure(name: str, call: Callable[[], Awaitable[Any]], n: int) -> dict[int, float]:
    return await cpu_per_call.measure(name, call, n, CONCURRENCY)


async def main(n: int) -> None:
    question = message_pb2.ContentBlock(text=message_pb2.TextBlock(text="What is 2 + 2?"))
    model_request = ModelRequest(
        MODEL, "sys", (message_pb2.Message(role=message_pb2.ROLE_USER, content_blocks=[question]),),
        (), None, 64, 0.0, None,
    )  # fmt: skip
    provider = bedrock.BedrockProvider(bedrock.BedrockOptions(max_connections=64))
    prepared = provider.prepare("dp", model_request)
    endpoint = await provider.endpoint("dp")
    params = {"modelId": MODEL, **prepared.body}
    pool = ThreadPoolExecutor(32)
    client = boto3.session.Session().client(
        "bedrock-runtime", config=Config(region_name="us-east-1", max_pool_connections=32)
    )
    loop = asyncio.get_running_loop()
    parser = parsers.create_parser("rest-json")
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64))

    async def boto3_thread() -> object:
        return await loop.run_in_executor(pool, lambda: client.converse(**params))

    async def botocore_httpx2() -> object:
        signed = await bedrock.signed_request(endpoint, params)
        r = await http.post(signed.url, headers=dict(signed.headers.items()), content=signed.body)
        headers = HeadersDict(r.headers.items())
        return parser.parse(
            {"status_code": r.status_code, "headers": headers, "body": r.content},
            endpoint.converse.output_shape,
        )

    results = {
        "boto3": await measure("boto3 converse() on a thread pool", boto3_thread, n),
        "httpx2": await measure("botocore + httpx2", botocore_httpx2, n),
        "parley": await measure(
            "Parley's provider (botocore + aiohttp)", lambda: provider.converse(prepared), n
        ),
    }
    cpu_per_call.print_ratios(results)
    await http.aclose()
    await provider.close()
    pool.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    with cpu_per_call.fake_server("tests.bench.fake_converse") as port:
        os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
        os.environ.update(
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
        )
        import uvloop

        uvloop.run(main(parser.parse_args().n))
