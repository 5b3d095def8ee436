"""Asynchronous mode through a client that behaves like Power Automate's asynchronous pattern."""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests

from emulators.azurite import Azurite
from emulators.genesys import NO_STATION_USER_ID, Fault
from emulators.local_host import QueueRunner
from shared.async_requests import PENDING, Job, record_key
from shared.idempotency import CLAIMED, SENT, Record, fingerprint
from shared.services import services
from tests.conftest import Stack, app_queue, app_store, backdate, wait_for
from tests.table_front import TableFront, table_front, through_front

ASYNC = {"Prefer": "respond-async"}
MAX_POLLS = 40
# Caller IDs from settings: validating the request needs no Genesys token, so token faults hit the queue side.
NO_GENESYS_BEFORE_DIALING = {"CALLER_ID_SOURCE": "settings", "ALLOWED_CALLER_IDS": "+13175550100"}


def follow(stack: Stack, accepted: requests.Response) -> tuple[requests.Response, int]:
    """What Power Automate does with a 202: GET Location, waiting Retry-After, until it is not 202."""
    assert accepted.status_code == 202, accepted.text
    response, polls = accepted, 0
    while response.status_code == 202:
        assert polls < MAX_POLLS, "the request never finished"
        time.sleep(int(response.headers["Retry-After"]))
        response = stack.get(response.headers["Location"])
        polls += 1
    return response, polls


@pytest.mark.parametrize(
    "prefer",
    ["respond-async, wait=5", "wait=5, Respond-Async", "respond-async; wait=5", 'return=minimal, respond-async=""'],
)
def test_a_preference_for_asynchronous_answers_is_read_in_any_form_rfc_7240_allows(
    stack: Stack, configure, prefer: str
) -> None:
    """A preference with parameters (`respond-async; wait=5`) or an empty value was answered synchronously."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1")

    accepted = stack.post("/api/calls", {"to": "(212) 555-0199"}, headers={"Prefer": prefer})

    assert accepted.status_code == 202, accepted.text
    final, _ = follow(stack, accepted)
    assert final.status_code == 201, final.text


def test_async_request_is_accepted_then_placed_by_the_queue(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1")

    accepted = stack.post("/api/calls", {"to": "(212) 555-0199"}, headers=ASYNC)

    assert accepted.headers["Location"] == f"/api/calls/requests/{accepted.json()['requestId']}"
    assert accepted.json()["status"] == PENDING
    final, _ = follow(stack, accepted)
    assert final.status_code == 201, final.text
    assert final.json()["to"] == "+12125550199"
    assert final.headers["Location"] == f"/api/calls/{final.json()['conversationId']}"
    assert len(stack.creates()) == 1


def test_input_errors_answer_at_once_and_queue_nothing(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": "911"}, headers=ASYNC)

    assert response.status_code == 403
    assert response.json()["code"] == "destination_not_allowed"


def test_idempotency_spans_both_modes(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1")
    key = {"Idempotency-Key": "both-modes"}
    sync = stack.post("/api/calls", {"to": "+12125550199"}, headers=key)

    final, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550199"}, headers={**key, **ASYNC}))

    assert final.json()["conversationId"] == sync.json()["conversationId"]
    assert len(stack.creates()) == 1


def test_transient_failure_is_retried_from_the_queue(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1", **NO_GENESYS_BEFORE_DIALING)
    stack.genesys.inject("token", *[Fault(status=503)] * 3)  # the first delivery fails; nothing was dialed

    final, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC))

    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1


def test_a_create_refused_for_longer_than_the_deadline_is_tried_again_when_genesys_asked(
    stack: Stack, configure
) -> None:
    """Genesys answered the create 429 with a Retry-After past CALL_DEADLINE_SECONDS: it did not act, so the job is
    queued again for when Genesys asked (not the queue's 2 s), rather than end as a final 429."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1", CALL_DEADLINE_SECONDS="3")
    created_at: list[float] = []
    stack.genesys.inject(
        "create_call",
        Fault(status=429, retry_after=6, before_answer=lambda: created_at.append(time.monotonic())),
        Fault(status=None, before_answer=lambda: created_at.append(time.monotonic())),
    )

    final, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC))

    assert final.status_code == 201, final.text
    assert len(created_at) == len(stack.creates()) == 2  # the one refused with 429, then the one that placed it
    assert created_at[1] - created_at[0] >= 6  # Genesys's Retry-After, not the queue's 2 s


