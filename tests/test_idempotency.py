"""One logical request, at most one Genesys call: keys, the duplicate window, failures, concurrency."""

from __future__ import annotations

import http.client
import itertools
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from emulators.azure import VaultFault
from emulators.azurite import Azurite
from emulators.genesys import Fault
from shared.calls import CallRequest
from shared.errors import Problem
from shared.idempotency import SENDING, Idempotency, Record, Reply, TableStore
from shared.services import services
from tests.conftest import Stack, app_store, backdate, wait_for
from tests.table_front import table_front, through_front

CALL = {"to": "+12125550199"}
ROOT = Path(__file__).resolve().parent.parent


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_same_key_same_body_replays_the_stored_answer(stack: Stack) -> None:
    first = stack.post("/api/calls", CALL, headers=keyed("order-17"))
    again = stack.post("/api/calls", {"to": "(212) 555-0199"}, headers=keyed("order-17"))

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json() == first.json()
    assert len(stack.creates()) == 1


def test_same_key_different_body_is_key_reused(stack: Stack) -> None:
    stack.post("/api/calls", CALL, headers=keyed("order-18"))

    response = stack.post("/api/calls", {"to": "+12125550198"}, headers=keyed("order-18"))

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert response.json()["field"] == "Idempotency-Key"
    assert len(stack.creates()) == 1


def test_different_key_dials_again(stack: Stack) -> None:
    a = stack.post("/api/calls", CALL, headers=keyed("a"))
    b = stack.post("/api/calls", CALL, headers=keyed("b"))

    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["conversationId"] != b.json()["conversationId"]
    assert len(stack.creates()) == 2


def test_identical_requests_without_key_inside_the_window_are_one(stack: Stack) -> None:
    first = stack.post("/api/calls", CALL)
    retry = stack.post("/api/calls", {"to": "+1 (212) 555-0199"})  # same call, spelled differently

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["conversationId"] == first.json()["conversationId"]
    assert len(stack.creates()) == 1


def test_window_zero_turns_duplicate_protection_off(stack: Stack, configure) -> None:
    configure(DUPLICATE_WINDOW_SECONDS="0")

    stack.post("/api/calls", CALL)
    stack.post("/api/calls", CALL)

    assert len(stack.creates()) == 2


def test_validation_failures_are_not_stored(stack: Stack) -> None:
    bad = stack.post("/api/calls", {"to": "not a number"}, headers=keyed("fix-me"))
    fixed = stack.post("/api/calls", CALL, headers=keyed("fix-me"))

    assert bad.status_code == 400
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


def test_failure_before_sending_is_released_and_the_retry_dials_once(stack: Stack) -> None:
    stack.vault.inject(*[VaultFault(status=503)] * 3)  # the SDK's three attempts, all refused

    failed = stack.post("/api/calls", CALL, headers=keyed("vault-down"))
    retried = stack.post("/api/calls", CALL, headers=keyed("vault-down"))

    assert failed.status_code == 503
    assert retried.status_code == 201
    assert len(stack.creates()) == 1


# A 408 `client.timeout` is a part of Genesys that gave up waiting: like a 5xx, it does not say nothing rang.
@pytest.mark.parametrize("status", [503, 408])
def test_outcome_unknown_is_stored_so_a_retry_never_dials_again(stack: Stack, status: int) -> None:
    stack.genesys.inject("create_call", Fault(status=status))

    failed = stack.post("/api/calls", CALL, headers=keyed("maybe-dialed"))
    retried = stack.post("/api/calls", CALL, headers=keyed("maybe-dialed"))

    assert failed.status_code == retried.status_code == 503
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.headers["Content-Type"].startswith("application/problem+json")
    assert failed.headers["Cache-Control"] == retried.headers["Cache-Control"] == "no-store"
    assert retried.json()["code"] == "genesys_unavailable"
    assert "Outcome unknown" in retried.json()["hint"]
    assert len(stack.creates()) == 1


