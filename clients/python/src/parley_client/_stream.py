"""Reading a run's event stream across reconnections, for both clients (sans-IO).

`SSEDecoder` turns text/event-stream lines into messages (the WHATWG rules). `EventCursor` keeps
the last `seq` delivered: each connection asks for the events after it (`after_seq` and
`Last-Event-ID`), and an event at or before it is dropped, so a resumed stream repeats and loses
nothing. It also decides when the stream is over, and when a failure ends it for good.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from parley_client._retries import RetryPolicy
from parley_client.errors import ParleyAPIError, ParleyConnectionError, problem_error
from parley_client.events import RunEvent, parse_event
from parley_client.models import Run

# The gateway sends a keep-alive comment every 15 s: a connection quiet for longer is dead.
IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line (without its end of line); a complete message at a blank line."""
        if not line:
            if not self._data:
                self._event = None
                return None
            message = ServerSentEvent("\n".join(self._data), self._event, self._id)
            self._data, self._event = [], None
            return message
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


class EventCursor:
    """One run's stream, over as many connections as it takes."""

    def __init__(self, run_id: str, after_seq: int, policy: RetryPolicy) -> None:
        self.run_id = run_id
        self.last_seq = after_seq
        self.done = False
        self.final_run: Run | None = None  # the terminal event's run, once seen
        self._policy = policy
        self._failures = 0  # consecutive connections that ended without a new event
        self._progress = False
        self._decoder = SSEDecoder()

    @property
    def path(self) -> str:
        return f"/agents/runs/{quote(self.run_id, safe='')}/events"

    def request(self) -> tuple[dict[str, int], dict[str, str]]:
        """Query and headers of the next connection: everything after the last event seen."""
        self._decoder = SSEDecoder()
        self._progress = False
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if not self.last_seq:
            return {}, headers
        return {"after_seq": self.last_seq}, {**headers, "last-event-id": str(self.last_seq)}

    def feed(self, line: str) -> RunEvent | None:
        """The event a line completes, unless already delivered. An `error` event raises the
        problem it carries (the server ended the stream with it)."""
        message = self._decoder.feed(line)
        if message is None:
            return None
        if message.event == "error":
            try:
                problem = json.loads(message.data)
            except json.JSONDecodeError:
                problem = message.data
            raise problem_error(500, problem)
        event = parse_event(json.loads(message.data), message.event)
        if event.seq <= self.last_seq:
            return None
        self.last_seq = event.seq
        self._progress = True
        self._failures = 0
        if event.is_terminal:
            self.done = True
            run = getattr(event, "run", None)
            self.final_run = run if isinstance(run, Run) else None
            if self.final_run is not None and (self.final_run.latest_event_seq or 0) < event.seq:
                # Older servers numbered the terminal event after copying the run into it
                # (its latest_event_seq lagged); the terminal event is the run's last one.
                self.final_run.latest_event_seq = event.seq
        return event

    def ended(self) -> bool:
        """The server closed the stream without a terminal event (a restart, a proxy). True
        when that connection brought nothing new: then check whether the run is over."""
        return not self.done and not self._progress

    def checked(self, run: Run) -> None:
        """The run as read after a connection that brought nothing new: a terminal run has
        nothing more to stream."""
        if run.is_terminal:
            self.done = True
            self.final_run = run

    def retry_delay(self, failure: Exception | None) -> float:
        """Seconds to wait before connecting again after `failure` (None: the stream ended
        early). Raises when it is not worth it: a client error, or a run of connections that
        each failed without bringing a new event."""
        if isinstance(failure, ParleyAPIError) and not (
            failure.status >= 500 or failure.status == 429
        ):
            raise failure
        if not self._progress:
            self._failures += 1
        self._progress = False
        if self._failures > self._policy.max_retries:
            if isinstance(failure, ParleyAPIError):
                raise failure
            raise ParleyConnectionError(
                f"the event stream of run {self.run_id} failed {self._failures} times in a row "
                f"after seq {self.last_seq}: {failure!r}"
            ) from failure
        return self._policy.backoff(max(self._failures - 1, 0))
