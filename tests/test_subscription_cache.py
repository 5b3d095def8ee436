"""Whether any flow subscribed is cached for a minute per instance, and refreshed once when it runs out.

Every placed call asks (shared/status_callbacks/watcher.py); when the minute runs out under load, every worker
thread asking at that moment would otherwise query the table at once. Counted from Azurite's own access log.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from emulators.azurite import Azurite
from shared.status_callbacks.subscriptions import CACHE_SECONDS, Subscriptions, TableSubscriptionRows
from shared.storage import StorageAccount
from tests.test_status_callbacks import eventually

THREADS = 16


@pytest.fixture(scope="module")
def logged_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    log = tmp_path_factory.mktemp("azurite") / "access.log"
    with Azurite(access_log=log) as azurite:
        yield azurite, log


def requests_logged(log: Path, fragment: str) -> int:
    return sum(fragment in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_an_expired_cache_is_refreshed_by_one_query_however_many_threads_ask(
    logged_azurite: tuple[Azurite, Path],
) -> None:
    azurite, log = logged_azurite
    storage = StorageAccount(connection_string=azurite.connection_string)
    name = f"s{uuid.uuid4().hex}"
    table = storage.table(name)
    table.create_table()
    now = [1_000_000.0]
    subscriptions = Subscriptions(
        TableSubscriptionRows(table), frozenset(), allow_insecure_loopback=False, clock=lambda: now[0]
    )
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
    assert requests_logged(log, f"GET /devstoreaccount1/{name}()") == 2
