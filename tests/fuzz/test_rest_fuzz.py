"""The bounded cell of the REST fuzz (tests/fuzz/rest.py) that `make test` runs: schemathesis
over the live /openapi.json of the whole suite, 25 examples per operation, without the costly
coverage phase; no 5xx and no conformance failure. The long cell, with every phase:
`python -m tests.fuzz.rest --requests 10000`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.rest import QUICK_PHASES, fuzz, running_stack


@pytest.mark.timeout(120)
def test_the_rest_surface_answers_every_fuzzed_request_as_documented(tmp_path: Path) -> None:
    with running_stack(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}") as base_url:
        outcome = fuzz(base_url, requests=1, max_examples=25, seed=20261101, phases=QUICK_PHASES)
    assert outcome.failures == 0, outcome.report
    assert outcome.server_errors == 0, outcome.report
    assert outcome.requests >= 300, outcome  # the run reached every operation, many times
