"""Helpers shared by the test suites."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait until `condition` holds, for state that changes in another process on its own
    schedule (a health watcher, a reconnect); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what or condition}")
        time.sleep(0.05)
