"""What both clients send with every request: the base URL, the headers, the timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from parley_client._retries import Deadline, RetryPolicy
from parley_client._stream import IDLE_TIMEOUT_S

VERSION = "0.1.0"
USER_AGENT = f"parley-client/{VERSION}"
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Options:
    base_url: str
    token: str
    timeout: httpx.Timeout
    policy: RetryPolicy
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        base_url: str,
        token: str,
        timeout: float | httpx.Timeout,
        max_retries: int,
        headers: dict[str, str] | None,
    ) -> Options:
        if not base_url:
            raise ValueError("base_url is required, e.g. http://127.0.0.1:8080")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        return cls(
            base_url.rstrip("/"),
            token,
            timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            RetryPolicy(max_retries=max_retries),
            dict(headers or {}),
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self.token}",
            "user-agent": USER_AGENT,
            "accept": "application/json",
            **self.extra_headers,
            **(extra or {}),
        }

    def stream_timeout(self, deadline: Deadline | None) -> httpx.Timeout:
        """An event stream's read timeout is how long it may stay quiet (keep-alives arrive
        well within it), shortened to what is left of a deadline."""
        remaining = deadline.remaining() if deadline is not None else None
        read = IDLE_TIMEOUT_S if remaining is None else min(IDLE_TIMEOUT_S, remaining)
        return httpx.Timeout(
            self.timeout.connect, read=read, write=self.timeout.write, pool=self.timeout.pool
        )
