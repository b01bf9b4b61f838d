"""The catalogue is the single source of truth for errors: its rows must be sound and complete."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grpc

from services.common import incidents
from services.common.errors import BY_REASON, BY_SLUG, CATALOGUE

ROOT = Path(__file__).resolve().parents[3]

# grpc-gateway's runtime.HTTPStatusFromCode.
GRPC_GATEWAY_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def test_rows_are_unique_and_well_formed() -> None:
    assert len(BY_REASON) == len(CATALOGUE) and len(BY_SLUG) == len(CATALOGUE)
    for code, entry in CATALOGUE.items():
        assert re.fullmatch(r"[A-Z][A-Za-z]+", code), code
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry.slug), entry.slug
        assert re.fullmatch(r"[A-Z][A-Z0-9_]{0,62}", entry.reason), entry.reason
        assert entry.title and len(entry.advice) > 40, code


def test_http_status_follows_grpc_gateway_unless_explained() -> None:
    import tomllib

    rows = tomllib.loads((ROOT / "services/common/errors.toml").read_text())
    for code, entry in CATALOGUE.items():
        if entry.http_status is None:
            continue  # asynchronous only: reported on a failed run
        if "http_note" not in rows[code]:
            assert entry.http_status == GRPC_GATEWAY_HTTP[entry.grpc_code], code


# Calls whose first argument (or `code=` / `type=`) is an incident code.
_CODE_TAKERS = frozenset({"ParleyError", "RunFailure", "ProviderError", "Stopped", "Fail"})
_CODE_TAKERS |= {"ModelFailed", "RunError", "catalogued"}  # catalogued: the gateway's own rows


def uncatalogued_codes(source: str, where: str = "<source>") -> list[str]:
    """Every literal incident code given to a code-taking call, and every `incidents.NAME` used,
    that the catalogue (or services/common/incidents.py) does not have."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in _CODE_TAKERS:
                continue
            args = [*node.args[:1], *(k.value for k in node.keywords if k.arg in ("code", "type"))]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if arg.value not in CATALOGUE:
                        found.append(f"{where}:{node.lineno}: {name}({arg.value!r})")
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "incidents":
            if not hasattr(incidents, node.attr):
                found.append(f"{where}:{node.lineno}: incidents.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "services.common.incidents":
            found += [
                f"{where}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if not hasattr(incidents, alias.name)
            ]
    return found


def test_every_incident_code_in_the_source_is_catalogued() -> None:
    """A typo in an incident code fails here, not as a failed run with no title."""
    paths = [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py")]
    assert len(paths) > 40
    found = [f for p in paths for f in uncatalogued_codes(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == []


def test_the_scan_sees_a_typo() -> None:
    source = (
        "from services.common.incidents import MODEL_TIMEOUT, MODEL_TIMEOUTS\n"
        "raise RunFailure('AgentLoopCanceled', 'x')\n"
        "ParleyError(code='VersionConflicts', detail='x')\n"
        "loop.Stopped(incidents.AGENT_LOOP_CANCELED, 'x')\n"
        "ProviderError('ModelTimeout', 'fine')\n"
        "problems.catalogued('RouteNotFund', 'x')\n"
    )
    assert [f.split(": ", 1)[1] for f in uncatalogued_codes(source)] == [
        "import MODEL_TIMEOUTS",
        "RunFailure('AgentLoopCanceled')",
        "ParleyError('VersionConflicts')",
        "catalogued('RouteNotFund')",
        "incidents.AGENT_LOOP_CANCELED",
    ]


def test_named_incident_codes_are_catalogued() -> None:
    assert incidents.ALL <= set(CATALOGUE)
    names = {v for k, v in vars(incidents).items() if k.isupper() and isinstance(v, str)}
    assert names == incidents.ALL  # every constant is listed, so the import-time check sees it


def test_spec_incident_codes_exist() -> None:
    for code in (
        "AgentLoopMaxIterationsExceeded",
        "AgentLoopSchemaDecodeFailed",
        "AgentLoopCancelled",
        "AgentLoopUnknownToolAlias",
        "McpDiscoveryFailed",
        "AgentLoopInvalidEffectiveConfig",
        "VersionConflict",
    ):
        assert code in CATALOGUE
    assert CATALOGUE["VersionConflict"].slug == "version-conflict"
    assert CATALOGUE["AgentLoopMaxIterationsExceeded"].slug == "max-iterations-exceeded"
    assert CATALOGUE["InvalidCallerToolName"].slug == "invalid-caller-tool-name"
