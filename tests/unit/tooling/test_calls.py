"""calls.to_blocks: MCP CallToolResult wire JSON → Parley content blocks, with the size caps."""

from __future__ import annotations

from google.protobuf import json_format

from services.tooling import calls


def dicts(result: dict) -> tuple[list[dict], bool]:
    blocks, is_error = calls.to_blocks(result)
    return [
        json_format.MessageToDict(b, preserving_proto_field_name=True) for b in blocks
    ], is_error


def test_every_kind() -> None:
    blocks, is_error = dicts(
        {
            "content": [
                {"type": "text", "text": "3"},
                {
                    "type": "image",
                    "data": "AAA=",
                    "mimeType": "image/png",
                    "annotations": {"priority": 1},
                },
                {"type": "audio", "data": "UklG", "mimeType": "audio/wav"},
                {"type": "resource_link", "uri": "file:///x.txt", "name": "x.txt"},
                {
                    "type": "resource",
                    "resource": {"uri": "file:///y", "mimeType": "text/plain", "text": "hi"},
                },
                {"type": "resource", "resource": {"uri": "file:///z", "blob": "AAEC"}},
                {"type": "hologram", "beam": 1},
            ],
            "structuredContent": {"result": 3},
            "isError": False,
        }
    )
    assert not is_error
    assert blocks == [
        {"text": {"text": "3"}},
        {"image": {"mime_type": "image/png", "data": "AAA="}},
        {"audio": {"mime_type": "audio/wav", "data": "UklG"}},
        {"resource_link": {"uri": "file:///x.txt", "name": "x.txt"}},
        {"resource": {"uri": "file:///y", "mime_type": "text/plain", "text": "hi"}},
        {"resource": {"uri": "file:///z", "blob": "AAEC"}},
        {"text": {"text": '{"type": "hologram", "beam": 1}'}},
        {"json": {"value": {"result": 3.0}}},
    ]


def test_is_error_and_scalar_structured_content() -> None:
    blocks, is_error = dicts({"content": [], "structuredContent": 5, "isError": True})
    assert is_error and blocks == [{"json": {"value": 5.0}}]


def test_text_is_capped_across_blocks() -> None:
    blocks, _ = dicts(
        {
            "content": [
                {"type": "text", "text": "a" * 60_000},
                {"type": "text", "text": "b" * 60_000},
            ]
        }
    )
    assert blocks[0]["text"]["text"] == "a" * 60_000
    second = blocks[1]["text"]["text"]
    assert second.startswith("b" * 40_000) and second.endswith(
        "[truncated: 20000 more characters not shown]"
    )


def test_oversized_binaries_and_structured_content_are_replaced_by_a_note() -> None:
    blocks, _ = dicts(
        {
            "content": [{"type": "image", "data": "A" * 1_500_000, "mimeType": "image/png"}],
            "structuredContent": {"x": "y" * 200_000},
        }
    )
    assert blocks[0]["text"]["text"].startswith("[image image/png omitted")
    assert blocks[1]["text"]["text"].startswith("[structuredContent omitted")
