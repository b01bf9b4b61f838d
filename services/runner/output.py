"""The final answer: structured output strategy and validation.

Strategy: Bedrock's native structured output (`outputConfig.textFormat` with a JSON schema, in
the botocore model since 1.44; no forced final-answer tool). Structured mode sends the caller's
schema and validates the JSON reply with a prebuilt Draft 2020-12 validator. Text mode sends no
outputConfig (not every catalogued model supports it) and answers with the model's prose; a reply
shaped like the implicit `{text: string}` schema that effective_config echoes is unwrapped to its
`text`. A reply truncated at max_tokens (stopReason max_tokens) fails in both modes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format, struct_pb2
from jsonschema import Draft202012Validator

from services.common.contract import TEXT_MODE_SCHEMA


@dataclass(frozen=True)
class Decoded:
    ok: bool
    text: str | None = None
    structured: Any = None
    error: str = ""


class OutputDecoder:
    """Built once per schema (`decoder_of`): the schema's validator is compiled here, not per
    reply or per run. It holds no state of a run's."""

    def __init__(self, schema: dict[str, Any] | None) -> None:
        self.text_mode = not schema or schema == TEXT_MODE_SCHEMA
        self.schema: dict[str, Any] = schema if schema and not self.text_mode else TEXT_MODE_SCHEMA
        self._validator = Draft202012Validator(self.schema)

    def decode(self, reply_text: str, truncated: bool) -> Decoded:
        if truncated:
            return Decoded(
                False,
                error="the model's reply was cut off at max_tokens before it could be read; "
                "raise max_tokens",
            )
        try:
            value = orjson.loads(reply_text)
        except orjson.JSONDecodeError:
            value = None
            parsed = False
        else:
            parsed = True
        if self.text_mode:
            if parsed and isinstance(value, dict) and self._validator.is_valid(value):
                return Decoded(True, text=value["text"])
            if reply_text.strip():
                return Decoded(True, text=reply_text)
            return Decoded(False, error="the model's final reply was empty")
        if not parsed:
            return Decoded(
                False, error=f"the model's final reply is not JSON: {_excerpt(reply_text)}"
            )
        error = next(iter(sorted(self._validator.iter_errors(value), key=str)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Decoded(
                False,
                error=f"the model's final reply does not match output_format_schema at "
                f"{where}: {error.message}",
            )
        return Decoded(True, structured=value)


def decoder_of(schema: struct_pb2.Struct) -> OutputDecoder:
    """The decoder of a run's output_format_schema, shared by the runs with the same schema (most
    runs are in text mode: one decoder)."""
    return _decoder(schema.SerializeToString(deterministic=True))


@functools.lru_cache(maxsize=256)
def _decoder(schema: bytes) -> OutputDecoder:
    return OutputDecoder(json_format.MessageToDict(struct_pb2.Struct.FromString(schema)))


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")
