"""Parley's log lines: PARLEY_LOG_LEVEL (debug | info | warning | error; default info) and
PARLEY_LOG_FORMAT (text | json; default text), set once per process by `configure`.

A line about a run carries its ids as fields (`log.info(..., extra=ids)`): `run_id`,
`conversation_id`, `company_id`, `user_id`, `trace_id`. In text they follow the message as
key=value; in JSON every line is one object with `time`, `level`, `logger`, `message`, those
fields, and `exception` when a traceback belongs to it (only for unexpected errors: expected
conditions are logged without one).
"""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Any

import orjson

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
FORMATS = ("text", "json")
# Fields a line may carry, in the order text shows them.
FIELDS = (
    "run_id", "conversation_id", "company_id", "user_id", "trace_id", "status", "error_type",
    "attempt", "cluster", "model", "tool", "cause", "request_id", "method", "path", "http_status",
    "duration_ms",
)  # fmt: skip
# Libraries whose per-request INFO lines are noise (every migration step, every MCP POST).
NOISY = ("alembic", "httpx", "httpx2", "mcp", "uvicorn.error")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [f"{k}={getattr(record, k)}" for k in FIELDS if hasattr(record, k)]
        if not pairs:
            return line
        head, newline, rest = line.partition("\n")  # fields before a traceback, on line one
        return f"{head} {' '.join(pairs)}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "info", fmt: str = "text") -> None:
    """One handler on the root logger, on stderr (uvicorn's and the libraries' lines too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, LEVELS[level]))
