"""Fixtures taken verbatim from the spec's examples, shared by the tests that replay them."""

from __future__ import annotations

from typing import Any

DATA_PLANE = "f79cbdae-4848-47ca-95e8-69588364d185"


def example_defaults(**changes: Any) -> dict[str, Any]:
    """The defaults of Example 1."""
    return {
        "model": "anthropic.claude-opus-4.6",
        "data_plane_id": DATA_PLANE,
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 1024,
        "temperature": 0.0,
        **changes,
    }


# What a text-mode run's effective_config echoes as output_format_schema (Examples 1 and 3).
TEXT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}

# Example 2: the Narrative docs MCP server and the wire name of its search tool.
DOCS_SERVER = {"alias": "docs", "description": "Narrative.io documentation MCP server"}
DOCS_SEARCH = "docs-search_narrative_i_o_knowledge_base"

# Example 3: the caller-declared tool the run pauses on.
BOOKING_TOOL = {
    "name": "confirm_booking",
    "description": "Ask the user to confirm a proposed booking slot.",
    "input_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["proposed_slot"],
        "properties": {"proposed_slot": {"type": "string"}},
    },
}

# Example 4: a discriminated union (anyOf with const discriminators), no top-level `text`.
EXAMPLE_4_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event"],
    "properties": {
        "event": {
            "anyOf": [
                {
                    "type": "object",
                    "title": "Login",
                    "additionalProperties": False,
                    "required": ["type", "user_id", "session_duration_seconds"],
                    "properties": {
                        "type": {"const": "login"},
                        "user_id": {"type": "string"},
                        "session_duration_seconds": {"type": "integer"},
                    },
                },
                {
                    "type": "object",
                    "title": "Logout",
                    "additionalProperties": False,
                    "required": ["type", "user_id"],
                    "properties": {"type": {"const": "logout"}, "user_id": {"type": "string"}},
                },
            ]
        }
    },
}
