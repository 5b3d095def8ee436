"""Whether any flow subscribed is cached for a minute per instance, and refreshed once when it runs out.

Every placed call asks (shared/status_callbacks/watcher.py); when the minute runs out under load, or before the
first answer, every worker thread asking at that moment would otherwise query the table at once (counted from
Azurite's own access log).
A front before Azurite's table service holds one query's answer, to show what the other threads do meanwhile
and that a subscription made meanwhile is not undone by the older answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from emulators.azurite import Azurite
from shared.status_callbacks.subscriptions import (
    CACHE_SECONDS,
    FAILED_QUERY_PAUSE_SECONDS,
    NO_SUBSCRIPTION_CACHE_SECONDS,
    PARTITION,
    Subscriptions,
    TableSubscriptionRows,
)
from shared.storage import StorageAccount
from tests.conftest import eventually
from tests.table_front import WAIT_SECONDS, TableFront, table_front

THREADS = 16
FLOW_URL = "https://prod-1.westus.logic.azure.com/workflows/1/triggers/manual/paths/invoke"


@pytest.fixture(scope="module")
def logged_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    log = tmp_path_factory.mktemp("azurite") / "access.log"
    with Azurite(access_log=log) as azurite:
        yield azurite, log


def requests_logged(log: Path, fragment: str) -> int:
    return sum(fragment in line for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("cache", ["expired", "empty"])
def test_one_query_answers_however_many_threads_ask(logged_azurite: tuple[Azurite, Path], cache: str) -> None:
    """When the minute runs out, and when nothing was read yet (a cold start, or a subscribe on this instance)."""
    azurite, log = logged_azurite
    storage = StorageAccount(connection_string=azurite.connection_string)
    name = f"s{uuid.uuid4().hex}"
    table = storage.table(name)
    table.create_table()
    now = [1_000_000.0]
    subscriptions = Subscriptions(
        TableSubscriptionRows(table), frozenset(), allow_insecure_loopback=False, clock=lambda: now[0]
    )
    if cache == "expired":
        assert subscriptions.any() is False  # the first query
        now[0] += CACHE_SECONDS + 1  # the minute runs out
    start = threading.Barrier(THREADS)
    answers: list[bool] = []

    def ask() -> None:
        start.wait(timeout=10)
        answers.append(subscriptions.any())

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    sentinel = f"sentinel{uuid.uuid4().hex}"  # logged after every request answered before it was sent
    with pytest.raises(ResourceNotFoundError):
        table.get_entity("sentinel", sentinel)
    eventually(lambda: requests_logged(log, sentinel), "the sentinel request in Azurite's log", timeout=10)

    assert answers == [False] * THREADS
    assert requests_logged(log, f"GET /devstoreaccount1/{name}()") == (2 if cache == "expired" else 1)


def test_a_first_subscription_on_another_instance_is_seen_within_seconds_and_a_list_kept_a_minute(
    logged_azurite: tuple[Azurite, Path],
) -> None:
    """'None' is re-read after NO_SUBSCRIPTION_CACHE_SECONDS: a flow created on one instance hears of calls placed
    on the others seconds later, not a minute later. A list with subscriptions is kept the minute."""
    table = StorageAccount(connection_string=logged_azurite[0].connection_string).table(f"s{uuid.uuid4().hex}")
    table.create_table()
    now = [1_000_000.0]
    here, elsewhere = (
        Subscriptions(TableSubscriptionRows(table), frozenset(), allow_insecure_loopback=False, clock=lambda: now[0])
        for _ in range(2)
    )
    assert here.any() is False
    subscription = elsewhere.subscribe({"notificationUrl": FLOW_URL})

    now[0] += NO_SUBSCRIPTION_CACHE_SECONDS - 1
    assert here.any() is False  # still the answer read a moment ago
    now[0] += 2
    assert here.any() is True
    elsewhere.unsubscribe(subscription.id)
    now[0] += CACHE_SECONDS - 1
    assert here.any() is True  # a watch posting to nobody costs reads; a subscriber missed would never hear
    now[0] += 2
    assert here.any() is False


@pytest.fixture
def front(logged_azurite: tuple[Azurite, Path]) -> Iterator[TableFront]:
    with table_front(logged_azurite[0].ports["Table"]) as running:
        yield running


def subscriptions_through(front: TableFront, now: list[float]) -> tuple[Subscriptions, TableClient]:
    """Subscriptions whose table requests go through the front, and the same table reached directly."""
    name = f"s{uuid.uuid4().hex}"
    direct = front.direct_storage().table(name)
    direct.create_table()
    rows = TableSubscriptionRows(front.storage().table(name))
    return Subscriptions(rows, frozenset(), allow_insecure_loopback=False, clock=lambda: now[0]), direct


def in_thread(ask: Callable[[], bool]) -> tuple[threading.Thread, list[bool]]:
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(ask()), daemon=True)
    thread.start()
    return thread, answers


def test_while_one_thread_refreshes_the_others_answer_from_the_list_it_replaces(front: TableFront) -> None:
    now = [1_000_000.0]
    subscriptions, direct = subscriptions_through(front, now)
    subscription = subscriptions.subscribe({"notificationUrl": FLOW_URL})
    assert subscriptions.any() is True
    direct.delete_entity(PARTITION, subscription.id)  # another instance's unsubscribe: not seen here yet
    now[0] += CACHE_SECONDS + 1
    front.hold_next_query()

    refresher, refreshed = in_thread(subscriptions.any)
    assert front.holding.wait(WAIT_SECONDS), "the refresh never queried"
    other, answered = in_thread(subscriptions.any)
    other.join(WAIT_SECONDS)
    front.release.set()
    refresher.join(WAIT_SECONDS)

    assert answered == [True]  # at once, while the query was held: the list of the minute before
    assert refreshed == [False]
    assert subscriptions.any() is False


def test_a_subscription_made_during_a_refresh_is_not_undone_by_it(front: TableFront) -> None:
    now = [1_000_000.0]
    subscriptions, _ = subscriptions_through(front, now)
    assert subscriptions.any() is False
    now[0] += CACHE_SECONDS + 1
    front.hold_next_query()

    refresher, refreshed = in_thread(subscriptions.any)  # its query answers "none", held on its way back
    assert front.holding.wait(WAIT_SECONDS), "the refresh never queried"
    subscriptions.subscribe({"notificationUrl": FLOW_URL})
    front.release.set()
    refresher.join(WAIT_SECONDS)

    assert refreshed == [False]
    assert subscriptions.any() is True  # the older answer was not kept for a minute


def test_a_failed_first_query_is_not_repeated_by_every_waiting_thread(front: TableFront) -> None:
    """With no list yet and the table unreadable, the threads waiting on the one query do not each query again
    in turn: they answer True at once (watch in case someone subscribed) until FAILED_QUERY_PAUSE_SECONDS pass."""
    now = [1_000_000.0]
    front.failing_reads = True
    alone, _ = subscriptions_through(front, now)
    assert alone.any() is True
    one_query = front.refused  # with the client's own retries
    assert one_query >= 1

    subscriptions, _ = subscriptions_through(front, now)
    start = threading.Barrier(THREADS)
    answers: list[bool] = []

    def ask() -> None:
        start.wait(timeout=WAIT_SECONDS)
        answers.append(subscriptions.any())

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS * 3)
        assert not thread.is_alive()

    assert answers == [True] * THREADS
    assert front.refused == 2 * one_query
    front.failing_reads = False
    now[0] += FAILED_QUERY_PAUSE_SECONDS + 1
    assert subscriptions.any() is False  # read again once the pause is over


def test_the_pause_after_a_failed_query_runs_from_its_failure(front: TableFront) -> None:
    """A query that fails slowly (timeouts, retries) outlasts the pause if it is counted from the query's start:
    the next waiting thread would query again at once. Here each refused attempt takes the pause and more."""
    now = [1_000_000.0]
    subscriptions, _ = subscriptions_through(front, now)
    front.failing_reads = True
    front.on_refusal = lambda: now.__setitem__(0, now[0] + FAILED_QUERY_PAUSE_SECONDS + 1)
    assert subscriptions.any() is True
    refused = front.refused

    assert subscriptions.any() is True  # inside the pause: no query
    assert front.refused == refused
