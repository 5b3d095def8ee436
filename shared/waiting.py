"""A failure handed to the requests that waited on it.

Some work is done once, under a lock, for every request that needs it: a cache's first load, a Genesys token, a
table's creation. When it fails, the requests that waited on the lock meanwhile would each try again in turn,
for up to their own time (a cold start in an outage: the sixteenth request minutes on). They get a copy of that
failure at once instead; a request that asks after it tries again, or after a hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from shared.errors import Problem

T = TypeVar("T")


class FailureForWaiters:
    """The last failure of work done under a lock, for the requests that asked before it ended.

    `handed_on` chooses the failures handed on: a token fetch's timeout within the fetching request's own short
    time is not the waiters'. Each gets a copy of its own: a caller may add to it (a hint), and none keeps another
    request's frames alive. A failure `held` is given, for `hold_seconds` after it, to the requests that ask then
    too: work refused for good (a permission the role lacks) is not done again by every request, while a failure
    that may pass (a Genesys 503 at a cold start) is tried again by the next.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        handed_on: Callable[[Problem], bool] = lambda _: True,
        *,
        held: Callable[[Problem], bool] = lambda _: False,
        hold_seconds: float = 0.0,
    ) -> None:
        self._clock = clock
        self._handed_on = handed_on
        self._is_held = held
        self._hold_seconds = hold_seconds
        self._failed: tuple[float, Problem] | None = None

    def asked(self) -> float:
        """Now, as a request asks: before it waits on the lock."""
        return self._clock()

    def attempt(self, asked_at: float, work: Callable[[], T]) -> T:
        """`work`, under the caller's lock; raises the failure that ended since `asked_at` instead, if one did."""
        failed = self._failed
        if failed is not None and (failed[0] >= asked_at or self._still_held(*failed)):
            raise replace(failed[1])
        try:
            done = work()
        except Problem as problem:
            self._failed = (self._clock(), replace(problem)) if self._handed_on(problem) else None
            raise
        self._failed = None
        return done

    def _still_held(self, failed_at: float, problem: Problem) -> bool:
        return self._is_held(problem) and self._clock() - failed_at < self._hold_seconds
