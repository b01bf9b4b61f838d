"""What a reader is shown that is not data: a failed run's error title and docs link, from the
error catalogue with the docs base URL in force when the run is read or its event is sent. The
store keeps only the incident code and message, so a new PARLEY_DOCS_BASE_URL applies to every
run and event already written."""

from __future__ import annotations

from agents.v1 import conversation_service_pb2, run_pb2

from services.common.errors import CATALOGUE


class Presenter:
    def __init__(self, docs_url: str) -> None:
        self._docs_url = docs_url

    def run(self, run: run_pb2.Run) -> run_pb2.Run:
        """`run` with its error's title and docs_url filled in (in place)."""
        if run.HasField("error"):
            entry = CATALOGUE.get(run.error.type)
            if entry is not None:
                run.error.title = entry.title
                run.error.docs_url = f"{self._docs_url}/errors/{entry.slug}"
        return run

    def runs(
        self, page: conversation_service_pb2.ListRunsResponse
    ) -> conversation_service_pb2.ListRunsResponse:
        """A page of runs, each presented (in place)."""
        for run in page.runs:
            self.run(run)
        return page

    def event(self, event: run_pb2.RunEvent) -> run_pb2.RunEvent:
        """`event` as sent: a terminal event's failed run presented, in a copy (the same event
        object goes to every subscriber of the run)."""
        if not event.run.HasField("error"):
            return event
        shown = run_pb2.RunEvent()
        shown.CopyFrom(event)
        self.run(shown.run)
        return shown