@pytest.mark.parametrize("status", [503, 408])
def test_a_create_whose_outcome_is_unknown_is_final_though_a_retry_would_pass(
    stack: Stack, configure, status: int
) -> None:
    """A 503 or 408 to the create may come after Genesys placed the call: the job answers it, never dials again."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1")
    stack.genesys.inject("create_call", Fault(status=status))  # only the first create fails

    final, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC))

    assert final.status_code == 503, final.text
    assert "outcome unknown" in final.json()["hint"].lower()
    assert "Idempotent-Replayed" not in final.headers  # answered by the delivery that sent it, not retried
    assert len(stack.creates()) == 1


def test_a_failure_that_cannot_pass_on_a_retry_is_answered_at_once(stack: Stack, configure) -> None:
    # 409 genesys_no_station: the create reached Genesys, so the job is answered, never sent back to the queue.
    configure(ASYNC_RETRY_AFTER_SECONDS="1")

    final, _ = follow(
        stack, stack.post("/api/calls", {"to": "+12125550199", "userId": NO_STATION_USER_ID}, headers=ASYNC)
    )

    assert final.status_code == 409
    assert final.json()["code"] == "genesys_no_station"
    assert len(stack.creates()) == 1


def test_failure_on_every_delivery_ends_as_a_readable_answer(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1", **NO_GENESYS_BEFORE_DIALING)
    stack.genesys.inject("token", *[Fault(status=503)] * 15)  # 5 deliveries x 3 read attempts

    final, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC))

    assert final.status_code == 503
    assert final.json()["code"] == "genesys_unavailable"
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("state", "status", "creates"),
    [(CLAIMED, 201, 1), (SENT, 504, 0)],
)
@pytest.mark.timeout(60)
def test_a_job_held_by_a_delivery_that_died_is_settled_once_its_claim_is_stale(
    stack: Stack, configure, state: str, status: int, creates: int
) -> None:
    """Its holder's worker died mid-job. The queue's next tries, two seconds apart, must not end the job as a
    failure before the claim is stale (11 s and the 1 s wait here); then a job that never sent runs, and one that
    sent answers "outcome unknown"."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1", IDEMPOTENCY_STALE_SECONDS="11", IDEMPOTENCY_WAIT_SECONDS="1")
    job = Job(str(uuid.uuid4()), {"to": "+12125550199"}, None, time.time())
    message = job.to_message()
    store = app_store()
    now = time.time()
    assert store.create(Record(record_key(job.request_id), fingerprint(message), state, "dead", now, now + 3600))
    app_queue().send_message(message)

    final, _ = follow(stack, stack.get(f"/api/calls/requests/{job.request_id}"))

    assert final.status_code == status, final.text
    assert len(stack.creates()) == creates


