"""Power Automate "When a call ends" subscriptions, kept in Table Storage until the flow removes them.

Power Automate calls `POST /api/subscriptions` with its callback URL when a flow with the trigger is saved
or turned on, keeps the `Location` of the 201 answer, and sends `DELETE` there when the flow is deleted or
turned off. The rows live in the idempotency table under their own partition and carry no expiry, so the
purge timer never removes them: a subscription lasts as long as the flow, or, when the flow's DELETE never came,
until its URL has answered ended calls "gone" (404, 410) for a day.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import Problem
from shared.ids import is_uuid
from shared.logs import get_logger
from shared.status_callbacks.targets import check_url
from shared.storage import ManagedTable

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)

PARTITION = "subscription"  # idempotency rows use two-hex-digit partitions: no collision
MAX_SUBSCRIPTIONS = 50  # each ended call is posted to every subscription
# Power Automate's callback URLs: prod-NN.<region>.logic.azure.com, and the hosts flows' trigger URLs move to,
# <environment>.NN.environment.api.powerplatform.com:443
POWER_AUTOMATE_HOST_SUFFIXES = (".logic.azure.com", ".environment.api.powerplatform.com")
NOTIFICATION_FIELD = "notificationUrl"
CACHE_SECONDS = 60.0
# "None" is kept for less: a flow's first subscription, made on another instance, reaches this one's calls within
# 5 s rather than a minute (a flow author's first test call would otherwise go unwatched, and unheard of).
NO_SUBSCRIPTION_CACHE_SECONDS = 5.0
FAILED_QUERY_PAUSE_SECONDS = 5.0  # the storage outage problem's Retry-After
# A URL that answers "gone" this long is no flow's any more: one such answer may be a receiver mid-deploy.
GONE_FOR_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    created_at: float
    gone_since: float | None = None  # when its URL first answered an ended call 404 or 410, since its last 2xx

    def to_json(self) -> dict[str, Any]:
        """What the API shows: never the URL, which is a signed SAS URL (a credential)."""
        return {"id": self.id, "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at))}


def _too_many() -> Problem:
    return Problem("too_many_subscriptions", f"There are already {MAX_SUBSCRIPTIONS} subscriptions.")


class SubscriptionRows(Protocol):
    def insert(self, subscription: Subscription) -> None: ...
    def update(self, subscription: Subscription) -> None: ...
    def get(self, subscription_id: str) -> Subscription | None: ...
    def delete(self, subscription_id: str) -> bool: ...
    def all(self) -> list[Subscription]: ...


class MemorySubscriptionRows:
    """One process only (no storage configured)."""

    def __init__(self) -> None:
        self._rows: dict[str, Subscription] = {}
        self._lock = threading.Lock()

    def insert(self, subscription: Subscription) -> None:
        with self._lock:
            self._rows[subscription.id] = subscription

    def update(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription.id in self._rows:
                self._rows[subscription.id] = subscription

    def get(self, subscription_id: str) -> Subscription | None:
        return self._rows.get(subscription_id)

    def delete(self, subscription_id: str) -> bool:
        with self._lock:
            return self._rows.pop(subscription_id, None) is not None

    def all(self) -> list[Subscription]:
        with self._lock:
            return list(self._rows.values())


class TableSubscriptionRows:
    """Rows `PartitionKey=subscription`, `RowKey=<id>` in the idempotency table."""

    def __init__(self, table: TableClient) -> None:
        self._table = ManagedTable(table, "The subscription store")

    def insert(self, subscription: Subscription) -> None:
        self._table.call(lambda: self._table.client.create_entity(_entity(subscription)))

    def update(self, subscription: Subscription) -> None:
        """Rewrite the row; nothing when it was deleted meanwhile."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        with contextlib.suppress(ResourceNotFoundError):
            self._table.call(lambda: self._table.client.update_entity(_entity(subscription), mode=UpdateMode.REPLACE))

    def get(self, subscription_id: str) -> Subscription | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table.call(lambda: self._table.client.get_entity(PARTITION, subscription_id))
        except ResourceNotFoundError:
            return None
        return _row(entity)

    def delete(self, subscription_id: str) -> bool:
        """True when this call removed it; two DELETEs at once (Power Automate may send them) both succeed."""
        from azure.core.exceptions import ResourceNotFoundError

        if self.get(subscription_id) is None:
            return False
        try:
            self._table.call(lambda: self._table.client.delete_entity(PARTITION, subscription_id))
        except ResourceNotFoundError:
            return False  # the other DELETE removed it in between
        return True

    def all(self) -> list[Subscription]:
        def query() -> list[Subscription]:
            rows = self._table.client.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
            return [_row(entity) for entity in rows]

        return list(self._table.call(query))


def _entity(subscription: Subscription) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": subscription.id,
        "Url": subscription.url,
        "CreatedAt": subscription.created_at,
    }
    if subscription.gone_since is not None:
        entity["GoneSince"] = subscription.gone_since
    return entity


def _row(entity: Any) -> Subscription:
    gone_since = entity.get("GoneSince")
    return Subscription(
        str(entity["RowKey"]),
        str(entity["Url"]),
        float(entity.get("CreatedAt") or 0),
        float(gone_since) if gone_since is not None else None,
    )


