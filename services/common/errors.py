"""The error catalogue (errors.toml) and ParleyError, sent as google.rpc.Status + ErrorInfo.

Service code raises `ParleyError("VersionConflict", "expected 3, now 5", current_version=5)`;
the gRPC interceptor turns it into a status; the gateway turns the status into RFC 7807 and the
API fills a failed run's title/docs_url from the same rows. No title or status is written elsewhere.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "parley.dev"


@dataclass(frozen=True)
class CatalogueEntry:
    code: str  # incident code, e.g. AgentLoopMaxIterationsExceeded
    slug: str
    reason: str
    grpc_code: grpc.StatusCode
    http_status: int | None
    title: str
    advice: str


def _load() -> dict[str, CatalogueEntry]:
    rows = tomllib.loads((Path(__file__).with_name("errors.toml")).read_text())
    return {
        code: CatalogueEntry(
            code,
            r["slug"],
            r["reason"],
            grpc.StatusCode[r["grpc"]],
            r.get("http"),
            r["title"],
            r["advice"],
        )
        for code, r in rows.items()
    }


CATALOGUE: dict[str, CatalogueEntry] = _load()
BY_REASON: dict[str, CatalogueEntry] = {e.reason: e for e in CATALOGUE.values()}
BY_SLUG: dict[str, CatalogueEntry] = {e.slug: e for e in CATALOGUE.values()}

# The row for a status that carries no ErrorInfo (raised by the channel, or a bug).
_FALLBACK_BY_GRPC_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidRequest",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.NOT_FOUND: "RouteNotFound",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
    # A callee that drops a call (gRPC core shedding load) answers CANCELLED: retryable.
    grpc.StatusCode.CANCELLED: "ServiceUnavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Timeout",
}


def fallback_entry(code: grpc.StatusCode) -> CatalogueEntry:
    return CATALOGUE[_FALLBACK_BY_GRPC_CODE.get(code, "InternalError")]


class ParleyError(Exception):
    """A catalogued failure: `detail` is request-specific, metadata goes into ErrorInfo."""

    def __init__(self, code: str, detail: str, **metadata: object) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"{code} is not in errors.toml")
        super().__init__(detail)
        self.entry = CATALOGUE[code]
        self.detail = detail
        self.metadata = {k: str(v) for k, v in metadata.items()}

    def to_grpc_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.entry.reason,
            domain=DOMAIN,
            metadata={"incident_code": self.entry.code, "slug": self.entry.slug, **self.metadata},
        )
        status = status_pb2.Status(code=self.entry.grpc_code.value[0], message=self.detail)
        status.details.add().Pack(info)
        grpc_status: grpc.Status = rpc_status.to_status(status)
        return grpc_status


def entry_from_status(status: status_pb2.Status | None, code: grpc.StatusCode) -> CatalogueEntry:
    """The catalogue row for a received status: its ErrorInfo reason, else the code's fallback."""
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == DOMAIN and info.reason in BY_REASON:
                    return BY_REASON[info.reason]
    return fallback_entry(code)


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status a failed call carried in its trailers; None when absent or garbled."""
    for key, value in error.trailing_metadata() or ():
        if key == _STATUS_DETAILS_KEY:
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # noqa: BLE001 - a malformed trailer is treated as absent
                return None
    return None


def entry_of(error: grpc.aio.AioRpcError) -> CatalogueEntry:
    """The catalogue row of a failed call: its ErrorInfo, else its code's generic row."""
    return entry_from_status(status_of(error), error.code())
