"""A status watch keeps exactly one chain of steps: never two, and never none.

Never two. The queue delivers at least once, and the local host, like the Functions host, runs a batch of
messages at once: two copies of one step can both read the watch record before either writes it. Both then
read the call and queue the next step; if both next steps were acted on, every later step would run twice (two
Genesys reads a step, each event posted twice) until the call ends. Here the watcher runs on a queue of its own,
which no queue runner consumes, so the test hands it each message as the trigger would: two copies at once,
each reading the record while the other's Genesys read is still on its way (the emulator holds both reads), or
one step run again after its record write failed (a front before Azurite refuses the write, tests/table_front.py).

Never none. A step's message can be lost: storage refuses a new watch's first message (the caller has its answer
and will not retry; a process stopped between the record and the message leaves the same), or a message is held
up past its retries. The timer `resume_stalled_watches` queues a new step for a watch whose step is
`STALLED_AFTER_SECONDS` overdue; the old message, should it turn up, does nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from emulators.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from emulators.genesys import Fault
from shared.errors import Problem
from shared.idempotency import DONE, MemoryStore, Record, Store, TableStore
from shared.services import services
from shared.status_callbacks import QUEUE_NAME as STATUS_QUEUE
from shared.status_callbacks.delivery import Poster
from shared.status_callbacks.targets import StatusCallback
from shared.status_callbacks.watcher import (
    FINISHED,
    MAX_RESUMES,
    STALLED_AFTER_SECONDS,
    WATCHING,
    StatusWatcher,
    WatchSettings,
    record_key,
)
from shared.storage import QueueSender, StorageAccount
from tests.conftest import Receiver, Stack, app_store, eventually
from tests.table_front import table_front
from tests.test_status_callbacks import CALL, FAST, SECRET, settled

HELD_READ_SECONDS = 0.5  # a read held this long: a second copy reads the record before the first writes it
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


def watcher_on(
    queue_name: str,
    store: Store | None = None,
    *,
    storage: StorageAccount | None = None,
    clock: Callable[[], float] = time.time,
    poll_seconds: float = 1,
) -> StatusWatcher:
    """The app's watcher, but queuing its steps on `queue_name` (in another account, with another store and
    another clock, if given), reading the call every `poll_seconds`."""
    app = services()
    assert app.settings.storage is not None
    return StatusWatcher(
        store or app.idempotency_store,
        QueueSender(storage or app.settings.storage, queue_name),
        app.genesys,
        Poster(lambda: SECRET, loopback_allowed=True),
        app.subscriptions,
        WatchSettings(
            frozenset(), allow_insecure_loopback=True, poll_seconds=poll_seconds, max_poll_interval_seconds=poll_seconds
        ),
        clock=clock,
    )


def in_seconds(seconds: float) -> Callable[[], float]:
    """A clock running `seconds` ahead of now (behind, if negative)."""
    return lambda: time.time() + seconds


def dead_queue_service() -> StorageAccount:
    """A storage account whose queue service is gone: the port was just closed, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return StorageAccount(
        connection_string=f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def waiting(queue: QueueClient) -> int:
    """Messages in the queue, visible or not yet."""
    return int(queue.get_queue_properties().approximate_message_count or 0)


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


def run_at_once(watcher: StatusWatcher, stack: Stack, copies: list[str], *, all_read: bool) -> None:
    """Run every copy on its own thread, as a batch is run. With `all_read`, the emulator holds each Genesys
    read until every copy has made one (so every copy read the record first); else each read is held a moment,
    for copies of which only one may read."""
    together = threading.Barrier(len(copies))
    for _ in copies:
        if all_read:
            fault = Fault(status=None, before_answer=lambda: together.wait(timeout=STEP_TIMEOUT_SECONDS))
        else:
            fault = Fault(status=None, delay=HELD_READ_SECONDS)
        stack.genesys.inject("get_call", fault)
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
        assert not thread.is_alive(), "a step did not finish"
    assert not errors, errors


def watch_state(conversation_id: str) -> dict[str, Any]:
    record = app_store().read(record_key(conversation_id))
    assert record is not None and record.data is not None
    return record.data


def two_next_steps_leave_one_chain(
    watcher: StatusWatcher, stack: Stack, queue: QueueClient, conversation_id: str
) -> None:
    """The two next steps queued by one step that ran twice (or by a step and a resume) arrive together: only
    the one the record names reads the call, and one next step is queued after it."""
    reads_before = len(stack.genesys.requests("get_call"))
    run_at_once(watcher, stack, queued_steps(queue, 2), all_read=False)

    assert len(stack.genesys.requests("get_call")) - reads_before == 1
    assert watch_state(conversation_id)["tick"] == 2
    assert waiting(queue) == 1


def watched_call(stack: Stack, receiver: Receiver, watcher: StatusWatcher, events: tuple[str, ...]) -> str:
    """A call placed through the app (which watches nothing: no callback asked), watched by `watcher`."""
    placed = stack.post("/api/calls", CALL)
    assert placed.status_code == 201, placed.text
    conversation_id: str = placed.json()["conversationId"]
    watcher.start(conversation_id, "request-1", StatusCallback(receiver.url, events))
    return conversation_id


def test_a_step_run_twice_at_once_leaves_one_chain(stack: Stack, watch_queue: Any, receiver: Receiver) -> None:
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))

    first = queued_steps(queue, 1)
    run_at_once(watcher, stack, first * 2, all_read=True)  # one step delivered twice, both copies in one batch
    assert watch_state(conversation_id)["tick"] == 1
    assert waiting(queue) == 2  # both copies read the call and queued a next step: one is a stray

    two_next_steps_leave_one_chain(watcher, stack, queue, conversation_id)  # they arrive together too


