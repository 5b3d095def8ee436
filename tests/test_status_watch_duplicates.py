"""A status-watch step delivered twice at once must not leave two watch chains behind.

The queue delivers at least once, and the local host, like the Functions host, runs a batch of messages at
once: two copies of one step can both read the watch record before either writes it. Both then read the call
and queue the next step; if both next steps were acted on, every later step would run twice (two Genesys
reads a step, each event posted twice) until the call ends. Here the watcher runs on a queue of its own,
which no queue runner consumes, so the test hands it each message as the trigger would: two copies at once,
each reading the record while the other's Genesys read is still on its way (the emulator holds both reads).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from emulators.genesys import Fault
from shared.services import services
from shared.status_callbacks.delivery import Poster
from shared.status_callbacks.targets import StatusCallback
from shared.status_callbacks.watcher import StatusWatcher, WatchSettings, record_key
from shared.storage import QueueSender
from tests.conftest import Receiver, Stack, app_store
from tests.test_status_callbacks import CALL, FAST, SECRET, eventually

HELD_READ_SECONDS = 0.5  # each copy's Genesys read is held this long: both copies read the record first
STEP_TIMEOUT_SECONDS = 15.0


@pytest.fixture
def watch_queue(
    stack: Stack, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, QueueClient]]:
    """A queue of the test's own for the watcher's steps; calls keep ringing, so the watch goes on."""
    configure(**FAST)
    monkeypatch.setattr(stack.genesys.org, "answer_after_seconds", 600)
    name = f"watch{uuid.uuid4().hex[:16]}"
    storage = services().settings.storage
    assert storage is not None
    queue = storage.queue(name)
    yield name, queue
    queue.delete_queue()


def watcher_on(queue_name: str) -> StatusWatcher:
    app = services()
    assert app.settings.storage is not None
    return StatusWatcher(
        app.idempotency_store,
        QueueSender(app.settings.storage, queue_name),
        app.genesys,
        Poster(lambda: SECRET),
        app.subscriptions,
        WatchSettings(frozenset(), allow_insecure_loopback=True, poll_seconds=1, max_poll_interval_seconds=1),
    )


def waiting(queue: QueueClient) -> int:
    """Messages in the queue, visible or not yet."""
    return int(queue.get_queue_properties().approximate_message_count)


def queued_steps(queue: QueueClient, count: int) -> list[str]:
    """The next `count` messages once they are visible (each step is queued at least a second ahead), taken off
    the queue as the host takes a message its trigger has run."""
    taken: list[str] = []

    def take() -> bool:
        for message in queue.receive_messages(max_messages=32, visibility_timeout=60):
            taken.append(message.content)
            queue.delete_message(message)
        return len(taken) >= count

    eventually(take, f"{count} queued status steps", timeout=STEP_TIMEOUT_SECONDS)
    return taken


def run_at_once(watcher: StatusWatcher, stack: Stack, copies: list[str]) -> None:
    """Run every copy on its own thread, as a batch is run, with each Genesys read held a moment."""
    for _ in copies:
        stack.genesys.inject("get_call", Fault(status=None, delay=HELD_READ_SECONDS))
    errors: list[BaseException] = []

    def run(message: str) -> None:
        try:
            watcher.run(message)
        except BaseException as error:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(message,)) for message in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STEP_TIMEOUT_SECONDS)
    assert not errors, errors


def watch_state(conversation_id: str) -> dict[str, Any]:
    record = app_store().read(record_key(conversation_id))
    assert record is not None and record.data is not None
    return record.data


def test_a_step_run_twice_at_once_leaves_one_chain(stack: Stack, watch_queue: Any, receiver: Receiver) -> None:
    queue_name, queue = watch_queue
    placed = stack.post("/api/calls", CALL)  # no callback asked: the app itself watches nothing
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]
    watcher = watcher_on(queue_name)
    watcher.start(conversation_id, "request-1", StatusCallback(receiver.url, ("ringing", "ended")))

    first = queued_steps(queue, 1)
    run_at_once(watcher, stack, first * 2)  # one step delivered twice, both copies in one batch
    assert watch_state(conversation_id)["tick"] == 1
    assert waiting(queue) == 2  # both copies read the call and queued a next step: one is a stray

    reads_before = len(stack.genesys.requests("get_call"))
    run_at_once(watcher, stack, queued_steps(queue, 2))  # and those two arrive together too

    assert len(stack.genesys.requests("get_call")) - reads_before == 1  # only the chain's own step acted
    assert watch_state(conversation_id)["tick"] == 2
    assert waiting(queue) == 1  # one chain goes on


def test_a_step_queued_before_steps_had_ids_still_runs(stack: Stack, watch_queue: Any, receiver: Receiver) -> None:
    """Watches started by the previous release (record and message without a step id) go on after an upgrade."""
    queue_name, queue = watch_queue
    placed = stack.post("/api/calls", CALL)
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]
    watcher = watcher_on(queue_name)
    watcher.start(conversation_id, "request-1", StatusCallback(receiver.url, ("ringing", "ended")))
    queued_steps(queue, 1)  # the new release's first message, taken away: the old release's stands in
    store = app_store()
    record = store.read(record_key(conversation_id))
    assert record is not None and record.data is not None
    old_data = {key: value for key, value in record.data.items() if key != "stepId"}
    assert store.replace(replace(record, data=old_data)) is not None
    old_message = json.dumps({"conversationId": conversation_id, "tick": 0})

    watcher.run(old_message)

    assert watch_state(conversation_id)["tick"] == 1
    assert [event["type"] for event in receiver.events()] == ["call.ringing"]
    assert waiting(queue) == 1
