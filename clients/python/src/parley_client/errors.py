"""What the client raises. RFC 7807 problems become `ParleyAPIError` subclasses by HTTP status
(`VersionConflict` and `RunIdConflict` by their `type` too); network failures that outlast the
retries become `ParleyConnectionError`."""

from __future__ import annotations

import json
from typing import Any

import httpx


class ParleyError(Exception):
    """Everything this client raises derives from it."""


class ParleyConnectionError(ParleyError):
    """Parley could not be reached, or the connection failed, after every retry."""


class ParleyTimeoutError(ParleyConnectionError, TimeoutError):
    """A request timed out after every retry."""


class WaitTimeout(ParleyError, TimeoutError):
    """`runs.wait` gave up: the run was not terminal when its timeout passed."""

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"run {run_id} was not terminal after {timeout:g} s")
        self.run_id = run_id
        self.timeout = timeout


class ParleyAPIError(ParleyError):
    """An RFC 7807 problem: `type` is the docs URL of the error (its last segment, `slug`,
    names it), `detail` says what was wrong with this request, `log_id` finds it in the logs."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        instance: str | None = None,
        log_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.log_id = log_id
        self.body = body

    @property
    def slug(self) -> str:
        """The catalogue slug, e.g. "version-conflict"."""
        return self.type.rstrip("/").rpartition("/")[2]


class BadRequestError(ParleyAPIError):
    """400: the request is invalid; `detail` says which field and why."""


class AuthenticationError(ParleyAPIError):
    """401: no bearer token, or a bad or expired one."""


class PermissionDeniedError(ParleyAPIError):
    """403: the token lacks the scope this call needs."""


class NotFoundError(ParleyAPIError):
    """404: no such object for this user (another user's objects look the same)."""


class ConflictError(ParleyAPIError):
    """409: the call conflicts with the object's state (e.g. cancelling a finished run)."""


class VersionConflict(ConflictError):
    """409 version-conflict: the conversation moved on, a run is still in flight on it, or it
    waits for tool outputs. Refetch the conversation (and its messages), then decide."""


class RunIdConflict(ConflictError):
    """409 run-id-conflict: the `run_id` given to `runs.start` names a run another request
    started (on another conversation, or with another body). Resend that request unchanged, or
    choose a new run_id."""


class RateLimitError(ParleyAPIError):
    """429: slow down (retried automatically, honouring Retry-After)."""


class ServerError(ParleyAPIError):
    """5xx: Parley (or a proxy before it) failed; retried automatically where that is safe."""


_BY_STATUS: dict[int, type[ParleyAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}
_BY_SLUG: dict[str, type[ParleyAPIError]] = {
    "version-conflict": VersionConflict,
    "run-id-conflict": RunIdConflict,
}


def problem_error(status: int, problem: Any) -> ParleyAPIError:
    """The exception for a problem body (a dict when it is RFC 7807, else whatever came)."""
    fields = problem if isinstance(problem, dict) else {}
    status = int(fields.get("status") or status)
    type_ = str(fields.get("type") or "about:blank")
    cls = _BY_SLUG.get(type_.rstrip("/").rpartition("/")[2]) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ParleyAPIError
    return cls(
        status,
        type=type_,
        title=str(fields.get("title") or ""),
        detail=str(fields.get("detail") or ("" if fields else str(problem or "")[:500])),
        instance=fields.get("instance"),
        log_id=fields.get("log_id"),
        body=problem,
    )


def error_from_response(response: httpx.Response) -> ParleyAPIError:
    """The exception for an HTTP error answer (its body must have been read)."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if not isinstance(body, dict):
        body = {"title": response.reason_phrase, "detail": str(body)[:500]}
    return problem_error(response.status_code, body)


def connection_error(exc: httpx.TransportError) -> ParleyConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return ParleyTimeoutError(f"request timed out: {exc!r}")
    return ParleyConnectionError(f"could not reach Parley: {exc!r}")