class Subscriptions:
    """Subscribe, unsubscribe, and the list each ended call is posted to (cached briefly per instance)."""

    def __init__(
        self,
        rows: SubscriptionRows,
        allowed_hosts: Iterable[str],
        *,
        allow_insecure_loopback: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rows = rows
        self._allowed_hosts = frozenset(allowed_hosts)
        self._insecure = allow_insecure_loopback
        self._clock = clock
        self._cached: tuple[float, list[Subscription]] | None = None
        self._refreshing = threading.Lock()  # held by the one thread that queries when the cache runs out
        self._changes = 0  # subscribes and unsubscribes here: a query that began before one is not cached
        self._cache_lock = threading.Lock()  # the count and the cache change together
        self._failed_at = -math.inf  # when the last query failed

    def check(self, url: str) -> str:
        """A Power Automate callback URL (POWER_AUTOMATE_HOST_SUFFIXES) or one on STATUS_CALLBACK_ALLOWED_HOSTS."""
        return check_url(
            url,
            self._allowed_hosts,
            allow_insecure_loopback=self._insecure,
            host_suffixes=POWER_AUTOMATE_HOST_SUFFIXES,
            field=NOTIFICATION_FIELD,
        )

    def subscribe(self, body: dict[str, Any]) -> Subscription:
        url = body.get(NOTIFICATION_FIELD)
        if not isinstance(url, str) or not url.strip() or len(url) > 4096:
            raise Problem(
                "validation_failed", f"'{NOTIFICATION_FIELD}' must be an https:// URL.", field=NOTIFICATION_FIELD
            )
        self.check(url.strip())
        if len(self._rows.all()) >= MAX_SUBSCRIPTIONS:
            raise _too_many()
        subscription = Subscription(str(uuid.uuid4()), url.strip(), self._clock())
        self._rows.insert(subscription)
        self._changed()
        # Counted again with it in, as concurrent requests all passed the count above: one that finds too many takes
        # itself out, so the last one kept counted every row kept (every watch record holds an entry per
        # subscription, in one Table property of at most 32K characters). Requests at once may all go; one retries.
        if len(self._rows.all()) > MAX_SUBSCRIPTIONS:
            self._rows.delete(subscription.id)
            self._changed()
            raise _too_many()
        log.info("Subscription %s created", subscription.id)
        return subscription

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove it; False when there was none (DELETE is idempotent: Power Automate may send it twice)."""
        deleted = is_uuid(subscription_id) and self._rows.delete(subscription_id)
        self._changed()
        log.info("Subscription %s %s", subscription_id[:36], "deleted" if deleted else "was not there")
        return deleted

    def get(self, subscription_id: str) -> Subscription | None:
        return self._rows.get(subscription_id)

    def answered(self, subscription: Subscription, gone: bool) -> None:
        """What its URL answered an ended call: "gone" (404, 410) a day after it first did, and never anything else
        between, removes it (its flow was deleted, or its trigger made anew, and Power Automate's DELETE never
        came: refused by a rotated key, or it met a storage outage). Only changes are written."""
        if not gone:
            if subscription.gone_since is not None:
                self._rows.update(replace(subscription, gone_since=None))
            return
        if subscription.gone_since is None:
            self._rows.update(replace(subscription, gone_since=self._clock()))
        elif self._clock() - subscription.gone_since >= GONE_FOR_SECONDS:
            log.warning("Subscription %s has answered 'gone' for a day: its flow is gone; removing it", subscription.id)
            self.unsubscribe(subscription.id)

    def all(self) -> list[Subscription]:
        return self._rows.all()

    def any(self) -> bool:
        """Whether calls must be watched for subscribers (cached CACHE_SECONDS, one Table query a minute, or
        NO_SUBSCRIPTION_CACHE_SECONDS while there is none).

        When that time runs out under load, one thread queries; the others answer from the list it replaces
        rather than query too or wait on it (a slow table would otherwise hold every one of them). With no list
        yet (a cold start, or a subscribe or unsubscribe here) they wait on that one query. A failed query is not
        repeated for FAILED_QUERY_PAUSE_SECONDS, so waiting threads do not each try again in turn: meanwhile the
        last list answers, or with none, True (a watch that finds no subscriber posts nothing; a subscriber
        missed would never hear of the call)."""
        cached = self._cached
        if cached is not None and self._fresh(cached):
            return bool(cached[1])
        if cached is None:
            self._refreshing.acquire()
        elif not self._refreshing.acquire(blocking=False):
            return bool(cached[1])
        try:
            current = self._cached  # another thread may have read it meanwhile
            if current is not None and self._fresh(current):
                return bool(current[1])
            if self._clock() - self._failed_at < FAILED_QUERY_PAUSE_SECONDS:
                return _unread(current)
            return self._refresh(current)
        finally:
            self._refreshing.release()

    def _fresh(self, cached: tuple[float, list[Subscription]]) -> bool:
        read_at, subscriptions = cached
        return self._clock() - read_at <= (CACHE_SECONDS if subscriptions else NO_SUBSCRIPTION_CACHE_SECONDS)

    def _refresh(self, last: tuple[float, list[Subscription]] | None) -> bool:
        changes, now = self._changes, self._clock()
        try:
            rows = self._rows.all()
        except Exception as error:  # noqa: BLE001 - an unreadable list must not fail the placed call's watch
            if not isinstance(error, Problem):  # a Problem is an outage the store logged already
                log.warning("Could not read the subscriptions: %s", type(error).__name__)
            self._failed_at = self._clock()  # the pause runs from the failure: a slow one outlasts it otherwise
            return _unread(last)
        with self._cache_lock:
            if changes == self._changes:  # a subscribe or unsubscribe meanwhile makes this answer old
                self._cached = (now, rows)
        return bool(rows)

    def _changed(self) -> None:
        with self._cache_lock:
            self._changes += 1
            self._cached = None


def _unread(last: tuple[float, list[Subscription]] | None) -> bool:
    """The answer while the table cannot be read: the last list's, or with none, watch in case."""
    return bool(last[1]) if last is not None else True
