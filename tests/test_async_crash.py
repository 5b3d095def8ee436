"""Asynchronous jobs never dial twice: the storage dies between the create and recording it, then comes back.

The crash is real: Azurite, keeping its data on disk, is stopped from inside the Genesys emulator's create
handler (Genesys has the call; the app cannot record it), then restarted on the same ports. The queue
delivers the job again once its lease ends, after the keyless duplicate window and the stale-claim limit.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulators.azurite import Azurite
from emulators.genesys import Fault
from tests.conftest import Stack, app_queue, wait_for
from tests.test_async_mode import ASYNC, NO_GENESYS_BEFORE_DIALING, follow

LEASE_SECONDS = 3  # how long a received message stays invisible when its function could not release it
SHORT = {
    "ASYNC_RETRY_AFTER_SECONDS": "1",
    "DUPLICATE_WINDOW_SECONDS": "1",
    "IDEMPOTENCY_STALE_SECONDS": "1",
    "IDEMPOTENCY_WAIT_SECONDS": "1",  # a job is presumed dead after the stale limit and this wait
}


@pytest.fixture
def disk_azurite(tmp_path: Path) -> Iterator[Azurite]:
    with Azurite(location=tmp_path / "azurite") as running:
        yield running


@pytest.fixture
def short_lease(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.host.queues, "lease_seconds", LEASE_SECONDS)


def storage_dies_at(stack: Stack, disk_azurite: Azurite, route: str) -> tuple[requests.Response, requests.Response]:
    """Accept a job whose storage stops inside the Genesys emulator's `route` handler (the request is answered),
    restart the storage once the delivery has failed, and follow the job: (accepted, final)."""
    storage_down = threading.Event()
    deliveries = stack.host.queues.deliveries
    ended_before: list[int] = []  # deliveries ended when the storage stopped: a failure before is another test's

    def stop_storage() -> None:
        ended_before.append(len(deliveries))
        disk_azurite.stop()
        storage_down.set()

    stack.genesys.inject(route, Fault(status=None, before_answer=stop_storage))

    accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    assert storage_down.wait(20), f"the queued job never reached {route}"
    assert wait_for(lambda: ("place_queued_call", False) in deliveries[ended_before[0] :], 30)
    disk_azurite.restart()

    final, _ = follow(stack, stack.get(accepted.headers["Location"]))
    return accepted, final


@pytest.mark.timeout(60)
def test_keyless_job_whose_outcome_was_lost_is_never_dialed_again(
    stack: Stack, configure, disk_azurite: Azurite, short_lease: None
) -> None:
    configure(AzureWebJobsStorage=disk_azurite.connection_string, DO_NOT_CALL_TABLE=None, **SHORT)

    accepted, final = storage_dies_at(stack, disk_azurite, "create_call")

    assert len(stack.creates()) == 1
    assert final.status_code == 504, final.text
    assert final.json()["code"] == "genesys_timeout"
    assert "may have been placed" in final.json()["detail"]
    assert final.json()["requestId"] == accepted.json()["requestId"]


@pytest.mark.timeout(60)
def test_a_job_whose_storage_died_before_the_create_is_placed_once_it_is_back(
    stack: Stack, configure, disk_azurite: Azurite, short_lease: None
) -> None:
    """The storage dies while the job fetches its Genesys token: the claim it wrote just before can be neither
    marked nor released. The job's own record never reached "sent", so nothing was: once the storage is back the
    next delivery takes that claim over and places the call, once, instead of answering "outcome unknown"."""
    configure(
        AzureWebJobsStorage=disk_azurite.connection_string, DO_NOT_CALL_TABLE=None, **SHORT, **NO_GENESYS_BEFORE_DIALING
    )

    accepted, final = storage_dies_at(stack, disk_azurite, "token")

    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1
    assert final.json()["requestId"] == accepted.json()["requestId"]


def send_raw(message: str) -> None:
    app_queue().send_message(message)


def poisoned(stack: Stack) -> int:
    """Messages the poison-queue function has handled (it drains the poison queue as the host feeds it)."""
    return stack.host.queues.deliveries.count(("record_poisoned_call", True))


UNWRITTEN_MESSAGES = {
    "not-json": "not json",
    "not-an-object": json.dumps(["a", "list"]),
    "bad-request-id": json.dumps({"requestId": "not-a-uuid", "body": {"to": "+12125550199"}, "idempotencyKey": None}),
    "never-accepted": json.dumps(
        {"requestId": str(uuid.uuid4()), "body": {"to": "+12125550199"}, "idempotencyKey": None}
    ),
    "wrong-shape": json.dumps({"requestId": str(uuid.uuid4()), "body": "x", "idempotencyKey": None, "extra": 1}),
    # a time no float holds (float() raised OverflowError, and the poison handler failed on every lease)
    "huge-time": json.dumps(
        {"requestId": str(uuid.uuid4()), "body": {}, "idempotencyKey": None, "acceptedAt": 10**400}
    ),
    "infinite-time": json.dumps(
        {"requestId": str(uuid.uuid4()), "body": {}, "idempotencyKey": None, "acceptedAt": math.inf}
    ),
}


@pytest.mark.timeout(60)
def test_messages_the_app_did_not_write_dial_nothing_and_end_in_the_poison_queue(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Sent together, they use up their five tries (host.json) side by side, as the host leases them in batches:
    one at a time, they took 8 to 11 s each."""
    before = poisoned(stack)
    for message in UNWRITTEN_MESSAGES.values():
        send_raw(message)

    reached = wait_for(lambda: poisoned(stack) >= before + len(UNWRITTEN_MESSAGES), 45)
    assert reached, f"{poisoned(stack) - before} of {len(UNWRITTEN_MESSAGES)} reached the poison queue"
    assert stack.creates() == []
    dropped = caplog.text.count("Dropped a poison message this app did not write for a pending job")
    assert dropped >= len(UNWRITTEN_MESSAGES), dropped


@pytest.mark.timeout(60)
def test_a_tampered_job_is_refused_and_the_accepted_one_still_answers(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1")
    accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
    forged = {
        "requestId": accepted.json()["requestId"],
        "body": {"to": "+12125550198"},
        "idempotencyKey": None,
        "acceptedAt": time.time(),
    }
    send_raw(json.dumps(forged))

    final, _ = follow(stack, accepted)

    assert final.status_code == 201, final.text
    assert wait_for(lambda: poisoned(stack) > 0, 30), "the forged message never reached the poison queue"
    assert [create.json["phoneNumber"] for create in stack.creates()] == ["+12125550199"]
