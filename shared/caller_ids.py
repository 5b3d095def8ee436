"""Which caller IDs the organization may present, and which one a request uses.

Genesys answers a foreign caller ID with the unhelpful "Malformed participant address", so we refuse it
ourselves, before dialing, and say which allowed number the caller probably meant.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar, cast

from shared import phone
from shared.config import Settings
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import GenesysClient
from shared.logs import get_logger
from shared.waiting import FailureForWaiters

log = get_logger(__name__)
T = TypeVar("T")
RETRY_AFTER_FAILED_REFRESH_SECONDS = 30.0  # a background refresh that failed is not tried again sooner
# A first load Genesys refused for good is not asked again by every request for that long either. Only its own
# refusals: a refused client secret or a missing one (through the token) is tried again sooner, once put right.
HELD_REFUSALS = frozenset({"genesys_permission_denied", "genesys_not_found"})
MISS_RELOAD_SECONDS = 30.0  # a caller ID the org's cached list lacks reloads the list when older than this
QUEUE_CACHE_SIZE = 256  # queues whose caller ID stays cached; ALLOWED_QUEUE_IDS=* lets callers name any number


class RefreshingValue(Generic[T]):
    """A value loaded on first use and, once older than `ttl`, refreshed in the background.

    Requests keep using the previous value while one refresh runs, so a slow Genesys never stalls them. The
    requests that waited behind a first load that failed get its failure at once, rather than each trying again,
    one after another, for up to a deadline each. A request after it tries again, unless Genesys refused the load
    for good (HELD_REFUSALS): then those within RETRY_AFTER_FAILED_REFRESH_SECONDS (or the ttl) get it too, as a
    role without the DID pools' permission had every call and every readiness probe page through the whole DID
    list again. Of two loads that overlap, the one started last is kept.
    """

    def __init__(self, load: Callable[[], T], ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._value: T | None = None
        self._loaded_at: float | None = None  # None until the first load: the value itself may be None
        self._started_at = float("-inf")  # when the load of the value kept was started
        self._retry_after_failure = min(ttl, RETRY_AFTER_FAILED_REFRESH_SECONDS)
        self._first_load = FailureForWaiters(
            clock, held=lambda problem: problem.code in HELD_REFUSALS, hold_seconds=self._retry_after_failure
        )
        self._lock = threading.Lock()  # held by a first load, and briefly to decide on a reload
        self._storing = threading.Lock()
        self._refreshing = False
        self._refresh_failed_at = float("-inf")
        self._reloading = False
        self._reload_tried_at = float("-inf")

    def get(self) -> T:
        if self._loaded_at is None:
            asked_at = self._first_load.asked()
            with self._lock:
                if self._loaded_at is None:
                    self._first_load.attempt(asked_at, self._load_and_store)
        elif self._refresh_due():
            self._start_refresh()
        return cast(T, self._value)

    def _refresh_due(self) -> bool:
        """Older than the ttl, and no refresh failed in the last RETRY_AFTER_FAILED_REFRESH_SECONDS (or the ttl):
        a Genesys answering 429 at once had every request start another refresh, 40 in 2 s."""
        now, loaded_at = self._clock(), cast(float, self._loaded_at)
        return (
            now - loaded_at > self._ttl
            and now - self._refresh_failed_at > self._retry_after_failure
            and not self._refreshing
        )

    def _start_refresh(self) -> None:
        with self._storing:
            if self._refreshing:
                return
            self._refreshing = True
        try:
            threading.Thread(target=self._refresh, name="caller-id-refresh", daemon=True).start()
        except RuntimeError:  # no thread to be had: the next use tries again
            self._refreshing = False
            log.warning("Could not start a background refresh; keeping the cached value")

    def reloaded(self, older_than: float) -> T:
        """The value, loaded again now if it is older than `older_than` seconds and no reload was tried in that
        time: what a cached list lacks may be news it has not seen yet. One reload runs at a time (the others
        use the cached value), and one that fails keeps it."""
        with self._lock:
            now = self._clock()
            due = (
                self._loaded_at is not None
                and not self._reloading
                and now - max(self._loaded_at, self._reload_tried_at) > older_than
            )
            if due:
                self._reloading, self._reload_tried_at = True, now
        if due:
            try:
                self._reload_keeping_the_value("A reload after a miss")
            finally:
                self._reloading = False
        return self.get()

    def _refresh(self) -> None:
        try:
            if not self._reload_keeping_the_value("Background refresh"):
                self._refresh_failed_at = self._clock()
        finally:
            self._refreshing = False

    def _reload_keeping_the_value(self, what: str) -> bool:
        """Whether the value was loaded again; a failure is logged and the previous value kept."""
        try:
            self._load_and_store()
        except Exception as error:  # noqa: BLE001 - keep serving the previous value; a later use tries again
            # Its code, not its text: a Genesys message is free text and may quote what it was sent
            log.warning(
                "%s failed, keeping the cached value: %s", what, getattr(error, "code", None) or type(error).__name__
            )
            return False
        return True

    def _load_and_store(self) -> None:
        started = self._clock()
        value = self._load()
        with self._storing:
            if started >= self._started_at:  # a load that started earlier and ended later is older news
                self._value, self._loaded_at, self._started_at = value, self._clock(), started


@dataclass(frozen=True)
class AllowedCallerIds:
    """Caller IDs a call may present: numbers, and ranges of the organization's DID pools (first and last number
    in E.164, of one length and in order, as `GenesysClient.list_did_pool_ranges` keeps them; a number of that
    length between them is in the range)."""

    numbers: frozenset[str]
    ranges: tuple[tuple[str, str], ...] = ()

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, str):
            return False
        return number in self.numbers or any(
            len(number) == len(first) and first <= number <= last for first, last in self.ranges
        )

    def __len__(self) -> int:
        """How many numbers, counting each range whole (a number in two of them counts twice)."""
        return len(self.numbers) + sum(int(last) - int(first) + 1 for first, last in self.ranges)

    def __or__(self, other: AllowedCallerIds) -> AllowedCallerIds:
        return AllowedCallerIds(self.numbers | other.numbers, self.ranges + other.ranges)

    @cached_property
    def regions(self) -> frozenset[str]:
        """The regions of the numbers and of each range's first number: where a near miss may be read. Read once
        per list: it parses every number (about a second for 10,000 DIDs)."""
        return frozenset(r for r in map(phone.region_of, [*self.numbers, *(first for first, _ in self.ranges)]) if r)


class CallerIds:
    def __init__(
        self, settings: Settings, genesys: GenesysClient, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._genesys = genesys
        setting_ids = set(settings.allowed_caller_ids)
        if settings.default_caller_id:
            setting_ids.add(settings.default_caller_id)
        self._from_settings = AllowedCallerIds(
            frozenset(setting_ids) if settings.uses_setting_caller_ids else frozenset()
        )
        self._org_numbers = RefreshingValue(self._load_org_numbers, settings.caller_id_cache_seconds, clock=clock)
        self._with_org: tuple[AllowedCallerIds, AllowedCallerIds] | None = None  # (org's list, settings' and it)
        self._queues: OrderedDict[str, RefreshingValue[str | None]] = OrderedDict()  # least recently used first
        self._queues_lock = threading.Lock()

    def _load_org_numbers(self) -> AllowedCallerIds:
        """The organization's DIDs and DID pools: a number in a pool is the org's even when nothing is assigned
        to it (one kept for outbound caller ID only)."""
        deadline = Deadline(self._settings.call_deadline_seconds)
        numbers = self._genesys.list_did_numbers(deadline)
        ranges = self._genesys.list_did_pool_ranges(deadline)
        log.info("Loaded %d DIDs and %d DID pools from Genesys Cloud", len(numbers), len(ranges))
        return AllowedCallerIds(frozenset(numbers), tuple(ranges))

    def allowed(self) -> AllowedCallerIds:
        """The allowed caller IDs (loading the org's DIDs and DID pools when CALLER_ID_SOURCE asks for them)."""
        if not self._settings.uses_genesys_caller_ids:
            return self._from_settings
        return self._joined(self._org_numbers.get())

    def _joined(self, org: AllowedCallerIds) -> AllowedCallerIds:
        """The settings' caller IDs and the org's, joined once per loaded list: not a union of thousands of DIDs on
        every call, nor their regions read again on every refused one."""
        joined = self._with_org
        if joined is None or joined[0] is not org:
            joined = (org, self._from_settings | org)
            self._with_org = joined
        return joined[1]

    def _allowed_after_a_miss(self, allowed: AllowedCallerIds) -> AllowedCallerIds:
        """The allowed caller IDs once more, after `allowed` lacked a number: the org's list loaded again if it is
        older than MISS_RELOAD_SECONDS (a DID added a minute ago was refused 422, which Power Automate never
        retries, for up to CALLER_ID_CACHE_SECONDS)."""
        if not self._settings.uses_genesys_caller_ids:
            return allowed
        age = min(MISS_RELOAD_SECONDS, self._settings.caller_id_cache_seconds)
        return self._joined(self._org_numbers.reloaded(age))

    def queue_caller_id(self, queue_id: str) -> str | None:
        """The queue's outbound caller ID (`callingPartyNumber`), cached like the DIDs."""
        return self._queue_entry(queue_id).get()

    def _queue_entry(self, queue_id: str) -> RefreshingValue[str | None]:
        """The queue's cache entry; beyond QUEUE_CACHE_SIZE queues the least recently used one is dropped."""
        with self._queues_lock:
            entry = self._queues.get(queue_id)
            if entry is not None:
                self._queues.move_to_end(queue_id)
                return entry
            entry = self._queues[queue_id] = RefreshingValue(
                lambda: self._load_queue_number(queue_id), self._settings.caller_id_cache_seconds
            )
            if len(self._queues) > QUEUE_CACHE_SIZE:
                self._queues.popitem(last=False)
            return entry

    def _load_queue_number(self, queue_id: str) -> str | None:
        """The queue's `callingPartyNumber` in E.164 (Genesys keeps it as it was typed, and refuses a caller ID
        that is not E.164); None when the queue has none, or one that cannot be read for sure as one of ours (the
        default is used)."""
        number = self._genesys.get_queue(queue_id, Deadline(self._settings.call_deadline_seconds)).get(
            "callingPartyNumber"
        )
        if not isinstance(number, str) or not number.strip():
            return None
        try:
            e164 = phone.normalize(number, self._settings.default_phone_region, field="from").e164
        except Problem:
            e164 = None
        international = number.strip().startswith(("+", "00"))
        if e164 is None or not (international or e164 in self.allowed()):
            # Written nationally, it is read in DEFAULT_PHONE_REGION: a Mexican queue's "55 1234 5678" would be a
            # New Jersey number. Only a reading the org may present is used.
            log.warning("Queue %s's outbound caller ID %s is not used: no number of ours", queue_id, phone.mask(number))
            return None
        return e164

    def default(self) -> str | None:
        """DEFAULT_CALLER_ID, or None when unset; a configuration error when it is not an allowed caller ID."""
        default = self._settings.default_caller_id
        if default and default not in self._from_settings and default not in self.allowed():
            raise Problem(
                "configuration_error",
                f"Setting DEFAULT_CALLER_ID {phone.mask(default)} is not one of the organization's allowed "
                f"caller IDs (CALLER_ID_SOURCE={self._settings.caller_id_source}).",
                hint="Set DEFAULT_CALLER_ID to one of the allowed numbers (with CALLER_ID_SOURCE=genesys, a DID or a "
                "number of a DID pool of the organization), or add it to ALLOWED_CALLER_IDS with "
                "CALLER_ID_SOURCE=settings or both.",
            )
        return default

    def choose(self, requested: str | None, queue_id: str | None, region: str) -> str:
        """The caller ID for one call in E.164: `from` if allowed, else the queue's, else the default."""
        if requested is not None:
            return self._check(requested, region, queue_id)
        if queue_id:
            queue_number = self.queue_caller_id(queue_id)
            if queue_number:
                return queue_number
        default = self.default()
        if default:
            return default
        raise Problem(
            "caller_id_required",
            "The request has no 'from', "
            + ("the queue has no outbound caller ID, " if queue_id else "")
            + "and DEFAULT_CALLER_ID is not set.",
            field="from",
        )

    def _check(self, requested: str, region: str, queue_id: str | None) -> str:
        """`from` in E.164 when allowed: an allowed caller ID, or on a queue's call the queue's own, which the call
        would present anyway without `from`. A number the settings allow needs no list from Genesys."""
        near: list[str] | None = None
        try:
            number: str | None = phone.normalize(requested, region, field="from").e164
        except Problem as problem:
            if problem.extensions.get("reason") == "extension":  # the digits are right: no near miss to offer
                raise
            allowed = self.allowed()
            near = self._near_misses(requested, region, allowed)
            if not near:
                raise
            number = None
        if number is not None and number in self._from_settings:
            return number
        allowed = self.allowed()
        if number is not None and number not in allowed:
            allowed = self._allowed_after_a_miss(allowed)
        if number is not None and (number in allowed or (queue_id and number == self._queue_number_or_none(queue_id))):
            return number
        if near is None:
            near = self._near_misses(requested, region, allowed)
        hint = (
            f"The same digits read as {', '.join(near)} match an allowed caller ID: send that number in +E.164."
            if near
            else None
        )
        raise Problem(
            "caller_id_not_allowed",
            f"'from' {phone.mask(number or requested)} is not one of the organization's {len(allowed)} allowed "
            f"caller IDs (CALLER_ID_SOURCE={self._settings.caller_id_source}).",
            hint=hint,
            field="from",
        )

    def _queue_number_or_none(self, queue_id: str) -> str | None:
        """The queue's caller ID, or None when Genesys will not say (no routing:queue:view, an unknown queue): a
        `from` outside the allowed set is then refused as it was before queues' own numbers counted. Any other
        failure is raised: read as "not allowed", a retry would never come (Genesys down) or the operator would
        look at the wrong setting (a refused token)."""
        try:
            return self.queue_caller_id(queue_id)
        except Problem as problem:
            if problem.code not in ("genesys_not_found", "genesys_permission_denied"):
                raise  # Genesys down or rate-limited, a refused token, a missing secret: not "not allowed"
            return None

    @staticmethod
    def _near_misses(text: str, region: str, allowed: AllowedCallerIds) -> list[str]:
        return sorted(number for number in phone.readings(text, {region} | allowed.regions) if number in allowed)
