"""capacity.py: runs in flight are bounded by a memory budget (what one run costs, learned from the
process's resident memory at its peaks) and, when an operator sets one, by a count."""

from __future__ import annotations

from services.runner.capacity import MIN_SAMPLE, PER_RUN_PRIOR, Capacity, budget_bytes

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
    tight = Capacity(0, 100 * MB, Resident(200 * MB))  # already over its budget
    try:
        assert tight.limit == 1 and tight.admits(0) and not tight.admits(1)
    finally:
        tight.close()


def test_the_budget_holds_as_many_runs_as_fit_and_learns_what_a_run_costs() -> None:
    resident = Resident(100 * MB)
    capacity = Capacity(0, 100 * MB + 1000 * PER_RUN_PRIOR, resident)
    try:
        assert capacity.limit == 1000
        resident.value = 100 * MB + MIN_SAMPLE * PER_RUN_PRIOR // 2  # runs cost less: prior holds
        assert capacity.admits(MIN_SAMPLE) and capacity.limit == 1000
        resident.value = 100 * MB + 100 * 4 * PER_RUN_PRIOR  # 100 runs hold 4 priors each
        assert capacity.admits(100) and capacity.limit == 250
        assert not capacity.admits(250)
        # Runs end; the process keeps the memory they freed (it reuses it): no fewer fit.
        assert capacity.admits(MIN_SAMPLE) and capacity.limit == 250
    finally:
        capacity.close()


def test_a_count_caps_the_budget_and_no_reading_means_no_memory_bound() -> None:
    both = Capacity(10, 100 * MB + 1000 * PER_RUN_PRIOR, Resident(100 * MB))
    unreadable = Capacity(0, 100 * MB, Resident(None))
    try:
        assert both.limit == 10
        assert unreadable.limit >= 1 << 31 and unreadable.admits(10**6)
    finally:
        both.close()
        unreadable.close()


def test_the_budget_is_the_setting_or_a_share_of_the_memory_available() -> None:
    assert budget_bytes(512) == 512 * MB
    default = budget_bytes(0)
    assert default is None or default > 0
