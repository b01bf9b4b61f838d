"""Fixtures taken verbatim from the spec's examples, shared by the tests that replay them."""

from __future__ import annotations

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
