"""The organization's do-not-call list: E.164 numbers in Table Storage, checked before every call.

Managed at `/api/do-not-call/{number}` and by `scripts/import_do_not_call.py` for existing lists. Without
storage the list lives in this process only (local runs), like the idempotency store.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import Problem
from shared.logs import get_logger
from shared.phone import is_known_region, mask, normalize
from shared.storage import ManagedTable

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)
MAX_REASON_LENGTH = 256
TRANSACTION_SIZE = 100  # Table Storage's most operations in one transaction
_PARTITION = "dnc"


@dataclass(frozen=True)
class Listing:
    number: str  # E.164
    added_at: float
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.added_at))
        return {"number": self.number, "listed": True, "addedAt": added, "reason": self.reason}


class DoNotCallList(Protocol):
    def get(self, number: str) -> Listing | None: ...

    def add(self, listing: Listing) -> None: ...

    def remove(self, number: str) -> bool:
        """True when the number was listed."""


def _named_table_missing(name: str) -> Callable[[], Problem]:
    def problem() -> Problem:
        return Problem(
            "configuration_error",
            f"Setting DO_NOT_CALL_TABLE names the table {name!r}, which does not exist in AzureWebJobsStorage: no call "
            "is placed and no number listed without the do-not-call list. Correct the name, or import the list into "
            f"it (scripts/import_do_not_call.py <list.csv> --region <R> --table {name} --create-table).",
        )

    return problem


def check_do_not_call(number: str, listed: DoNotCallList, field: str = "to") -> None:
    """Nothing when the number is not listed; else `do_not_call`."""
    if listed.get(number) is not None:
        log.info("Refused a call to %s: it is on the do-not-call list", mask(number))
        raise Problem("do_not_call", f"'{field}' is on the organization's do-not-call list.", field=field)


class MemoryDoNotCallList:
    """This process only: local runs without storage."""

    def __init__(self) -> None:
        self._listings: dict[str, Listing] = {}
        self._lock = threading.Lock()

    def get(self, number: str) -> Listing | None:
        with self._lock:
            return self._listings.get(number)

    def add(self, listing: Listing) -> None:
        with self._lock:
            self._listings[listing.number] = listing

    def remove(self, number: str) -> bool:
        with self._lock:
            return self._listings.pop(number, None) is not None


class TableDoNotCallList:
    """One entity per number in `DO_NOT_CALL_TABLE`, shared by every instance.

    `named`: the table is one a setting names, not the default. Then the app never makes it, for a lookup or for a
    listing: a table that does not exist refuses every call and every change (a mistyped name would otherwise be a
    new list, empty or holding the one number listed since, and every number of the real list would be called).
    The import makes it, when asked to (`--create-table`).
    """

    def __init__(self, table: TableClient, named: bool = False) -> None:
        missing = _named_table_missing(table.table_name) if named else None
        self._managed = ManagedTable(table, "The do-not-call list", missing)
        self._table = table

    @staticmethod
    def _row(number: str) -> str:
        return hashlib.sha256(number.encode()).hexdigest()

    def _call(self, operation: Callable[[], Any]) -> Any:
        return self._managed.call(operation)

    def _write(self, operation: Callable[[], Any]) -> Any:
        """A change to the list, made in the table made again when it was deleted meanwhile (as its first one is; a
        named table is only looked for again)."""
        return self._managed.call(operation, remake_if_gone=True)

    def get(self, number: str) -> Listing | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._call(lambda: self._table.get_entity(_PARTITION, self._row(number)))
        except ResourceNotFoundError:
            return None
        return Listing(entity["Number"], float(entity["AddedAt"]), entity.get("Reason"))

    def _entity(self, listing: Listing) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": _PARTITION,
            "RowKey": self._row(listing.number),
            "Number": listing.number,
            "AddedAt": listing.added_at,
        }
        if listing.reason:
            entity["Reason"] = listing.reason
        return entity

    def add(self, listing: Listing) -> None:
        from azure.data.tables import UpdateMode

        self._write(lambda: self._table.upsert_entity(self._entity(listing), mode=UpdateMode.REPLACE))

    def add_transaction(self, listings: Sequence[Listing]) -> None:
        """Add or merge up to `TRANSACTION_SIZE` listings in one transaction (one partition): all or none. A merge
        keeps a stored reason the listing has none for. A list of 100,000 numbers is 1,000 requests."""
        operations = [("upsert", self._entity(listing)) for listing in listings]
        self._write(lambda: self._table.submit_transaction(operations))

    def listed_at(self) -> dict[str, float]:
        """Every listed number and when it was listed: an import keeps the date of a number listed already."""
        query = f"PartitionKey eq '{_PARTITION}'"
        return self._call(
            lambda: {
                entity["Number"]: float(entity["AddedAt"])
                for entity in self._table.query_entities(query, select=["Number", "AddedAt"])
            }
        )

    def remove(self, number: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        if self.get(number) is None:
            return False
        with contextlib.suppress(ResourceNotFoundError):
            self._write(lambda: self._table.delete_entity(_PARTITION, self._row(number)))
        return True


class DoNotCallRegistry:
    """The list as `/api/do-not-call/{number}` manages it: any common spelling of a number, kept as E.164."""

    def __init__(self, listings: DoNotCallList, default_region: str, clock: Callable[[], float] = time.time) -> None:
        self._listings = listings
        self._default_region = default_region
        self._clock = clock

    def _number(self, text: str, region: str | None) -> str:
        if region is not None and not is_known_region(region):
            raise Problem("validation_failed", "'region' must be an ISO country code such as US or GB.", field="region")
        return normalize(text, (region or self._default_region).upper(), field="number", allow_premium_rate=True).e164

    def add(self, text: str, region: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """List the number; `body` holds at most a `reason`. Any other field is refused: a `region` there was
        ignored, listing a London number written nationally as a US one, and leaving it callable."""
        unknown = sorted(set(body) - {"reason"})
        if unknown:
            where = " (the region is the query parameter: ?region=GB)" if "region" in unknown else ""
            detail = f"Unknown field {unknown[0]!r}: the body holds only 'reason'{where}."
            raise Problem("validation_failed", detail, field=unknown[0])
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH):
            detail = f"'reason' must be a string of at most {MAX_REASON_LENGTH} characters."
            raise Problem("validation_failed", detail, field="reason")
        listing = Listing(self._number(text, region), self._clock(), str(reason) if reason else None)
        self._listings.add(listing)
        log.info("Added %s to the do-not-call list", mask(listing.number))
        return listing.to_json()

    def check_reachable(self) -> None:
        """Read the list once (readiness): an outage or a missing table raises as a call's check would."""
        self._listings.get("ready-probe")

    def look_up(self, text: str, region: str | None) -> dict[str, Any]:
        number = self._number(text, region)
        listing = self._listings.get(number)
        return listing.to_json() if listing else {"number": number, "listed": False}

    def remove(self, text: str, region: str | None) -> dict[str, Any]:
        number = self._number(text, region)
        removed = self._listings.remove(number)
        if removed:
            log.info("Removed %s from the do-not-call list", mask(number))
        return {"number": number, "listed": False, "removed": removed}