def test_a_keyless_outcome_unknown_is_replayed_by_a_retry_after_the_window(stack: Stack, configure) -> None:
    # The window runs from the answer (and a sent claim outlives it): Power Automate's later retries of a 503
    # must replay it, not ring again.
    configure(DUPLICATE_WINDOW_SECONDS="1", IDEMPOTENCY_STALE_SECONDS="1")
    stack.genesys.inject("create_call", Fault(status=503))
    failed = stack.post("/api/calls", CALL)

    time.sleep(1.3)  # past the window counted from the claim: the case the old window got wrong
    retried = stack.post("/api/calls", CALL)

    assert failed.status_code == retried.status_code == 503
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_genesys_refusal_is_released_so_a_fixed_org_can_be_retried(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(status=403, code="missing.any.permissions"))

    refused = stack.post("/api/calls", CALL, headers=keyed("perm"))
    retried = stack.post("/api/calls", CALL, headers=keyed("perm"))

    assert refused.json()["code"] == "genesys_permission_denied"
    assert retried.status_code == 201
    assert len(stack.genesys.org.conversations) == 1


def test_a_repeat_while_the_first_runs_waits_and_answers_the_same_call(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(delay=1.0, then_succeed=True))

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stack.post, "/api/calls", CALL, headers=keyed("slow"))
        while not stack.creates():  # the first has claimed the key and is dialing
            time.sleep(0.01)
        second = pool.submit(stack.post, "/api/calls", CALL, headers=keyed("slow"))
        answers = [first.result(), second.result()]

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert answers[0].json()["conversationId"] == answers[1].json()["conversationId"]
    assert len(stack.creates()) == 1


def test_past_the_wait_bound_a_repeat_is_request_in_progress(stack: Stack, configure) -> None:
    configure(IDEMPOTENCY_WAIT_SECONDS="0.2")
    stack.genesys.inject("create_call", Fault(delay=1.5, then_succeed=True))

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stack.post, "/api/calls", CALL, headers=keyed("busy"))
        while not stack.creates():
            time.sleep(0.01)
        second = stack.post("/api/calls", CALL, headers=keyed("busy"))
        assert first.result().status_code == 201

    assert second.status_code == 409
    assert second.json()["code"] == "request_in_progress"
    assert int(second.headers["Retry-After"]) >= 1
    assert len(stack.creates()) == 1


def stored_claim(stack: Stack, key: str, state: str, age: float) -> None:
    """Write a claim as a crashed instance would have left it, through the real Table client."""
    store = app_store()
    plan = services().calls.plan(CallRequest.from_json(CALL))
    now = time.time()
    assert store.create(Record("key:" + key, plan.fingerprint, state, "dead-instance", now - age, now + 3600))


def test_a_stale_claim_answers_outcome_unknown_without_dialing(stack: Stack) -> None:
    # A claim is written "sending" (the first of the two Table writes of a call): once it exists the call may
    # have been sent, so an owner that died leaves an outcome nobody knows, never a second dial.
    stored_claim(stack, "crashed", SENDING, age=3600)

    response = stack.post("/api/calls", CALL, headers=keyed("crashed"))

    assert response.status_code == 504
    assert response.json()["code"] == "genesys_timeout"
    assert "Outcome unknown" in response.json()["hint"]
    assert stack.creates() == []


def test_a_call_costs_two_table_writes_the_claim_and_the_answer(stack: Stack) -> None:
    writes = count_table_writes(app_store())

    assert stack.post("/api/calls", CALL, headers=keyed("two-writes")).status_code == 201

    assert writes == ["create_entity", "update_entity"]


def count_table_writes(store: Any) -> list[str]:
    """The names of the Table client's write operations from now on (its real requests, recorded as made)."""
    writes: list[str] = []
    table = store.table
    for name in ("create_entity", "update_entity", "upsert_entity", "delete_entity", "submit_transaction"):
        operation = getattr(table, name)

        def recorded(*args: Any, _name: str = name, _operation: Any = operation, **kwargs: Any) -> Any:
            writes.append(_name)
            return _operation(*args, **kwargs)

        setattr(table, name, recorded)
    return writes


