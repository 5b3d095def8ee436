"""A cap of calls per number: at most `CALLS_PER_NUMBER_LIMIT` in `CALLS_PER_NUMBER_WINDOW_HOURS`.

Each number has one record in the idempotency table (`cap:<E.164>`) holding the times of its counted calls.
A call is counted with a conditional write right before it is sent (after the idempotency claim, so a replay
is not a new call, and after every other check, so a refused request is not counted): concurrent instances
race on the record's etag, and exactly `limit` of them win.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from shared.errors import Problem
from shared.idempotency import Record, Store
from shared.logs import get_logger
from shared.phone import mask

log = get_logger(__name__)
COUNTING = "counting"
MAX_ATTEMPTS = 60  # conditional-write races; each lost race means another call was counted meanwhile


@dataclass(frozen=True)
class CallCap:
    store: Store
    limit: int
    window_seconds: float
    clock: Callable[[], float] = time.time

    def _calls(self, number: str) -> tuple[Record | None, list[float]]:
        record = self.store.read("cap:" + number)
        if record is None or record.data is None:
            return record, []
        cutoff = self.clock() - self.window_seconds
        return record, [t for t in record.data.get("calls", []) if t > cutoff]

    def check(self, number: str, field: str = "to") -> None:
        """Refuse now when the number is already at its cap (read only: `/api/calls/validate` uses it too)."""
        _, calls = self._calls(number)
        if len(calls) >= self.limit:
            raise self._refusal(number, calls, field)

    def count(self, number: str, field: str = "to") -> float:
        """Count one call to `number` (the answer is when, for `uncount`), or refuse with `call_limit_reached`
        when the cap is reached."""
        counted_at: float | None = None
        for _ in range(MAX_ATTEMPTS):
            record, calls = self._calls(number)
            if counted_at in calls:  # our write landed; its answer was lost, and the SDK's resend met a conflict
                return counted_at
            if len(calls) >= self.limit:
                raise self._refusal(number, calls, field)
            counted_at = self.clock()
            try:
                if self._write(record, number, [*calls, counted_at], counted_at):
                    return counted_at
            except Problem:
                if self._landed(number, counted_at):  # its answer never came (azure-core sends no insert again)
                    return counted_at
                raise
            _pause()
        raise Problem("request_in_progress", "Too many concurrent calls to this number; try again.", retry_after=1)

    def _landed(self, number: str, counted_at: float) -> bool:
        """Whether a count whose write failed is there all the same; False when storage cannot say either."""
        try:
            return counted_at in self._calls(number)[1]
        except Problem:
            return False

    def uncount(self, number: str, counted_at: float) -> None:
        """Take back the call counted at `counted_at`: it never reached Genesys, or Genesys refused it. The
        caller's answer is that failure, so when storage fails here too the call only stays counted (logged)."""
        try:
            for _ in range(MAX_ATTEMPTS):
                record, calls = self._calls(number)  # a call already out of the window no longer counts anyway
                if record is None or counted_at not in calls:
                    return
                calls.remove(counted_at)
                if self.store.replace(replace(record, data={"calls": calls})) is not None:
                    return
                _pause()
            reason = "too many concurrent writes"
        except Problem as problem:
            reason = problem.code
        log.warning("Could not take back a call to %s that was not placed (%s); it stays counted", mask(number), reason)

    def _write(self, record: Record | None, number: str, calls: list[float], now: float) -> bool:
        """Conditional: False when another instance counted a call to this number first."""
        expires_at = max(calls) + self.window_seconds  # then the purge timer may delete the record
        if record is None:
            fresh = Record("cap:" + number, "", COUNTING, "cap", now, expires_at, data={"calls": calls})
            return self.store.create(fresh) is not None
        return self.store.replace(replace(record, expires_at=expires_at, data={"calls": calls})) is not None

    def _refusal(self, number: str, calls: list[float], field: str) -> Problem:
        # Under the cap again once all but limit - 1 of the calls have left the window (the limit may have been
        # lowered since they were counted).
        frees_at = sorted(calls)[len(calls) - self.limit] + self.window_seconds
        wait = max(1, math.ceil(frees_at - self.clock()))
        log.info("Refused a call to %s: %d calls in the window", mask(number), len(calls))
        return Problem(
            "call_limit_reached",
            f"'{field}' was called {len(calls)} times in the last {self.window_seconds / 3600:g} hours; the limit "
            f"is {self.limit} (CALLS_PER_NUMBER_LIMIT).",
            field=field,
            retry_after=wait,
            extensions={"callsInWindow": len(calls), "limit": self.limit},
        )


def _pause() -> None:
    """A short random wait after losing a conditional-write race, so the racers spread out."""
    time.sleep(random.uniform(0.005, 0.05))
