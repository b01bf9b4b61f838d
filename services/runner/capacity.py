"""How many runs a runner executes at once: as many as fit in its memory budget.

A run in flight waits on its model most of the time and holds no thread, so what bounds a runner
is the memory its runs hold, not a number of slots. The budget (PARLEY_RUNNER_MEMORY_MB; by
default three quarters of the memory the process may use: its cgroup's limit, else the machine's)
is divided by what one run costs: the process's resident memory above its idle level, per run in
flight, measured whenever the resident memory reaches a new peak (so memory a finished run freed,
which the process keeps and reuses, does not count twice), and never taken below PER_RUN_PRIOR
(runs differ; a first few small ones must not open the gates to thousands of large ones). An
operator's count (PARLEY_RUNNER_CONCURRENCY) caps it further. The worker claims while `admits`;
at the limit it waits for a run to end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Final

from services.common.metrics import RUNNER_MEMORY_BUDGET, RUNNER_SLOTS

log = logging.getLogger("parley.runner")
PER_RUN_PRIOR: Final = 256 * 1024  # bytes a run is assumed to hold until runs show more
BUDGET_SHARE: Final = 0.75  # of the memory the process may use, without PARLEY_RUNNER_MEMORY_MB
MIN_SAMPLE: Final = 16  # runs in flight before their memory says what one costs
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_NO_LIMIT: Final = 1 << 60  # cgroup v1 reports "no limit" as a huge number


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux: /proc, which answers from memory and never
    blocks); None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def available_bytes() -> int | None:
    """The memory this process may use: its cgroup's limit (v2, else v1), else the machine's."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                raw = file.read().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < _NO_LIMIT:
            limits.append(int(raw))
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    return min(limits) if limits else None


def budget_bytes(memory_mb: int) -> int | None:
    """PARLEY_RUNNER_MEMORY_MB in bytes, or (0) the default share of the available memory; None
    when neither is known (then only the operator's count bounds the runner)."""
    if memory_mb:
        return memory_mb * 2**20
    available = available_bytes()
    return int(available * BUDGET_SHARE) if available else None


class Capacity:
    """The runs one runner may execute at once: its memory budget's worth, at most `count` (0:
    no count)."""

    def __init__(
        self,
        count: int,
        budget: int | None,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self._count = count
        self._resident = resident
        idle = resident() if budget is not None else None
        # No reading of resident memory here: nothing to measure runs by, only the count counts.
        self._budget = budget if idle is not None else None
        self._idle = idle or 0
        self._peak = self._idle
        self._per_run = PER_RUN_PRIOR
        if budget is not None and idle is None:
            log.warning("resident memory cannot be read here: runs in flight are not bounded by it")
        self.limit = self._limit()
        RUNNER_SLOTS.inc(self.limit)  # inc: a test process may hold several runners
        RUNNER_MEMORY_BUDGET.inc(self._budget or 0)

    def _limit(self) -> int:
        if self._budget is None:
            return self._count or 1 << 31
        fits = max(1, (self._budget - self._idle) // self._per_run)
        return min(fits, self._count) if self._count else fits

    def admits(self, in_flight: int) -> bool:
        """Whether one more run may start now, `in_flight` running. One run always may."""
        if self._budget is not None and in_flight >= MIN_SAMPLE:
            resident = self._resident()
            if resident is not None and resident > self._peak:
                self._peak = resident
                per_run = (resident - self._idle) // in_flight
                if per_run > self._per_run:  # runs cost more than thought: fewer fit
                    self._per_run = per_run
                    self._set(self._limit())
        return in_flight < self.limit or in_flight == 0

    def _set(self, limit: int) -> None:
        RUNNER_SLOTS.inc(limit - self.limit)
        if limit < self.limit:
            log.info(
                "runs hold about %d KiB each: at most %d in flight in the memory budget",
                self._per_run // 1024,
                limit,
            )
        self.limit = limit

    def close(self) -> None:
        RUNNER_SLOTS.dec(self.limit)
        RUNNER_MEMORY_BUDGET.dec(self._budget or 0)
