"""How MCP work fails: `McpFailure`, with a cause from a small fixed set (a metric label)."""

from __future__ import annotations

# Bounded values for the `cause` metric label and McpFailure.cause.
CAUSES = (
    "timeout",
    "unreachable",
    "url_not_allowed",
    "http_status",
    "protocol",
    "unknown_tool",
    "name_too_long",
    "internal",
)


class McpFailure(Exception):
    """A session or request that failed; `message` is safe to show (no tokens). `on_kept` says
    the session was a reused client (the server may have dropped it: worth one retry);
    `unprocessed` that nothing was sent, or the server refused the session (404) or was not
    reached: nothing the session sent can have run."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.on_kept = False
        self.unprocessed = False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 300 else line[:299] + "…"
