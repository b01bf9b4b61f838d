"""Content blocks and messages as protos, built one way for every test that needs them."""

from __future__ import annotations

from typing import Any

from agents.v1 import message_pb2
from google.protobuf import struct_pb2

Block = message_pb2.ContentBlock
Message = message_pb2.Message


def text(value: str) -> Block:
    return Block(text=message_pb2.TextBlock(text=value))


def tool_use(tool_use_id: str, name: str, **arguments: Any) -> Block:
    args = struct_pb2.Struct()
    args.update(arguments)
    return Block(
        tool_use=message_pb2.ToolUseBlock(tool_use_id=tool_use_id, name=name, arguments=args)
    )


def tool_result(tool_use_id: str, value: str = "r", *, is_error: bool = False) -> Block:
    return Block(
        tool_result=message_pb2.ToolResultBlock(
            tool_use_id=tool_use_id, is_error=is_error, content=[text(value)]
        )
    )


def message(role: message_pb2.Role, *blocks: Block) -> Message:
    return Message(role=role, content_blocks=list(blocks))


def assistant(*blocks: Block) -> Message:
    return message(message_pb2.ROLE_ASSISTANT, *blocks)
