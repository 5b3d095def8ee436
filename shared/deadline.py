"""A wall-clock budget for one operation, so every retry and wait fits inside the caller's patience."""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds  # the whole budget, as given
        self._ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def allows(self, seconds: float) -> bool:
        """Whether `seconds` more (a wait plus the request after it) still fit."""
        return self.remaining() > seconds