def test_a_step_repeated_after_its_record_write_failed_leaves_one_chain(
    stack: Stack, watch_queue: Any, receiver: Receiver, azurite: Azurite
) -> None:
    """The step queues its successor, then its record write fails (storage refuses writes at that moment); the
    queue delivers the step again and it runs again, queuing a second successor. Only that one goes on."""
    queue_name, queue = watch_queue
    placed = stack.post("/api/calls", CALL)
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]
    with table_front(azurite.ports["Table"]) as front:
        table = front.storage().table(services().settings.idempotency_table)
        watcher = watcher_on(queue_name, TableStore(table))
        watcher.start(conversation_id, "request-1", StatusCallback(receiver.url, ("ringing", "ended")))
        step = queued_steps(queue, 1)[0]

        front.failing_writes = True
        with pytest.raises(Problem) as failed:  # the trigger fails: the queue delivers the message again
            watcher.run(step)
        assert failed.value.code == "idempotency_store_unavailable"
        assert watch_state(conversation_id)["tick"] == 0 and waiting(queue) == 1  # its successor is queued
        front.failing_writes = False
        watcher.run(step)  # the redelivery
        assert watch_state(conversation_id)["tick"] == 1

        two_next_steps_leave_one_chain(watcher, stack, queue, conversation_id)


