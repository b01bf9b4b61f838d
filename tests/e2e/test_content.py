"""A user message's `content` blocks (text, image, document) through the REST gateway: bodies up
to 32 MiB are read and carried between Parley's processes, each provider gets the blocks in its
own shapes, the message stream returns them as sent, and what no model takes is a 400 naming
the block."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jsonschema_rs
import pytest
import pytest_asyncio

from services.common.contract import MAX_DOCUMENT_BYTES, MAX_IMAGE_BYTES
from tests import catalogues
from tests.fakes import bedrock as fb
from tests.fakes import chat_completions as fc
from tests.spec_examples import example_defaults

from .runner_suite import RunnerSuite, running_runner_suite, unique

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n tiny").decode()


@pytest_asyncio.fixture(scope="module")
async def mrs(make_database_url: Callable[[], Awaitable[str]]) -> AsyncIterator[RunnerSuite]:
    async with running_runner_suite(
        await make_database_url(), catalogue=catalogues.clusters
    ) as running:
        yield running


def image(data: str = PNG, media_type: str = "image/png") -> dict[str, str]:
    return {"type": "image", "media_type": media_type, "data": data}


def document(name: str, media_type: str, body: bytes) -> dict[str, str]:
    return {
        "type": "document",
        "media_type": media_type,
        "name": name,
        "data": base64.b64encode(body).decode(),
    }


def says(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


async def start(rs: RunnerSuite, content: list[dict[str, Any]], **defaults: Any) -> Any:
    conversation = await rs.create_conversation(defaults=example_defaults(**defaults))
    return conversation, await rs.post_run(
        conversation["id"], payload={"kind": "user_message", "content": content}
    )


async def test_images_and_documents_reach_converse_and_come_back_as_sent(
    mrs: RunnerSuite,
) -> None:
    question = unique("What do these show?")
    mrs.bedrock.on(question, fb.text("A chart and a report."))
    sent = [
        says(question),
        image(),
        document("q3-report.pdf", "application/pdf", b"%PDF-1.7 fake"),
        document("notes.md", "text/markdown", b"# Notes"),
    ]
    conversation, r = await start(mrs, sent)
    assert r.status_code == 202, r.text
    done = await mrs.wait_run(r.json()["id"])
    assert done["status"] == "completed", done
    stream = await mrs.messages(conversation["id"])
    assert stream["messages"][0]["content_blocks"] == sent  # as sent, byte for byte
    spec = (await mrs.http.get("/openapi.json")).json()  # and as /openapi.json documents them
    documented = jsonschema_rs.validator_for(
        {**spec, "$ref": "#/components/schemas/ListMessagesResponse"}
    )
    documented.validate(stream)
    (request,) = mrs.bedrock.requests_for(question)
    assert request.body["messages"][0]["content"] == [
        {"text": question},
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {
            "document": {
                "format": "pdf",
                "name": "q3-report pdf",  # Converse takes no dots in a name
                "source": {"bytes": sent[2]["data"]},
            }
        },
        {"document": {"format": "md", "name": "notes md", "source": {"bytes": sent[3]["data"]}}},
    ]
    assert (await mrs.conversation(conversation["id"]))["name"] is not None  # from the text


async def test_on_chat_completions_images_are_data_urls_and_text_documents_text(
    mrs: RunnerSuite,
) -> None:
    question = unique("Compare them.")
    mrs.chat.on(question, fc.text("Compared."))
    sent = [says(question), image(media_type="image/webp"), document("a.csv", "text/csv", b"x,y")]
    conversation, r = await start(mrs, sent, execution_cluster="local")
    assert r.status_code == 202, r.text
    assert (await mrs.wait_run(r.json()["id"]))["status"] == "completed"
    (request,) = mrs.chat.requests_for(question)
    assert request.body["messages"][0]["content"] == [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{PNG}"}},
        {"type": "text", "text": '<document name="a.csv" media_type="text/csv">\nx,y\n</document>'},
    ]
    assert (await mrs.messages(conversation["id"]))["messages"][0]["content_blocks"] == sent


async def test_a_start_run_body_of_many_megabytes_is_read_and_carried(mrs: RunnerSuite) -> None:
    """Four images near the limit: a ~20 MB body through the gateway, gRPC messages far above
    gRPC's 4 MB default between gateway, store and runner, and back out of ListMessages."""
    question = unique("Four big pictures.")
    mrs.bedrock.on(question, fb.text("Seen."))
    big = [base64.b64encode(os.urandom(MAX_IMAGE_BYTES - 1000)).decode() for _ in range(4)]
    sent = [says(question), *(image(data) for data in big)]
    conversation, r = await start(mrs, sent)
    assert r.status_code == 202, r.text
    done = await mrs.wait_run(r.json()["id"], deadline_s=60)
    assert done["status"] == "completed", done
    (request,) = mrs.bedrock.requests_for(question)
    assert [
        b["image"]["source"]["bytes"] for b in request.body["messages"][0]["content"][1:]
    ] == big
    assert (await mrs.messages(conversation["id"]))["messages"][0]["content_blocks"] == sent


