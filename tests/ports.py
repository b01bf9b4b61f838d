"""Ports for the processes tests start, picked where nothing else takes them.

A port picked by binding port 0 is in the kernel's ephemeral range (net.ipv4.ip_local_port_range,
32768 and up here), where any outgoing connection of another process may take it between the pick
and the child's bind ("Address already in use" under load). These are picked below that range,
from a slice of it of each pytest-xdist worker's own, and never twice in one session.
"""

from __future__ import annotations

import os
import random
import socket

_LOW, _HIGH = 20000, 32000


def _slice() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...; unset without xdist
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = (_HIGH - _LOW) // max(count, 1)
    low = _LOW + (index % max(count, 1)) * width
    return low, low + width - 1


_picked: set[int] = set()


def free_port() -> int:
    low, high = _slice()
    while True:
        port = random.randint(low, high)
        if port in _picked:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _picked.add(port)
        return port


def free_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]
