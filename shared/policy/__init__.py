"""Who may be called, and when: the calling policy checked before anything reaches Genesys.

In order: destination country (`countries`), the do-not-call list (`do_not_call`), calling hours in the
callee's local time (`calling_hours`), the cap per number (`call_cap`). `/api/calls/validate` runs them all
without changing anything; placing a call counts it against the cap right before it is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.phone import PhoneNumber
from shared.policy.call_cap import CallCap, Count
from shared.policy.calling_hours import CallingHours
from shared.policy.countries import check_country
from shared.policy.do_not_call import DoNotCallList, check_do_not_call

__all__ = ["RECHECK_AFTER_SECONDS", "CallPolicy"]
RECHECK_AFTER_SECONDS = 2.0  # a send this soon after the checks is as they found it: no second read per call


@dataclass(frozen=True)
class CallPolicy:
    allowed_countries: frozenset[str] | None
    do_not_call: DoNotCallList
    hours: CallingHours
    cap: CallCap | None
    clock: Callable[[], float] = time.time

    def check(self, to: PhoneNumber, *, callback: bool, scheduled: datetime | None) -> datetime | None:
        """Raise the first rule the call breaks. For a callback without a time requested outside the
        callee's hours, the answer is when to schedule it instead (the next allowed moment)."""
        check_country(to, self.allowed_countries)
        check_do_not_call(to.e164, self.do_not_call)
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        schedule_at = None
        if callback and scheduled is None:
            allowed_at = self.hours.next_allowed_at(to.e164, to.region, now)
            if allowed_at is None:
                self.hours.check(to.e164, to.region, now)  # never allowed: raises with the reason
            elif allowed_at > now:
                schedule_at = allowed_at
        else:
            self._check_hours(to, scheduled, now)
        if self.cap is not None:
            self.cap.check(to.e164)
        return schedule_at

    def recheck(self, to: PhoneNumber, checked_at: float, *, scheduled: datetime | None) -> None:
        """Right before a send that comes `RECHECK_AFTER_SECONDS` or more after `check`: the do-not-call list and
        the hours again (at a callback's `scheduled` time, or now if that has passed: Genesys runs it at once).
        A send can come long after the check: behind another attempt with the same key (up to
        IDEMPOTENCY_WAIT_SECONDS), after a Genesys 429's Retry-After, a cold start's secret and token reads; a
        number listed or a window closed meanwhile must hold. A callback without a time is refused, not moved."""
        now = self.clock()
        if now - checked_at < RECHECK_AFTER_SECONDS:
            return
        check_do_not_call(to.e164, self.do_not_call)
        self._check_hours(to, scheduled, datetime.fromtimestamp(now, timezone.utc))

    def _check_hours(self, to: PhoneNumber, scheduled: datetime | None, now: datetime) -> None:
        """The callee's hours at `now`, or at a `scheduled` time, though not before now: Genesys runs a time in
        the past (up to the clock-skew allowance) at once."""
        if scheduled is None:
            self.hours.check(to.e164, to.region, now)
        else:
            self.hours.check(to.e164, to.region, max(scheduled, now), field="scheduledTime")

    def count(self, to: PhoneNumber) -> Count | None:
        """Count the call against the cap, right before it is sent; `call_limit_reached` when over it. The
        answer (the count; None without a cap) is what `uncount` takes back."""
        return self.cap.count(to.e164) if self.cap is not None else None

    def uncount(self, to: PhoneNumber, counted: Count) -> None:
        """A counted call that never reached Genesys, or that Genesys refused: no call was attempted."""
        if self.cap is not None:
            self.cap.uncount(to.e164, counted)
