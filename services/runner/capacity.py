"""How many runs a runner executes at once: as many as fit in its memory budget.

A run in flight waits on its model most of the time and holds no thread, so what bounds a runner
is the memory its runs hold, not a number of slots. The worker claims runs while the process's
resident memory is below its budget (PARLEY_RUNNER_MEMORY_MB; by default three quarters of the
memory the process may use: its cgroup's limit, else the machine's). When the resident memory
reaches the budget, the runs in flight then are the runs that fit: claims stop, and resume as runs
end and fewer than that are in flight (the memory a finished run freed is kept by the process and
reused, so resident memory need not fall first). Should it grow on by a sixteenth of the budget,
fewer fit: as many as are in flight then. A claim asks for no more runs than the memory left would
hold at PER_RUN_PRIOR each. An operator's count (PARLEY_RUNNER_CONCURRENCY) caps it all. A run
in flight holds a connection to its model, so the runner raises its soft limit on open files to
the hard one (`open_files`): the usual soft default, 1,024, would bound it before memory does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Final

from services.common.metrics import RUNNER_MEMORY_BUDGET, RUNNER_SLOTS

log = logging.getLogger("parley.runner")
PER_RUN_PRIOR: Final = 256 * 1024  # bytes a run may hold, for the size of one claim
BUDGET_SHARE: Final = 0.75  # of the memory the process may use, without PARLEY_RUNNER_MEMORY_MB
REGROW: Final = 16  # resident memory this fraction of the budget past it: fewer runs fit
UNBOUNDED: Final = 1 << 31
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


def open_files() -> int | None:
    """Raise this process's soft limit on open files to its hard limit; the limit now (None where
    there is no such limit)."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20  # the kernel's usual nr_open
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def budget_bytes(memory_mb: int) -> int | None:
    """PARLEY_RUNNER_MEMORY_MB in bytes, or (0) the default share of the available memory; None
    when neither is known (then only the operator's count bounds the runner)."""
    if memory_mb:
        return memory_mb * 2**20
    available = available_bytes()
    return int(available * BUDGET_SHARE) if available else None


class Capacity:
    """The runs one runner may execute at once: what fits in `budget` bytes of resident memory
    (None: no memory bound), at most `count` (0: no count). `limit` is that number as known now
    (the `parley_runner_slots` gauge)."""

    def __init__(
        self,
        count: int,
        budget: int | None,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self._count = count
        self._resident = resident
        now = resident() if budget is not None else None
        if budget is not None and now is None:
            log.warning("resident memory cannot be read here: runs in flight are not bounded by it")
        self._budget = budget if now is not None else None
        self._fits: int | None = None  # runs in flight when resident memory reached the budget
        self._over_at = 0  # resident memory then
        self.limit = 0
        self._show(self._estimate(0, now))
        RUNNER_MEMORY_BUDGET.inc(self._budget or 0)  # inc: a test process may hold several

    def admits(self, in_flight: int) -> bool:
        """Whether one more run may start now, `in_flight` running. One run always may."""
        if self._budget is None or in_flight == 0:
            return in_flight < self.limit or in_flight == 0
        resident = self._resident()
        if resident is None:
            return in_flight < self.limit
        if resident >= self._budget and (
            self._fits is None or resident > self._over_at + self._budget // REGROW
        ):
            self._fits, self._over_at = max(1, in_flight), resident
            log.info(
                "resident memory reached the runner's budget (%d MiB) with %d runs in flight: "
                "at most that many from now on",
                self._budget // 2**20,
                self._fits,
            )
        self._show(self._estimate(in_flight, resident))
        return in_flight < self.limit

    def _estimate(self, in_flight: int, resident: int | None) -> int:
        """The runs that fit: those in flight when the budget was reached, while resident memory
        is at it; below it, those in flight and what the memory left holds at PER_RUN_PRIOR."""
        fits = UNBOUNDED
        if self._budget is not None and resident is not None:
            if resident >= self._budget and self._fits is not None:
                fits = self._fits
            else:
                fits = in_flight + max(1, (self._budget - resident) // PER_RUN_PRIOR)
        return min(fits, self._count) if self._count else fits

    def _show(self, limit: int) -> None:
        RUNNER_SLOTS.inc(limit - self.limit)
        self.limit = limit

    def close(self) -> None:
        RUNNER_SLOTS.dec(self.limit)
        RUNNER_MEMORY_BUDGET.dec(self._budget or 0)
