"""When a failed request is sent again, and after how long: one policy for both clients."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from enum import Enum

import httpx

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
# Failures before the request left this machine: safe to repeat even a non-idempotent call.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Replay(Enum):
    IDEMPOTENT = "idempotent"  # twice has the effect of once: retry any transient failure
    UNSENT = "unsent"  # retry only what surely never reached Parley (and 429s)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(
        self,
        replay: Replay,
        attempt: int,
        *,
        failure: httpx.TransportError | None = None,
        response: httpx.Response | None = None,
    ) -> float | None:
        """Seconds to wait before sending again after failed attempt `attempt` (from 0), or
        None to give up."""
        if attempt >= self.max_retries:
            return None
        if failure is not None:
            if replay is Replay.UNSENT and not isinstance(failure, _UNSENT):
                return None
            return self.backoff(attempt)
        assert response is not None
        if response.status_code not in RETRYABLE_STATUSES:
            return None
        if replay is Replay.UNSENT and response.status_code != 429:
            return None
        retry_after = _retry_after(response.headers.get("retry-after"))
        return self.backoff(attempt) if retry_after is None else retry_after

    def backoff(self, attempt: int) -> float:
        """Exponential, with jitter so that many clients do not come back in step."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2.0**attempt)
        return ceiling * random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Deadline:
    """A timeout as a point in time (None: no deadline)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at
