"""The catalogue is the single source of truth for errors: its rows must be sound and complete."""

from __future__ import annotations

import re
from pathlib import Path

import grpc

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


def test_every_code_raised_in_the_source_is_catalogued() -> None:
    raised = set()
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py")]:
        raised |= set(re.findall(r'ParleyError\(\s*"([A-Za-z]+)"', path.read_text()))
    assert raised, "expected to find raise sites"
    assert raised <= set(CATALOGUE), raised - set(CATALOGUE)


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