async def test_a_body_over_32_mib_is_refused_before_it_is_read(mrs: RunnerSuite) -> None:
    conversation = await mrs.create_conversation()
    r = await mrs.http.post(
        f"/agents/conversations/{conversation['id']}/runs",
        content=b"{" + b" " * (32 * 1024 * 1024) + b"}",
        headers={**mrs.headers(), "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["type"].endswith("/errors/request-too-large")
    other = await mrs.http.post(  # other routes keep 1 MiB
        "/agents/conversations",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={**mrs.headers(), "Content-Type": "application/json"},
    )
    assert other.status_code == 413


@pytest.mark.parametrize(
    ("content", "status", "slug", "detail"),
    [
        ([says("x"), image(base64.b64encode(b"0" * (MAX_IMAGE_BYTES + 1)).decode())],
         400, "content-too-large", "payload.content[1]: the image is 3932161 bytes"),
        ([says("x"), document("big.pdf", "application/pdf", b"0" * (MAX_DOCUMENT_BYTES + 1))],
         400, "content-too-large", "payload.content[1]: the document"),
        ([says("x"), image(media_type="image/bmp")], 400, "unsupported-content",
         "payload.content[1].media_type `image/bmp`"),
        ([says("x"), document("a.zip", "application/zip", b"PK")], 400, "unsupported-content",
         "payload.content[1].media_type `application/zip`"),
        ([says("x"), {"type": "tool_use", "tool_use_id": "t", "name": "n", "arguments": {}}],
         400, "unsupported-content", "payload.content[1] is a `tool_use` block"),
        ([says("x"), {"type": "image", "mime_type": "image/png", "data": PNG}], 400,
         "invalid-request", "in `media_type`, not `mime_type`"),
        ([says("x"), image("not base64!")], 400, "invalid-request", "payload.content[1].data"),
        ([says("x")] * 21, 400, "invalid-request", "at most 20"),
        ([document("a.txt", "text/plain", b"hi")], 400, "invalid-request", "no text block"),
        ([says("  ")], 400, "invalid-request", "payload.content[0].text must be non-empty"),
        ([says("x"), {"type": "document", "media_type": "text/plain", "data": PNG}], 400,
         "invalid-request", "payload.content[1].name"),
    ],
)  # fmt: skip
async def test_what_no_model_takes_is_refused_naming_the_block(
    mrs: RunnerSuite, content: list[dict[str, Any]], status: int, slug: str, detail: str
) -> None:
    _, r = await start(mrs, content)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"].endswith(f"/errors/{slug}") and detail in body["detail"], body


async def test_text_and_content_together_are_refused(mrs: RunnerSuite) -> None:
    conversation = await mrs.create_conversation()
    r = await mrs.post_run(
        conversation["id"],
        payload={"kind": "user_message", "text": "hi", "content": [says("hi")]},
    )
    assert r.status_code == 400 and "not both" in r.json()["detail"]


async def test_a_binary_document_is_refused_on_a_chat_completions_cluster(
    mrs: RunnerSuite,
) -> None:
    sent = [says("Read it."), document("q3.pdf", "application/pdf", b"%PDF")]
    _, r = await start(mrs, sent, execution_cluster="snowflake")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"].endswith("/errors/unsupported-content")
    assert "payload.content[1]" in body["detail"] and "`snowflake`" in body["detail"]