def test_a_request_id_is_read_in_any_case(stack: Stack, configure) -> None:
    """A UUID's hex digits are one in either case; a client that upper-cased the id was told 404."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1")
    accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
    request_id = accepted.json()["requestId"]

    final, _ = follow(stack, stack.get(f"/api/calls/requests/{request_id.upper()}"))

    assert final.status_code == 201, final.text
    assert final.json()["requestId"] == request_id


def test_unknown_request_is_request_not_found(stack: Stack) -> None:
    response = stack.get(f"/api/calls/requests/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["code"] == "request_not_found"


def test_async_mode_without_storage_is_a_configuration_error(stack: Stack, configure) -> None:
    configure(AzureWebJobsStorage=None)

    response = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)

    assert response.status_code == 500
    assert response.json()["code"] == "configuration_error"
    assert stack.creates() == []


@dataclass(frozen=True)
class LosingQueue:
    """A request whose queue messages lose their answers: `headers` send it; `queue` and `tables` are the fronts."""

    queue: TableFront
    tables: TableFront
    headers: dict[str, str]


def queued_text(insert_body: bytes) -> str:
    """The message a queue insert carries (its XML's base64 MessageText), '' for any other body."""
    found = re.search(rb"<MessageText>([^<]*)</MessageText>", insert_body)
    try:
        return base64.b64decode(found.group(1)).decode("utf-8") if found else ""
    except ValueError:
        return ""


@contextmanager
def queue_answers_lost(stack: Stack, configure, azurite: Azurite) -> Iterator[LosingQueue]:
    """The app's queue and table requests (the local host's too) through fronts that can lose the queue's answers
    and refuse table writes. Only the messages of the request sent with `headers` (its own Idempotency-Key) lose
    their answers: another test's message delivered meanwhile (a poison copy, a check-back) is sent as usual, and
    cannot hold the runner's threads at the fault."""
    queue = f"QueueEndpoint=http://127.0.0.1:{azurite.ports['Queue']}/"
    assert queue in azurite.connection_string
    key = f"lost-answers-{uuid.uuid4()}"
    with (
        table_front(azurite.ports["Queue"]) as queue_front,  # the front relays any of Azurite's services
        table_front(azurite.ports["Table"]) as tables,
    ):
        queue_front.lost_answers_only_for = lambda body: key in queued_text(body)
        front_queue = f"QueueEndpoint=http://127.0.0.1:{queue_front.server_address[1]}/"
        configure(
            ASYNC_RETRY_AFTER_SECONDS="1",
            AzureWebJobsStorage=through_front(azurite, tables).replace(queue, front_queue),
        )
        yield LosingQueue(queue_front, tables, {**ASYNC, "Idempotency-Key": key})


@pytest.mark.parametrize("record_answer_lost", [False, True], ids=["record-written", "record-answer-lost-too"])
def test_a_job_whose_message_landed_though_its_send_failed_dials_nothing(
    stack: Stack, configure, azurite: Azurite, record_answer_lost: bool
) -> None:
    """The queue took each try of the send and every answer was lost (a 503 from the way back): the caller is told
    503, nothing dialed, and has no request id to follow. The copies that landed used to run the job: a call the
    caller was told never happened, and dialed again when it sent the request again. Likewise when the job's own
    record was written but its answer lost (the SDK's resend met 409): the record is found and withdrawn."""
    with queue_answers_lost(stack, configure, azurite) as losing:
        losing.queue.lost_insert_answers = 100  # every try of the send lands, and is answered 503
        losing.queue.failing_reads = True  # and no copy is taken off the queue before the send has failed
        if record_answer_lost:
            losing.tables.lost_answers_only_for = lambda body: b'"async:' in body
            losing.tables.lost_insert_answers = 1
        deliveries_before = len(stack.host.queues.deliveries)

        response = stack.post("/api/calls", {"to": "+12125550199"}, headers=losing.headers)
        losing.queue.lost_insert_answers, losing.queue.failing_reads = 0, False

        assert response.status_code == 503, response.text
        assert response.json()["code"] == "idempotency_store_unavailable"
        # A copy of the withdrawn job fails as untrusted (another test's message delivered meanwhile succeeds)
        copy_refused = wait_for(
            lambda: ("place_queued_call", False) in stack.host.queues.deliveries[deliveries_before:], 30
        )
        assert copy_refused, "no copy was delivered"
    assert stack.creates() == []


@pytest.mark.parametrize("lost", [1, 3], ids=["first-answer-lost", "every-answer-lost"])
def test_a_job_whose_sent_mark_landed_unheard_places_its_call(
    stack: Stack, configure, azurite: Azurite, lost: int
) -> None:
    """The write marking the job "sent" (right before the create) landed and its answer was lost; the SDK's resend
    met its own write (412), or every try's answer was lost too. The worker read that as another delivery's, or as
    a failure, and sent nothing, and the job was left "sent": its caller was told the call may have been placed,
    for a call that never was, and no retry came."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), ASYNC_RETRY_AFTER_SECONDS="1")
        front.lost_answers_only_for = lambda body: b'"async:' in body and b'"State": "sent"' in body
        front.lost_update_answers = lost  # the SDK tries 3 times

        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
        final, _ = follow(stack, accepted)

        assert front.lost_update_answers == 0, "the mark's answer was not lost"
    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1


@pytest.mark.parametrize("lost", [3, 1], ids=["every-answer-lost", "first-answer-lost"])
def test_a_job_whose_sent_mark_landed_unheard_and_unread_places_its_call(
    stack: Stack, configure, azurite: Azurite, lost: int
) -> None:
    """As above, and the read-back after them failed too: the worker could not tell its mark landed, sent nothing
    and put the job back to pending with the etag it had before the mark, which the mark had changed. The job
    stayed "sent", and its caller was told the call may have been placed. With only the first answer lost (the
    resend met 412), a failed read-back was not even taken for a mark that may have landed."""
    with table_front(azurite.ports["Table"]) as front:
        configure(  # a claim stale after 2 s: unfixed, the job ends "outcome unknown" within the polls
            AzureWebJobsStorage=through_front(azurite, front),
            ASYNC_RETRY_AFTER_SECONDS="1",
            IDEMPOTENCY_WAIT_SECONDS="1",
            IDEMPOTENCY_STALE_SECONDS="2",
        )
        marks = 0

        def the_mark(body: bytes) -> bool:
            nonlocal marks
            if b'"async:' not in body or b'"State": "sent"' not in body:
                return False
            marks += 1
            front.failing_reads |= marks == lost  # from the last lost answer: the read-back finds storage gone
            return True

        def on_refusal() -> None:
            front.failing_reads = front.refused < 3  # storage is back after the read-back's three tries

        front.lost_answers_only_for, front.on_refusal = the_mark, on_refusal
        front.lost_update_answers = lost

        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
        final, _ = follow(stack, accepted)

        assert (front.lost_update_answers, front.refused) == (0, 3), "the mark and its read-back did not fail"
    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1


def test_a_job_that_could_not_be_withdrawn_is_answered_202(stack: Stack, configure, azurite: Azurite) -> None:
    """The send failed, and so did the delete that withdraws the job (queue and tables share one account, and fail
    together): a copy of the message that landed will run it, so the caller gets its id, not a 503 saying nothing
    was dialed, which it would answer by sending the request again."""
    with queue_answers_lost(stack, configure, azurite) as losing:
        losing.queue.lost_insert_answers = 100
        losing.queue.failing_reads = True  # no copy is taken off the queue before the answer
        losing.tables.failing_deletes = True

        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=losing.headers)
        losing.queue.lost_insert_answers, losing.queue.failing_reads, losing.tables.failing_deletes = 0, False, False

        assert accepted.status_code == 202, accepted.text
        final, _ = follow(stack, accepted)
    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1


def test_a_job_whose_landed_message_already_runs_is_answered_202(stack: Stack, configure, azurite: Azurite) -> None:
    """The same lost answers, but a copy that landed was taken and placed the call before the send gave up: the
    job stands, so the caller gets its request id (and the call's answer by it), not a 503 saying nothing was
    dialed."""
    with queue_answers_lost(stack, configure, azurite) as losing:
        losing.queue.lost_insert_answers = 100
        losing.queue.lost_answer_gate = threading.Event()  # the first answer is lost only once a copy has run
        with ThreadPoolExecutor(1) as background:
            posting = background.submit(stack.post, "/api/calls", {"to": "+12125550199"}, headers=losing.headers)
            ran = wait_for(lambda: len(stack.creates()) == 1, 30)  # by a copy: the send is held at the gate
            losing.queue.lost_answer_gate.set()
            assert ran, "no copy ran"
            accepted = posting.result(timeout=30)
        losing.queue.lost_insert_answers = 0

        final, _ = follow(stack, accepted)
    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1


@contextmanager
def quick_jobs_through_a_front(configure, azurite: Azurite, **settings: str) -> Iterator[TableFront]:
    """Storage through a fault front, and jobs whose holder is presumed dead after a second."""
    with table_front(azurite.ports["Table"]) as front:
        configure(
            ASYNC_RETRY_AFTER_SECONDS="1",
            IDEMPOTENCY_STALE_SECONDS="1",
            IDEMPOTENCY_WAIT_SECONDS="1",
            AzureWebJobsStorage=through_front(azurite, front),
            **settings,
        )
        yield front


def test_a_job_whose_last_write_failed_answers_its_calls_201_not_outcome_unknown(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """The call was placed and its answer recorded; then the job's own record refused the answer (storage went
    away for a moment). The next delivery found the job "sent" and answered 504 "it may have been placed": the
    conversation id lost, and a keyless client that sent the request again rang the person a second time."""
    with quick_jobs_through_a_front(configure, azurite) as front:
        deliveries = stack.host.queues.deliveries
        refused_at: list[int] = []  # how many deliveries had ended when the job's answer was first refused

        def the_jobs_answer(body: bytes) -> bool:
            if b'"async:' in body and b'"done"' in body:
                refused_at[:] = refused_at or [len(deliveries)]
                return True
            return False

        front.failing_write_when = the_jobs_answer

        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
        # A failure counted before the refusal is another test's message still being tried on the shared queue
        failed = wait_for(lambda: bool(refused_at) and ("place_queued_call", False) in deliveries[refused_at[0] :], 30)
        front.failing_write_when = None
        assert failed and front.refused > 0, "the job's answer was written"
        final, _ = follow(stack, accepted)

    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 1
    assert list(stack.genesys.org.conversations) == [final.json()["conversationId"]]


def test_a_job_refused_429_whose_put_back_failed_runs_again_not_outcome_unknown(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """Genesys refused the create 429 (nothing placed); storage then refused the job's put-back to pending, so its
    record stayed "sent" while its key's claim was let go of. The next delivery answered 504 "it may have been
    placed" of a call never placed, and the job was never tried again. (Without a key the claim's absence proves
    nothing: an identical request past the window may have taken it over and let go of it.)"""
    with quick_jobs_through_a_front(configure, azurite) as front:
        refusing = threading.Event()

        def the_put_back(body: bytes) -> bool:  # every try of the one write back to pending, then no more
            if refusing.is_set() and b'"async:' in body and b'"State": "pending"' in body:
                if front.refused >= 2:
                    refusing.clear()
                return True
            return False

        front.failing_write_when = the_put_back
        stack.genesys.inject("create_call", Fault(status=429, retry_after=20, before_answer=refusing.set))

        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers={**ASYNC, "Idempotency-Key": "put-back"})
        final, _ = follow(stack, accepted)

    assert front.refused == 3, "the put-back was written"
    assert final.status_code == 201, final.text
    assert len(stack.creates()) == 2  # the one refused 429, and the one that placed the call
    assert list(stack.genesys.org.conversations) == [final.json()["conversationId"]]


def test_a_keyless_job_left_sent_after_placing_its_call_is_not_placed_again_when_its_claim_goes(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """A keyless job placed its call and storage refused its answer, so it stayed "sent"; past the duplicate window an
    identical request took the call's claim over, was refused 429 and let go of it. The job's next delivery must not
    take the missing claim for "nothing placed" (a review's reproduction of the first version of that rule rang
    the person twice)."""
    with quick_jobs_through_a_front(configure, azurite, DUPLICATE_WINDOW_SECONDS="1") as front:
        front.failing_write_when = lambda body: b'"async:' in body and b'"done"' in body
        accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers=ASYNC)
        assert wait_for(lambda: len(stack.creates()) == 1 and front.refused > 0, 30), "the job's answer was written"
        time.sleep(1.5)  # past the duplicate window
        stack.genesys.inject("create_call", Fault(status=429, retry_after=30))
        identical = stack.post("/api/calls", {"to": "+12125550199"})
        front.failing_write_when = None
        final, _ = follow(stack, accepted)

    assert identical.status_code == 429, identical.text
    assert final.status_code == 504 and final.json()["code"] == "genesys_timeout", final.text  # may have been placed
    assert len(stack.genesys.org.conversations) == 1


def test_one_asynchronous_request_has_one_id(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1")

    accepted = stack.post("/api/calls", {"to": "+12125550199"}, headers={**ASYNC, "X-Request-Id": "caller-chosen"})
    final, _ = follow(stack, accepted)

    request_id = accepted.json()["requestId"]
    assert accepted.headers["X-Request-Id"] == request_id
    assert final.headers["X-Request-Id"] == final.json()["requestId"] == request_id


def test_a_malformed_idempotency_key_is_refused_at_once(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": "+12125550199"}, headers={**ASYNC, "Idempotency-Key": "é" * 3})

    assert response.status_code == 400
    assert response.json()["field"] == "Idempotency-Key"


@contextmanager
def queue_listener_away(stack: Stack) -> Iterator[None]:
    """No instance takes jobs off the queue (the one that took a job died, or none has scaled out yet); after
    the block a new listener starts, as on a new instance."""
    away = stack.host.queues
    away.stop()
    try:
        yield
    finally:
        stack.host.queues = QueueRunner(away.functions, away.options, away.lease_seconds)
        stack.host.queues.start()


def test_a_keyless_job_queued_inside_the_window_replays_the_answer_after_the_purge_timer_ran(
    stack: Stack, configure
) -> None:
    """The second job was accepted inside the window of the first's answer and taken off the queue after the
    window and a purge run: the answer it must replay is still there, so the person is called once."""
    # 3 s: `follow` sees the first answer up to a poll (1 s) after it was given, and the second must come inside.
    configure(ASYNC_RETRY_AFTER_SECONDS="1", DUPLICATE_WINDOW_SECONDS="3")
    first, _ = follow(stack, stack.post("/api/calls", {"to": "+12125550194"}, headers=ASYNC))
    with queue_listener_away(stack):
        second = stack.post("/api/calls", {"to": "+12125550194"}, headers=ASYNC)
        time.sleep(3.2)  # past the window: the first answer's record has expired
        stack.host.timers["purge_expired_records"].fire()

    replayed, _ = follow(stack, second)

    assert (first.status_code, replayed.status_code) == (201, 201), replayed.text
    assert replayed.json()["conversationId"] == first.json()["conversationId"]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_a_job_that_outlived_its_retention_on_the_queue_is_answered_and_never_dialed(stack: Stack, configure) -> None:
    configure(ASYNC_RETRY_AFTER_SECONDS="1")
    with queue_listener_away(stack):
        accepted = stack.post("/api/calls", {"to": "+12125550193"}, headers=ASYNC)
        backdate(record_key(accepted.json()["requestId"]), services().settings.idempotency_retention_seconds + 1)

    final, _ = follow(stack, accepted)

    assert final.status_code == 500, final.text
    assert "past IDEMPOTENCY_RETENTION_SECONDS" in final.json()["detail"]
    assert stack.creates() == []


def test_identical_keyless_jobs_are_one_even_when_the_second_runs_after_the_window(stack: Stack, configure) -> None:
    # The window is measured from when a job was accepted, not from when a worker takes it off the queue.
    configure(ASYNC_RETRY_AFTER_SECONDS="1", DUPLICATE_WINDOW_SECONDS="1")
    stack.genesys.inject("create_call", Fault(status=None, delay=1.5))  # the first job holds the worker past it

    first = stack.post("/api/calls", {"to": "+12125550195"}, headers=ASYNC)
    second = stack.post("/api/calls", {"to": "+12125550195"}, headers=ASYNC)
    answers = [follow(stack, accepted)[0] for accepted in (first, second)]

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].json()["conversationId"] == answers[0].json()["conversationId"]
    # The host runs a batch of messages in parallel: either job may be the one that dialed.
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert len(stack.creates()) == 1


def test_a_keyless_job_run_late_replays_an_identical_call_made_after_it_was_accepted(stack: Stack, configure) -> None:
    """Judged by when it was accepted, the job finds the identical call's answer live and replays it, even when that
    call came a window or more after it: the person is called once for both, never twice (README: a job's claim
    is written only when it runs)."""
    configure(ASYNC_RETRY_AFTER_SECONDS="1", DUPLICATE_WINDOW_SECONDS="1")
    with queue_listener_away(stack):
        job = stack.post("/api/calls", {"to": "+12125550192"}, headers=ASYNC)
        time.sleep(1.2)  # past the window, measured from the job's acceptance
        later = stack.post("/api/calls", {"to": "+12125550192"})

    final, _ = follow(stack, job)

    assert (later.status_code, final.status_code) == (201, 201), final.text
    assert final.json()["conversationId"] == later.json()["conversationId"]
    assert final.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1
