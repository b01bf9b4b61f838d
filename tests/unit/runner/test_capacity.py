"""capacity.py: runs in flight are bounded by a memory budget (claims stop when resident memory
reaches it; the runs in flight then are what fits) and, when an operator sets one, by a count."""

from __future__ import annotations

import pytest

from services.runner.capacity import (
    PER_RUN_PRIOR,
    REGROW,
    UNBOUNDED,
    Capacity,
    budget_bytes,
    open_files,
)

MB = 2**20


class Resident:
    """The process's resident memory, as the test sets it."""

    def __init__(self, value: int | None) -> None:
        self.value = value

    def __call__(self) -> int | None:
        return self.value


def test_a_count_alone_is_the_limit_and_one_run_is_always_admitted() -> None:
    capacity = Capacity(3, None, Resident(None))
    try:
        assert capacity.limit == 3
        assert [capacity.admits(n) for n in range(5)] == [True, True, True, False, False]
    finally:
        capacity.close()
    over = Capacity(0, 100 * MB, Resident(200 * MB))  # already over its budget: one at a time
    try:
        assert over.admits(0) and not over.admits(1) and over.limit == 1
        assert over.admits(0) and not over.admits(1)
    finally:
        over.close()


def test_runs_fit_until_resident_memory_reaches_the_budget() -> None:
    resident = Resident(100 * MB)
    capacity = Capacity(0, 200 * MB, resident)
    try:
        assert capacity.limit == 100 * MB // PER_RUN_PRIOR  # what a claim may ask for at first
        resident.value = 150 * MB
        assert capacity.admits(500) and capacity.limit == 500 + 50 * MB // PER_RUN_PRIOR
        resident.value = 200 * MB  # reached with 800 in flight: 800 fit
        assert not capacity.admits(800) and capacity.limit == 800
        # Runs end; the process keeps the memory they freed (and reuses it): 800 still fit.
        assert capacity.admits(799) and not capacity.admits(800)
        resident.value = 200 * MB + 200 * MB // REGROW + 1  # it grew on: fewer fit
        assert not capacity.admits(700) and capacity.limit == 700
        resident.value = 150 * MB  # memory given back: room again
        assert capacity.admits(700)
    finally:
        capacity.close()


def test_a_count_caps_the_budget_and_no_reading_means_no_memory_bound() -> None:
    both = Capacity(10, 200 * MB, Resident(100 * MB))
    unreadable = Capacity(0, 100 * MB, Resident(None))
    try:
        assert both.limit == 10 and both.admits(9) and not both.admits(10)
        assert unreadable.limit == UNBOUNDED and unreadable.admits(10**6)
    finally:
        both.close()
        unreadable.close()


def test_the_budget_is_the_setting_or_a_share_of_the_memory_available() -> None:
    assert budget_bytes(512) == 512 * MB
    default = budget_bytes(0)
    assert default is None or default > 0


def test_the_soft_limit_on_open_files_is_raised_to_the_hard_one() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft > 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # as a low default would leave it
    try:
        limit = open_files()
        now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert limit == now and (hard == resource.RLIM_INFINITY or now == hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, now), hard))
