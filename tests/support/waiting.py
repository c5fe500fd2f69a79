"""Polling for the next step of an integration test (a trigger, not a timing assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable

WAIT_S = 300.0  # an upper bound for slow shared machines, not a timing assertion


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    """Return once `predicate()` is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.1)
