"""Schemathesis hooks for the REST fuzz (SCHEMATHESIS_HOOKS=tests.fuzz.hooks): all traffic stays
on this machine. A generated MCP URL that the schema accepts is sent as a loopback URL nobody
listens on (the schema still accepts it, so the case keeps its positive or negative kind); one
the schema refuses is sent as generated, to be refused."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

LOOPBACK_MCP = "http://127.0.0.1:9/mcp"  # the discard port: connecting fails at once
_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+")


def _loopback(node: Any, in_servers: bool = False) -> Any:
    if isinstance(node, list):
        return [_loopback(item, in_servers) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if in_servers and key == "url" and isinstance(value, str) and _URL.fullmatch(value):
            out[key] = LOOPBACK_MCP
        else:
            out[key] = _loopback(value, in_servers or key == "mcp_servers")
    return out


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, dict | list):
        case.body = _loopback(case.body)
