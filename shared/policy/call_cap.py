"""A cap of calls per number: at most `CALLS_PER_NUMBER_LIMIT` in `CALLS_PER_NUMBER_WINDOW_HOURS`.

Each number has one record in the idempotency table (`cap:<E.164>`) holding its counted calls, each a time and a
token of its own (two instances may count at the same clock reading): `counts`, `[[time, token], ...]`, beside
`calls`, the times alone, as versions before tokens read and write them (a record such a version rewrote during a
rolling deploy has no `counts`: its calls count, with no token).
A call is counted with a conditional write right before it is sent (after the idempotency claim, so a replay
is not a new call, and after every other check, so a refused request is not counted): concurrent instances
race on the record's etag, and exactly `limit` of them win.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.errors import Problem
from shared.idempotency import Record, Store
from shared.logs import get_logger
from shared.phone import mask

log = get_logger(__name__)
COUNTING = "counting"
MAX_ATTEMPTS = 60  # conditional-write races; each lost race means another call was counted meanwhile
# The longest window CALLS_PER_NUMBER_WINDOW_HOURS takes. A record keeps its latest counts this long, whatever the
# window now: kept for a 24 h window only, it would not count its calls once the window grew to a week.
MAX_WINDOW_SECONDS = 366 * 24 * 3600
# The highest CALLS_PER_NUMBER_LIMIT. A record keeps its latest `limit` counts twice (`calls` and `counts`, about
# 57 characters a count) in one Table property of at most 32K characters: 1,000 overflowed it, and every later
# write to that number failed.
MAX_LIMIT = 500


@dataclass(frozen=True)
class Count:
    """One counted call: when, and which (the token tells apart counts made at the same clock reading)."""

    at: float
    token: str


@dataclass(frozen=True)
class CallCap:
    store: Store
    limit: int
    window_seconds: float
    clock: Callable[[], float] = time.time

    def _calls(self, number: str) -> tuple[Record | None, list[Count]]:
        """The number's record and the counts it keeps: the latest `limit` of the longest window, whatever the
        window now (a window made longer must find the calls already made in it; the cap decides by the latest
        `limit` alone), oldest first."""
        record = self.store.read("cap:" + number)
        if record is None or record.data is None:
            return record, []
        cutoff = self.clock() - MAX_WINDOW_SECONDS
        return record, sorted((count for count in _counts(record.data) if count.at > cutoff), key=lambda c: c.at)

    def _in_window(self, calls: list[Count]) -> list[Count]:
        cutoff = self.clock() - self.window_seconds
        return [count for count in calls if count.at > cutoff]

    def check(self, number: str, field: str = "to") -> None:
        """Refuse now when the number is already at its cap (read only: `/api/calls/validate` uses it too)."""
        in_window = self._in_window(self._calls(number)[1])
        if len(in_window) >= self.limit:
            raise self._refusal(number, in_window, field)

    def count(self, number: str, field: str = "to") -> Count:
        """Count one call to `number` (the answer is what `uncount` takes back), or refuse with
        `call_limit_reached` when the cap is reached."""
        mine: Count | None = None
        for _ in range(MAX_ATTEMPTS):
            record, calls = self._calls(number)
            if mine in calls:  # our write landed; its answer was lost, and the SDK's resend met a conflict
                return mine
            in_window = self._in_window(calls)
            if len(in_window) >= self.limit:
                raise self._refusal(number, in_window, field)
            mine = Count(self.clock(), uuid.uuid4().hex[:12])
            try:
                if self._write(record, number, [*calls, mine][-self.limit :]):
                    return mine
            except Problem:
                if self._landed(number, mine):  # its answer never came (azure-core sends no insert again)
                    return mine
                raise
            _pause()
        raise Problem("request_in_progress", "Too many concurrent calls to this number; try again.", retry_after=1)

    def _landed(self, number: str, mine: Count) -> bool:
        """Whether a count whose write failed is there all the same; False when storage cannot say either."""
        try:
            return mine in self._calls(number)[1]
        except Problem:
            return False

    def uncount(self, number: str, counted: Count) -> None:
        """Take back the call `counted`: it never reached Genesys, or Genesys refused it. The caller's answer is
        that failure, so when storage fails here too the call only stays counted (logged)."""
        try:
            for _ in range(MAX_ATTEMPTS):
                record, calls = self._calls(number)  # a call already gone from the record no longer counts anyway
                if record is None or counted not in calls:
                    return
                calls.remove(counted)
                if self.store.replace(replace(record, data=_stored(calls))) is not None:
                    return
                _pause()
            reason = "too many concurrent writes"
        except Problem as problem:
            reason = problem.code
        log.warning("Could not take back a call to %s that was not placed (%s); it stays counted", mask(number), reason)

    def _write(self, record: Record | None, number: str, calls: list[Count]) -> bool:
        """Conditional: False when another instance counted a call to this number first."""
        now = calls[-1].at
        expires_at = now + MAX_WINDOW_SECONDS  # then the purge timer may delete it
        data = _stored(calls)
        if record is None:
            fresh = Record("cap:" + number, "", COUNTING, "cap", now, expires_at, data=data)
            return self.store.create(fresh) is not None
        return self.store.replace(replace(record, expires_at=expires_at, data=data)) is not None

    def _refusal(self, number: str, calls: list[Count], field: str) -> Problem:
        # Under the cap again once all but limit - 1 of the calls have left the window (the limit may have been
        # lowered since they were counted).
        frees_at = sorted(count.at for count in calls)[len(calls) - self.limit] + self.window_seconds
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


def _counts(data: dict[str, Any]) -> list[Count]:
    if "counts" in data:
        return [Count(float(at), str(token)) for at, token in data["counts"]]
    return [Count(float(at), "") for at in data.get("calls", [])]


def _stored(calls: list[Count]) -> dict[str, Any]:
    return {"calls": [count.at for count in calls], "counts": [[count.at, count.token] for count in calls]}


def _pause() -> None:
    """A short random wait after losing a conditional-write race, so the racers spread out."""
    time.sleep(random.uniform(0.005, 0.05))
