"""Every gateway failure as RFC 7807 `application/problem+json`, from one catalogue.

gRPC statuses find their row through ErrorInfo (`entry_from_status`); the gateway's own failures
(decode, routing, size, media type) name their row directly. Anything unexpected is logged once
with its log id and answered as InternalError, without a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
import orjson

from services.common.errors import CATALOGUE, CatalogueEntry, entry_from_status, status_of

log = logging.getLogger("parley.gateway")

CONTENT_TYPE = "application/problem+json"

# grpc-gateway's HTTPStatusFromCode, for rows without an HTTP status of their own.
HTTP_STATUS_FROM_CODE = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Details for statuses that carry no ErrorInfo: the channel's own text names internal addresses.
_GENERIC_DETAIL = {
    grpc.StatusCode.UNAVAILABLE: "the API service is not reachable; try again shortly",
    grpc.StatusCode.CANCELLED: "the API service dropped the call under load; try again shortly",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the API service did not answer in time",
}


@dataclass(frozen=True)
class Problem:
    entry: CatalogueEntry
    status: int
    detail: str

    def body(self, docs_url: str, instance: str, log_id: str) -> bytes:
        return orjson.dumps(
            {
                "type": f"{docs_url}/errors/{self.entry.slug}",
                "title": self.entry.title,
                "status": self.status,
                "detail": self.detail,
                "instance": instance,
                "log_id": log_id,
            }
        )


def http_status(entry: CatalogueEntry) -> int:
    return entry.http_status or HTTP_STATUS_FROM_CODE.get(entry.grpc_code, 500)


def catalogued(code: str, detail: str) -> Problem:
    """A problem for one of the gateway's own rows (InvalidRequest, RouteNotFound, ...)."""
    entry = CATALOGUE[code]
    return Problem(entry, http_status(entry), detail)


def from_rpc_error(error: grpc.aio.AioRpcError, log_id: str) -> Problem:
    code = error.code()
    status = status_of(error)
    entry = entry_from_status(status, code)
    if status is not None and status.code == code.value[0]:
        detail = status.message
    elif status is None and code in _GENERIC_DETAIL:
        detail = _GENERIC_DETAIL[code]
    elif status is None and entry.code == "InternalError":
        log.error(
            "API answered %s without ErrorInfo (log_id %s): %s", code.name, log_id, error.details()
        )
        detail = f"internal error; log_id {log_id}"
    else:
        detail = error.details() or entry.title
    return Problem(entry, http_status(entry), detail)


def unexpected(exc: BaseException, log_id: str) -> Problem:
    """A gateway bug: logged once (with the log id), never shown to the caller."""
    log.error("unexpected gateway error (log_id %s): %r", log_id, exc, exc_info=exc)
    return catalogued("InternalError", f"internal error; log_id {log_id}")