def test_unreachable_store_answers_503_and_dials_nothing(stack: Stack, configure) -> None:
    configure(
        AzureWebJobsStorage="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )  # every endpoint on a closed loopback port: nothing may leave the machine

    response = stack.post("/api/calls", CALL, headers=keyed("no-store"))

    assert response.status_code == 503
    assert response.json()["code"] == "idempotency_store_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert stack.creates() == []


def test_without_storage_an_in_process_store_still_deduplicates(
    stack: Stack, configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(AzureWebJobsStorage=None)

    stack.post("/api/calls", CALL, headers=keyed("local"))
    again = stack.post("/api/calls", CALL, headers=keyed("local"))

    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1
    assert "covers this instance only" in caplog.text


def post_with_headers(stack: Stack, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    """POST a call with `headers` as given, a header repeated if listed twice (requests sends each name once)."""
    connection = http.client.HTTPConnection(urlsplit(stack.host.base_url).netloc, timeout=30)
    try:
        connection.putrequest("POST", "/api/calls")
        for name, value in [("Content-Type", "application/json"), *headers]:
            connection.putheader(name, value)
        body = json.dumps(CALL).encode()
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_key_sent_in_two_headers_is_that_key(stack: Stack) -> None:
    """The host joins a repeated header's values with commas: `K` sent twice reached the app as `K,K`, another key,
    and a retry that sent it once dialed a second time."""
    twice = post_with_headers(stack, [("Idempotency-Key", "order-4711"), ("Idempotency-Key", "order-4711")])
    once = post_with_headers(stack, [("Idempotency-Key", "order-4711")])
    differing = post_with_headers(stack, [("Idempotency-Key", "order-4711"), ("Idempotency-Key", "order-4712")])

    assert (twice[0], once[0]) == (201, 201), twice
    assert once[1]["conversationId"] == twice[1]["conversationId"]
    assert (differing[0], differing[1]["field"]) == (400, "Idempotency-Key")
    assert "given more than once" in differing[1]["detail"]
    assert len(stack.creates()) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_malformed_keys_are_refused(stack: Stack, key: str) -> None:
    response = stack.session.post(
        stack.host.base_url + "/api/calls", json=CALL, headers={"Idempotency-Key": key}, timeout=30
    )

    assert response.status_code == 400
    assert response.json()["field"] == "Idempotency-Key"
    assert stack.creates() == []


def test_a_replay_carries_the_original_request_id_in_header_and_body(stack: Stack) -> None:
    first = stack.post("/api/calls", CALL, headers={**keyed("one-id"), "X-Request-Id": "first-attempt"})
    replay = stack.post("/api/calls", CALL, headers={**keyed("one-id"), "X-Request-Id": "second-attempt"})

    assert first.headers["X-Request-Id"] == first.json()["requestId"] == "first-attempt"
    assert replay.headers["X-Request-Id"] == replay.json()["requestId"] == "first-attempt"
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_an_outcome_unknown_outlives_the_retention_so_a_late_redelivery_never_dials(stack: Stack, configure) -> None:
    # Signed senders redeliver a failed delivery for days (Pub/Sub up to 7): past IDEMPOTENCY_RETENTION_SECONDS
    # a known answer frees its key, but a call that may have gone out is kept for 8 days.
    stack.genesys.inject("create_call", Fault(status=503))
    unknown = stack.post("/api/calls", CALL, headers=keyed("late-unknown"))
    known = stack.post("/api/calls", {"to": "+12125550198"}, headers=keyed("late-known"))

    for key in ("key:late-unknown", "key:late-known"):  # a day and a second ago: past the retention
        backdate(key, services().settings.idempotency_retention_seconds + 1)
    stack.host.timers["purge_expired_records"].fire()
    unknown_again = stack.post("/api/calls", CALL, headers=keyed("late-unknown"))
    known_again = stack.post("/api/calls", {"to": "+12125550198"}, headers=keyed("late-known"))

    assert (unknown.status_code, known.status_code) == (503, 201)
    assert unknown_again.status_code == 503
    assert unknown_again.headers["Idempotent-Replayed"] == "true"
    assert known_again.status_code == 201 and "Idempotent-Replayed" not in known_again.headers
    assert len(stack.creates()) == 3  # the unknown one once, the known one twice (its key was free again)


def test_a_create_is_never_sent_after_the_requests_deadline(stack: Stack, configure) -> None:
    """The create met a revoked token, and the secret re-read that followed used up the deadline: sent now, it
    could land after the caller's retry, which may have dialed. It is not sent, and a retry places it."""
    configure(CALL_DEADLINE_SECONDS="3")  # the warm-up call below has all of that on a slow machine
    assert stack.post("/api/calls", {"to": "+12125550100"}).status_code == 201  # token and caller IDs cached
    stack.genesys.revoke_tokens()
    stack.genesys.inject("token", Fault(status=401, json_body={"error": "invalid_client"}))
    stack.vault.inject(VaultFault(status=None, delay=3.5))

    late = stack.post("/api/calls", CALL, headers=keyed("late"))
    retried = stack.post("/api/calls", CALL, headers=keyed("late"))

    assert late.status_code == 503, late.text
    assert late.json()["code"] == "genesys_unavailable"
    assert "CALL_DEADLINE_SECONDS" in late.json()["detail"]
    assert retried.status_code == 201, retried.text
    assert len(stack.genesys.org.conversations) == 2  # the first call and the retry: the late create never went


@pytest.mark.parametrize("prefix", ["sig", "swh", "sns", "pubsub", "eg", "ce"])
@pytest.mark.parametrize("mode", [{}, {"Prefer": "respond-async"}])
def test_a_caller_cannot_use_a_signed_deliverys_key(stack: Stack, prefix: str, mode: dict[str, str]) -> None:
    """Keys share one namespace: a key holder could otherwise claim a guessable delivery id before it comes."""
    response = stack.post("/api/calls", CALL, headers={"Idempotency-Key": f"{prefix}:{'0' * 64}", **mode})

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "Idempotency-Key"
    assert stack.creates() == []


def test_a_claim_whose_insert_answer_was_lost_is_still_its_own(azurite: Azurite) -> None:
    """The claim's insert reached the table and its answer was lost (a 503 from the way back); azure-core sent it
    again and met 409. The attempt finds its own claim and goes on, rather than wait on itself and leave the key
    answering "outcome unknown" for a call never sent."""
    with table_front(azurite.ports["Table"]) as front:
        guard = Idempotency(TableStore(front.storage().table(f"t{uuid.uuid4().hex}")), wait_seconds=1.0)
        front.lost_insert_answers = 1
        dials: list[str] = []

        def dial(mark_sent: Any) -> Reply:
            mark_sent()
            dials.append("call")
            return Reply(201, {"conversationId": "c-1"}, {})

        reply, replayed = guard.run("lost-insert-answer", "fp", dial, request_id="r-1")

    assert (reply.status, replayed) == (201, False)
    assert dials == ["call"]
    assert front.lost_insert_answers == 0  # the fault did happen


def a_key_past_its_retention(front: Any, key: str) -> tuple[Idempotency, Callable[[Any], Reply], list[str]]:
    """A guard on a table behind `front`, whose clock moves on as time.time does between two reads, after a call
    placed under `key` (request r-1) and a retention passed: the key is free. Also its dial and the dials made."""
    now, ticks = [1_000_000.0], itertools.count()
    store = TableStore(front.storage().table(f"t{uuid.uuid4().hex}"))
    guard = Idempotency(store, wait_seconds=1.0, clock=lambda: now[0] + next(ticks) / 1000)
    dials: list[str] = []

    def dial(mark_sent: Any) -> Reply:
        mark_sent()
        dials.append("call")
        return Reply(201, {"conversationId": f"c-{len(dials)}"}, {})

    guard.run(key, "fp", dial, request_id="r-1")
    now[0] += guard.retention_seconds + 1
    return guard, dial, dials


def test_a_takeover_whose_answer_was_lost_is_still_its_own(azurite: Azurite) -> None:
    """A key past its retention is free, and a new request takes its record over with a conditional replace. The
    replace reached the table and its answer was lost; azure-core sent it again and met 412. The request waited on
    its own claim (409), and its retries were answered "outcome unknown" for days, of a call never placed."""
    with table_front(azurite.ports["Table"]) as front:
        guard, dial, dials = a_key_past_its_retention(front, "taken-over")
        front.lost_update_answers = 1
        reply, replayed = guard.run("taken-over", "fp", dial, request_id="r-2")

        assert front.lost_update_answers == 0  # the fault did happen
    assert (reply.status, reply.body, replayed) == (201, {"conversationId": "c-2"}, False)
    assert dials == ["call", "call"]


def test_a_takeover_landed_unheard_and_unread_is_taken_back_later_so_the_retry_dials(azurite: Azurite) -> None:
    """As above, and the read that would have found the takeover failed too: the request answered 503 "nothing
    was dialed, retry", and its claim stayed "sending", answering that retry 409 and then "outcome unknown"."""
    with table_front(azurite.ports["Table"]) as front:
        guard, dial, dials = a_key_past_its_retention(front, "taken-over")
        writes = itertools.count()

        def the_takeover(body: bytes) -> bool:  # r-2's second write: its insert met r-1's record, then this
            if b'"Owner": "r-2"' not in body or next(writes) != 1:
                return False
            front.failing_reads = True  # its read-back finds storage gone
            return True

        def on_refusal() -> None:
            front.failing_reads = front.refused < 3  # storage is back after the read-back's three tries

        front.lost_answers_only_for, front.on_refusal, front.lost_update_answers = the_takeover, on_refusal, 1
        with pytest.raises(Problem) as failed:
            guard.run("taken-over", "fp", dial, request_id="r-2")
        assert guard.late_writes.idle.wait(10)
        retried, _ = guard.run("taken-over", "fp", dial, request_id="r-3")

        assert (front.lost_update_answers, front.refused) == (0, 3), "the takeover and its read-back did not fail"
    assert failed.value.code == "idempotency_store_unavailable"
    assert (retried.status, dials) == (201, ["call", "call"])


def test_a_claim_whose_insert_landed_unheard_is_taken_back_so_the_retry_dials(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """The claim's insert reached the table and every try's answer was lost: the request answers 503 "nothing was
    dialed, retry". The claim it left "sending" answered that retry "outcome unknown" (a key's claim lives 8 days)
    for a call never sent; the request now takes its own landed claim back before answering."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), IDEMPOTENCY_WAIT_SECONDS="1")
        front.lost_answers_only_for = lambda body: b'"State": "sending"' in body
        front.lost_insert_answers = 100  # every try of the claim lands, and is answered 503

        lost = stack.post("/api/calls", CALL, headers=keyed("claim-answer-lost"))
        front.lost_insert_answers = 0
        retried = stack.post("/api/calls", CALL, headers=keyed("claim-answer-lost"))

    assert lost.status_code == 503, lost.text
    assert lost.json()["code"] == "idempotency_store_unavailable"
    assert retried.status_code == 201, retried.text
    assert len(stack.creates()) == 1


def test_an_answer_storage_refused_is_recorded_later_so_the_retry_replays_it(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """The call was placed and storage refused to record its answer (every try): the caller got its 201, and the
    claim stayed "sending", so a retry with the same key waited, was answered 409, and past the stale limit
    "outcome unknown" for 8 days, though the instance knew the conversation id. The answer is written again in
    the background once storage is back, and the retry replays it."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), IDEMPOTENCY_WAIT_SECONDS="10")
        front.failing_write_when = lambda body: b'"State": "done"' in body

        placed = stack.post("/api/calls", CALL, headers=keyed("answer-refused"))
        front.failing_write_when = None  # storage is back
        retried = stack.post("/api/calls", CALL, headers=keyed("answer-refused"))

    assert front.refused > 0, "the answer was written"
    assert placed.status_code == 201, placed.text
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert retried.json()["conversationId"] == placed.json()["conversationId"]
    assert len(stack.creates()) == 1


def test_a_claim_whose_insert_answer_broke_off_is_taken_back_so_the_retry_dials(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """The claim's insert landed and its answer broke off mid-body: the Tables SDK, decoding the error of an answer
    it does not have, raised an AttributeError. The request answered 500, and the claim it left "sending" answered
    every retry "outcome unknown" (for 8 days, with a key) of a call never sent."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), IDEMPOTENCY_WAIT_SECONDS="1")
        front.lost_answers_only_for = lambda body: b'"State": "sending"' in body
        front.cut_insert_answers = 1

        cut = stack.post("/api/calls", CALL, headers=keyed("claim-answer-cut"))
        retried = stack.post("/api/calls", CALL, headers=keyed("claim-answer-cut"))

    assert front.cut_insert_answers == 0, "the fault did not happen"
    assert (cut.status_code, cut.json()["code"]) == (503, "idempotency_store_unavailable"), cut.text
    assert retried.status_code == 201, retried.text
    assert len(stack.creates()) == 1


def test_a_create_is_not_sent_when_counting_it_used_up_the_deadline(stack: Stack, configure, azurite: Azurite) -> None:
    """Counting the call against the cap is a storage write right before the create: written slowly, it ended past
    the request's deadline, and the create went out anyway, after the caller may have retried."""
    with table_front(azurite.ports["Table"]) as front:
        configure(
            AzureWebJobsStorage=through_front(azurite, front), CALL_DEADLINE_SECONDS="2", CALLS_PER_NUMBER_LIMIT="5"
        )
        assert stack.post("/api/calls", CALL).status_code == 201  # token, caller IDs, tables, the number's count
        front.update_delay = 2.5  # the next count updates that record

        late = stack.post("/api/calls", CALL, headers=keyed("slow-mark"))
        front.update_delay = 0.0
        retried = stack.post("/api/calls", CALL, headers=keyed("slow-mark"))

    assert (late.status_code, late.json()["code"]) == (503, "genesys_unavailable"), late.text
    assert "was not sent" in late.json()["detail"]
    assert retried.status_code == 201, retried.text
    assert len(stack.creates()) == 2  # the warm-up and the retry


@pytest.mark.parametrize("key", [None, "blip"], ids=["keyless", "keyed"])
def test_a_claim_storage_would_not_take_back_is_released_when_it_answers_again(
    stack: Stack, configure, azurite: Azurite, key: str | None
) -> None:
    """A storage blip failed the cap's count right before the send, and then the release of the claim: nothing was
    sent and the caller was told so, but the claim stayed "sending", and every retry was answered 409 and then
    "outcome unknown" (for 8 days with a key) for a call that was never placed."""
    with table_front(azurite.ports["Table"]) as front:
        configure(
            AzureWebJobsStorage=through_front(azurite, front),
            CALLS_PER_NUMBER_LIMIT="5",
            CALLER_ID_SOURCE="settings",
            ALLOWED_CALLER_IDS="+13175550100",
            IDEMPOTENCY_WAIT_SECONDS="1",
        )
        headers = keyed(key) if key else {}

        def storage_blip() -> None:  # from the token's fetch, after the claim, until the answer
            front.failing_writes = True

        stack.genesys.inject("token", Fault(status=None, before_answer=storage_blip))
        failed = stack.post("/api/calls", CALL, headers=headers)
        front.failing_writes = False

        assert (failed.status_code, failed.json()["code"]) == (503, "idempotency_store_unavailable"), failed.text
        # Retries meanwhile wait a second and answer 409; once the claim is taken back, one places the call.
        placed = wait_for(lambda: stack.post("/api/calls", CALL, headers=headers).status_code == 201, 15)
    assert placed, "the claim was never taken back"
    assert len(stack.creates()) == 1


@pytest.mark.parametrize("made_before", [False, True], ids=["its-creation", "its-entities"])
def test_a_table_being_deleted_is_an_outage_and_the_call_goes_through_once_it_can_be_made(
    stack: Stack, configure, azurite: Azurite, made_before: bool
) -> None:
    """For about 40 s after a delete the service answers 409 TableBeingDeleted to making the table again and to
    every operation on its entities: an outage (503), not a lost race. Raised as one, the creation's was an
    unexpected failure (500), and an entity's was read as another request's claim, or raised (500)."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front))
        if made_before:
            assert stack.post("/api/calls", {"to": "+12125550100"}).status_code == 201  # the tables are made
        front.being_deleted = True
        refused = stack.post("/api/calls", CALL, headers=keyed("being-deleted"))
        front.being_deleted = False
        placed = stack.post("/api/calls", CALL, headers=keyed("being-deleted"))

    assert (refused.status_code, refused.json()["code"]) == (503, "idempotency_store_unavailable"), refused.text
    assert placed.status_code == 201, placed.text
    assert len(stack.creates()) == 1 + made_before


def test_an_idempotency_table_deleted_under_a_running_app_is_an_outage_then_made_again(stack: Stack) -> None:
    """The claim's insert meets the missing table (the SDK raises it without the service's error code)."""
    assert stack.post("/api/calls", {"to": "+12125550100"}).status_code == 201
    settings = services().settings
    assert settings.storage is not None
    settings.storage.table(settings.idempotency_table).delete_table()

    refused = stack.post("/api/calls", CALL, headers=keyed("table-gone"))
    placed = stack.post("/api/calls", CALL, headers=keyed("table-gone"))

    assert (refused.status_code, refused.json()["code"]) == (503, "idempotency_store_unavailable"), refused.text
    assert placed.status_code == 201, placed.text
    assert len(stack.creates()) == 2
