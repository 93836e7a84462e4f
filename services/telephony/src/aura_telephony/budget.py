"""The turn budget: one clock per webhook from which every downstream deadline is cut."""

from __future__ import annotations

import time
from collections.abc import Callable


class BudgetExhaustedError(Exception):
    """No time is left in the turn for another downstream call."""


class TurnBudget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._deadline - self._clock())

    def timeout(self, cap: float, reserve: float = 0.0) -> float:
        """A deadline for one call: at most `cap`, leaving `reserve` for what comes after."""
        left = min(cap, self.remaining() - reserve)
        if left <= 0:
            raise BudgetExhaustedError
        return left