@pytest.mark.parametrize("record_names_a_step", [False, True], ids=["old record", "record of this release"])
def test_a_step_queued_before_steps_had_ids_still_runs(
    stack: Stack, watch_queue: Any, receiver: Receiver, record_names_a_step: bool
) -> None:
    """A message without a step id comes from the previous release: queued before an upgrade (its record names
    no step either), or by an instance still on it, which moves a record of this release on without renaming
    its step. Either way the watch goes on."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    queued_steps(queue, 1)  # this release's first message, taken away: the previous release's stands in
    if not record_names_a_step:
        store = app_store()
        record = store.read(record_key(conversation_id))
        assert record is not None and record.data is not None
        old_data = {key: value for key, value in record.data.items() if key != "stepId"}
        assert store.replace(replace(record, data=old_data)) is not None

    watcher.run(json.dumps({"conversationId": conversation_id, "tick": 0}))

    assert watch_state(conversation_id)["tick"] == 1
    assert [event["type"] for event in receiver.events()] == ["call.ringing"]
    assert waiting(queue) == 1


def test_a_watch_recorded_by_the_previous_release_still_delivers(
    stack: Stack, watch_queue: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous release kept a copy of the event in each delivery, and no map of events: after an upgrade
    its pending delivery is retried from that copy, and an event reached since is recorded the new way."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "connected"))
    receiver.answers.append(500)  # the first post fails: "ringing" stays pending
    watcher.run(queued_steps(queue, 1)[0])
    store = app_store()
    record = store.read(record_key(conversation_id))
    assert record is not None and record.data is not None
    old_data = {key: value for key, value in record.data.items() if key != "events"}
    old_data["deliveries"] = [
        {**entry, "document": record.data["events"][entry["name"]]} for entry in record.data["deliveries"]
    ]
    assert store.replace(replace(record, data=old_data)) is not None
    monkeypatch.setattr(stack.genesys.org, "answer_after_seconds", 0)  # the callee answers: a new event

    for _ in range(8):  # a step a second; the retry is due 5 s after the failed post
        watcher.run(queued_steps(queue, 1)[0])
        if len(receiver.events()) == 3:
            break

    assert [event["type"] for event in receiver.events()] == ["call.ringing", "call.connected", "call.ringing"]
    assert set(watch_state(conversation_id)["events"]) == {"ringing", "connected"}
    assert all("document" not in entry for entry in watch_state(conversation_id)["deliveries"])


def test_a_watch_whose_first_step_was_lost_is_resumed_by_the_timer(
    stack: Stack, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """Storage refuses a new watch's first message. No message will ever run that watch, and the caller, answered
    201, will not retry (the watch used to be deleted for a retry to start again: its callbacks were lost). Once
    its first step is overdue by `STALLED_AFTER_SECONDS`, the app's timer resumes it, and the app's own queue runs
    it to the end."""
    monkeypatch.setattr(stack.genesys.org, "answer_after_seconds", 0.5)
    monkeypatch.setattr(stack.genesys.org, "hang_up_after_seconds", 0.5)
    configure(**FAST)
    placed = stack.post("/api/calls", CALL)
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]
    # It started a while ago, so its first step is overdue now.
    starting = watcher_on(STATUS_QUEUE, storage=dead_queue_service(), clock=in_seconds(-STALLED_AFTER_SECONDS - 60))
    starting.start(conversation_id, "request-1", StatusCallback(receiver.url, ("ringing", "connected", "ended")))
    stalled = app_store().read(record_key(conversation_id))
    assert stalled is not None and stalled.state == WATCHING and watch_state(conversation_id)["tick"] == 0

    stack.host.timers["resume_stalled_watches"].fire()

    eventually(lambda: settled(conversation_id), "the resumed watch to settle")
    assert [event["type"] for event in receiver.events()] == ["call.ringing", "call.connected", "call.ended"]
    finished = app_store().read(record_key(conversation_id))
    assert finished is not None and finished.due_at is None  # nothing left to resume


def test_a_step_that_turns_up_after_its_watch_was_resumed_does_nothing(
    stack: Stack, watch_queue: Any, receiver: Receiver
) -> None:
    """A step held up past its time (a backlog, a slow instance) is not lost, only late: the watch is resumed only
    once the step is overdue by `STALLED_AFTER_SECONDS`, once, and the late message then finds its step taken."""
    queue_name, queue = watch_queue
    conversation_id = watched_call(stack, receiver, watcher_on(queue_name), ("ringing", "ended"))
    late = queued_steps(queue, 1)[0]  # taken, not run: held up somewhere

    assert watcher_on(queue_name, clock=in_seconds(STALLED_AFTER_SECONDS - 30)).resume_stalled() == 0
    later = watcher_on(queue_name, clock=in_seconds(STALLED_AFTER_SECONDS + 30))
    assert later.resume_stalled() == 1
    assert later.resume_stalled() == 0  # resumed is no longer overdue
    reads_before = len(stack.genesys.requests("get_call"))

    watcher = watcher_on(queue_name)
    watcher.run(late)
    assert len(stack.genesys.requests("get_call")) == reads_before  # the late step did nothing
    (resumed,) = queued_steps(queue, 1)
    watcher.run(resumed)

    assert len(stack.genesys.requests("get_call")) - reads_before == 1
    assert [event["type"] for event in receiver.events()] == ["call.ringing"]
    assert watch_state(conversation_id)["tick"] == 2
    assert waiting(queue) == 1


def test_a_resume_racing_the_late_step_leaves_one_chain(stack: Stack, watch_queue: Any, receiver: Receiver) -> None:
    """The late step runs after all, while the resume writes: both read the record before either wrote it, both
    queue a next step, and only the one whose record write landed (here the resume's) goes on."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    late = queued_steps(queue, 1)[0]
    reading, resumed = threading.Event(), threading.Event()

    def hold_the_read() -> None:
        reading.set()
        resumed.wait(STEP_TIMEOUT_SECONDS)

    stack.genesys.inject("get_call", Fault(status=None, before_answer=hold_the_read))
    errors: list[BaseException] = []

    def run_late() -> None:
        try:
            watcher.run(late)
        except BaseException as error:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(error)

    runner = threading.Thread(target=run_late)
    runner.start()
    assert reading.wait(STEP_TIMEOUT_SECONDS)  # the step read the record and is reading the call
    assert watcher_on(queue_name, clock=in_seconds(STALLED_AFTER_SECONDS + 30)).resume_stalled() == 1
    resumed.set()
    runner.join(STEP_TIMEOUT_SECONDS)
    assert not runner.is_alive() and not errors, errors
    assert watch_state(conversation_id)["tick"] == 1 and waiting(queue) == 2  # two next steps: one is a stray

    two_next_steps_leave_one_chain(watcher, stack, queue, conversation_id)


def test_a_resume_that_loses_to_the_late_step_leaves_one_chain(
    stack: Stack, watch_queue: Any, receiver: Receiver, azurite: Azurite
) -> None:
    """The resume has read the overdue watch when the late step runs after all and moves the record on: the
    resume's write then fails on the record's ETag, its message is a stray, and the step's chain goes on alone."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    late = queued_steps(queue, 1)[0]
    outcome: list[int] = []
    with table_front(azurite.ports["Table"]) as front:
        store = TableStore(front.storage().table(services().settings.idempotency_table))
        resuming = watcher_on(queue_name, store, clock=in_seconds(STALLED_AFTER_SECONDS + 30))
        front.hold_next_query()
        resumer = threading.Thread(target=lambda: outcome.append(resuming.resume_stalled()))
        resumer.start()
        assert front.holding.wait(STEP_TIMEOUT_SECONDS)  # its query ran: it holds the watch as it stood
        watcher.run(late)
        front.release.set()
        resumer.join(STEP_TIMEOUT_SECONDS)
        assert not resumer.is_alive()
    assert outcome == [0]
    assert watch_state(conversation_id)["tick"] == 1 and waiting(queue) == 2

    two_next_steps_leave_one_chain(watcher, stack, queue, conversation_id)


def test_a_live_watch_is_due_when_its_next_message_shows_and_is_not_resumed(
    stack: Stack, watch_queue: Any, receiver: Receiver
) -> None:
    """Polled every 1.5 s, the next message is queued to show in 2 (whole seconds): the record is due then, not
    at the next read's time."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name, poll_seconds=1.5)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    first = queued_steps(queue, 1)[0]
    before = time.time()
    watcher.run(first)
    after = time.time()

    record = app_store().read(record_key(conversation_id))
    assert record is not None and record.due_at is not None
    assert before + 2 <= record.due_at <= after + 2
    not_yet = in_seconds(record.due_at - time.time() + STALLED_AFTER_SECONDS - 30)
    assert watcher_on(queue_name, clock=not_yet).resume_stalled() == 0


def test_a_watch_that_keeps_stalling_is_ended_after_its_resumes(
    stack: Stack, watch_queue: Any, receiver: Receiver
) -> None:
    """A step that fails every time goes to the poison queue each time it is resumed; after MAX_RESUMES in a row
    the watch ends, rather than being resumed every 10 minutes until its record expires a day later, and the
    deliveries still pending are undeliverable."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    receiver.answers.append(500)  # "ringing" is refused once: pending, to be tried again by the next step
    watcher.run(queued_steps(queue, 1)[0])
    queued_steps(queue, 1)  # and from then on no step runs: each resume finds the watch overdue again
    runs = [watcher_on(queue_name, clock=in_seconds(n * (STALLED_AFTER_SECONDS + 30))) for n in range(1, 6)]

    assert [run.resume_stalled() for run in runs] == [1] * MAX_RESUMES + [0, 0]
    record = app_store().read(record_key(conversation_id))
    assert record is not None and record.state == FINISHED and record.due_at is None
    assert watcher.deliveries(conversation_id) == [{"event": "ringing", "status": "undeliverable", "attempts": 1}]


def test_a_queue_outage_ends_the_resume_run_and_a_run_ends_at_its_time(
    stack: Stack, watch_queue: Any, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Each stalled watch waited out the queue's retries in turn, whatever failed before: a queue that hung made one
    run last hours (16 s a watch, up to 1,000 watches), past the platform's limit on a function's run."""
    queue_name, queue = watch_queue
    for to in ("+12125550181", "+12125550182"):
        placed = stack.post("/api/calls", {"to": to})
        assert placed.status_code == 201, placed.text
        watcher_on(queue_name).start(
            placed.json()["conversationId"], "request-1", StatusCallback(receiver.url, ("ended",))
        )
    queued_steps(queue, 2)  # taken, never run: both watches stall
    overdue = in_seconds(STALLED_AFTER_SECONDS + 30)

    with caplog.at_level("ERROR", logger="shared.status_callbacks.watcher"):
        during_outage = watcher_on(queue_name, storage=dead_queue_service(), clock=overdue).resume_stalled()
    out_of_time = watcher_on(queue_name, clock=overdue).resume_stalled(seconds=0)
    later = watcher_on(queue_name, clock=overdue).resume_stalled()

    assert during_outage == 0 and out_of_time == 0
    assert len([r for r in caplog.records if "Could not resume" in r.getMessage()]) == 1
    assert later >= 2  # both were left for the next run (other tests' stalled watches may be resumed with them)


def test_a_step_that_runs_clears_the_count_of_resumes(stack: Stack, watch_queue: Any, receiver: Receiver) -> None:
    """Only stalls in a row end a watch: one whose resumed step ran is resumed again when it stalls again."""
    queue_name, queue = watch_queue
    watcher = watcher_on(queue_name)
    conversation_id = watched_call(stack, receiver, watcher, ("ringing", "ended"))
    queued_steps(queue, 1)  # lost
    runs = [watcher_on(queue_name, clock=in_seconds(n * (STALLED_AFTER_SECONDS + 30))) for n in range(1, 4)]
    assert [run.resume_stalled() for run in runs] == [1] * MAX_RESUMES
    for step in queued_steps(queue, MAX_RESUMES):  # the first two find their ticks past; the last one runs
        watcher.run(step)
    assert watch_state(conversation_id)["tick"] == MAX_RESUMES + 1
    queued_steps(queue, 1)  # lost again

    assert watcher_on(queue_name, clock=in_seconds(STALLED_AFTER_SECONDS + 30)).resume_stalled() == 1


@pytest.mark.parametrize("kind", ["table", "memory"])
def test_the_stores_find_overdue_records_in_a_state_up_to_a_limit(stack: Stack, kind: str) -> None:
    store: Store = app_store() if kind == "table" else MemoryStore()
    now = time.time()

    def record(name: str, state: str, due_at: float | None) -> None:
        assert store.create(Record(f"callbacks:{name}", "", state, "request", now, now + 3600, due_at=due_at))

    for name in ("a", "b", "c"):
        record(name, WATCHING, now - 600)
    record("due-later", WATCHING, now + 600)
    record("finished", FINISHED, now - 600)
    record("an-answered-request", DONE, now - 600)
    record("from-an-earlier-release", WATCHING, None)

    assert {r.key for r in store.overdue(WATCHING, now, 10)} == {"callbacks:a", "callbacks:b", "callbacks:c"}
    two = store.overdue(WATCHING, now, 2)
    assert len(two) == 2 and all(r.due_at == now - 600 and r.etag for r in two)
