"""Call-status callbacks end to end (issue 14): the emulated org moves each call through its states, the local
host's queue runner runs the `call-status` steps, and a loopback receiver checks every event with the official
`standardwebhooks` package, as a receiver would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from emulators.azurite import Azurite
from emulators.genesys import DEMO_QUEUE_ID, Fault
from shared.idempotency import Record
from shared.services import services
from shared.status_callbacks.bounded_post import ATTEMPT_SECONDS, is_receiver_address
from shared.status_callbacks.delivery import DELIVERED, PENDING, Poster, event_document
from shared.status_callbacks.subscriptions import GONE_FOR_SECONDS, MAX_SUBSCRIPTIONS
from shared.status_callbacks.watcher import FINISHED, MAX_REFUSED_READS, WatchSettings, record_key
from tests.conftest import Receiver, Stack, app_store, app_table, backdate, eventually
from tests.loopback_relay import serving
from tests.table_front import TableFront, table_front, through_front
from tests.test_async_mode import follow
from tests.test_webhooks import post_webhook, raw_signature

SECRET = "whsec_" + base64.b64encode(b"status-callback-test-key-32bytes").decode()
CALL = {"to": "+12125550199"}
UNREACHABLE = "+12125550100"  # the demo org's unreachable number: the call fails half a second in
FAST = {
    "WEBHOOK_SECRET": SECRET,
    "STATUS_CALLBACK_ALLOWED_HOSTS": "callbacks.example.com",
    "STATUS_POLL_SECONDS": "1",
    "STATUS_POLL_MAX_SECONDS": "1",
    "STATUS_CALLBACK_RETRY_SECONDS": "1",
}


def watch_record(conversation_id: str) -> Record | None:
    return app_store().read(record_key(conversation_id))


def settled(conversation_id: str) -> bool:
    record = watch_record(conversation_id)
    return record is not None and record.state == FINISHED


@pytest.fixture
def scripted(stack: Stack, monkeypatch: pytest.MonkeyPatch, configure: Callable[..., None]) -> Stack:
    """Calls ring at once, are answered after 1.5 s and hang up 1.5 s later; callbacks on, fast."""
    monkeypatch.setattr(stack.genesys.org, "answer_after_seconds", 1.5)
    monkeypatch.setattr(stack.genesys.org, "hang_up_after_seconds", 1.5)
    configure(**FAST)
    return stack


def test_each_requested_event_is_delivered_once_with_a_valid_signature(scripted: Stack, receiver: Receiver) -> None:
    events = ["ringing", "connected", "ended"]
    placed = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url, "statusCallbackEvents": events})
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    assert [event["type"] for event in receiver.events()] == [f"call.{name}" for name in events]
    verifier = Webhook(SECRET)
    for headers, body in receiver.received:
        event = verifier.verify(body, headers)  # raises unless the signature and timestamp verify
        assert headers["webhook-id"] == event["id"]
        assert event["conversationId"] == conversation_id
        assert event["requestId"] == placed.json()["requestId"]
        assert event["failure"] is None
        assert {"occurredAt", "sentAt", "status"} <= set(event)
    assert len({event["id"] for event in receiver.events()}) == 3
    # Ours, never Genesys's: the create carried no callback field.
    assert not {"statusCallbackUrl", "statusCallbackEvents"} & set(scripted.creates()[0].json)
    status = scripted.get(f"/api/calls/{conversation_id}").json()
    assert status["statusCallbacks"] == [{"event": name, "status": "delivered", "attempts": 1} for name in events]
    reads = len(scripted.genesys.requests("get_call"))
    assert reads <= WatchSettings(frozenset(), False, 1, 1, 7200).max_polls()
    print(f"benchmark: {reads - 1} Genesys conversation reads for a 3 s call polled every 1 s")


def _is_watch_record(body: bytes) -> bool:
    return b'"callbacks:' in body


def lose_the_answer(front: TableFront) -> Callable[[], bool]:
    """The insert lands and its answer is lost: the SDK's resend meets it (409)."""
    front.lost_answers_only_for = _is_watch_record
    front.lost_insert_answers = 1
    return lambda: front.lost_insert_answers == 0


def refuse_once(front: TableFront) -> Callable[[], bool]:
    """One dropped connection: the SDK does not resend an insert whose connection dropped."""
    front.failing_write_when = _is_watch_record
    front.on_refusal = lambda: setattr(front, "failing_write_when", None)  # storage is back after one
    return lambda: front.refused == 1


@pytest.mark.parametrize("fault", [lose_the_answer, refuse_once], ids=["answer-lost", "refused-once"])
def test_a_watch_whose_record_insert_met_a_fault_still_starts_at_once(
    scripted: Stack,
    receiver: Receiver,
    azurite: Azurite,
    configure: Callable[..., None],
    fault: Callable[[TableFront], Callable[[], bool]],
) -> None:
    """An answer lost was read as "watched already" and no first step was queued (the events waited 5 to 15
    minutes for the stalled-watch timer); a refused insert lost every event of the call (the caller had its 201,
    and with no record the timer had nothing to resume)."""
    events = ["ringing", "connected", "ended"]
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), **FAST)
        happened = fault(front)
        placed = scripted.post(
            "/api/calls", {**CALL, "statusCallbackUrl": receiver.url, "statusCallbackEvents": events}
        )
        assert placed.status_code == 201, placed.text
        assert happened(), "the fault did not meet the watch record's insert"

        eventually(lambda: settled(placed.json()["conversationId"]), "the watch to settle")
    assert [event["type"] for event in receiver.events()] == [f"call.{name}" for name in events]


def test_a_queued_call_whose_delivery_failed_after_placing_it_is_still_watched(
    scripted: Stack, receiver: Receiver, azurite: Azurite, configure: Callable[..., None]
) -> None:
    """Storage refused writes right after the call's answer was recorded: the watch's record and the job's answer
    were lost with that delivery. The next delivery found the job sent and answered from the call's record, which
    never starts a watch: the caller polled its 201, and every event it asked for was lost."""
    events = ["ringing", "connected", "ended"]
    with table_front(azurite.ports["Table"]) as front:
        configure(
            AzureWebJobsStorage=through_front(azurite, front),
            IDEMPOTENCY_STALE_SECONDS="1",
            IDEMPOTENCY_WAIT_SECONDS="1",
            ASYNC_RETRY_AFTER_SECONDS="1",
            **FAST,
        )

        job_answers_refused = []

        def refused(body: bytes) -> bool:
            if _is_watch_record(body):
                return True
            if b'"Key": "async:' in body and b'"State": "done"' in body:  # the job's answer, each of its 3 tries
                job_answers_refused.append(body)
                if len(job_answers_refused) == 3:
                    front.failing_write_when = None  # storage is back
                return True
            return False

        front.failing_write_when = refused
        accepted = scripted.post(
            "/api/calls",
            {**CALL, "statusCallbackUrl": receiver.url, "statusCallbackEvents": events},
            headers={"Prefer": "respond-async"},
        )
        final, _ = follow(scripted, accepted)

        assert front.failing_write_when is None and front.refused >= 2, "the fault did not meet both writes"
        assert final.status_code == 201, final.text
        eventually(lambda: settled(final.json()["conversationId"]), "the watch to settle")
    assert [event["type"] for event in receiver.events()] == [f"call.{name}" for name in events]
    assert len(scripted.creates()) == 1


def test_a_failed_call_sends_the_catalog_failure_by_default(scripted: Stack, receiver: Receiver) -> None:
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    (event,) = receiver.events()  # default events: ended and failed; a failed call never ended normally
    assert event["type"] == "call.failed"
    assert event["failure"]["code"] == "destination_unreachable"
    assert event["failure"]["hint"]


def test_an_event_is_redelivered_with_the_same_id_after_a_500(scripted: Stack, receiver: Receiver) -> None:
    receiver.answers = [500]
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    first, second = receiver.received
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    Webhook(SECRET).verify(second[1], second[0])
    status = scripted.get(f"/api/calls/{conversation_id}").json()
    assert status["statusCallbacks"] == [{"event": "failed", "status": "delivered", "attempts": 2}]


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 102 Processing\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"],
    ids=["102", "103"],
)
def test_an_interim_answer_is_no_refusal(scripted: Stack, receiver: Receiver, interim: bytes) -> None:
    """Python's http.client passes over only 100 Continue: a 102 or 103 before the receiver's 200 was read as its
    answer, and the event was marked undeliverable after one attempt. The 200 is the answer."""
    receiver.answers = [interim + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"]
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    status = scripted.get(f"/api/calls/{conversation_id}").json()
    assert status["statusCallbacks"] == [{"event": "failed", "status": "delivered", "attempts": 1}]
    assert len(receiver.received) == 1


@contextmanager
def trickling_receiver() -> Iterator[int]:
    """A receiver that answers a header line a second and never ends its answer; yields its port."""
    stop = threading.Event()

    class Trickling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(1):  # a header line a second: no read ever waits 5 s
                try:
                    self.wfile.write(b"X-Still: here\r\n")
                except OSError:
                    return  # the attempt was cut

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickling)
    server.daemon_threads = True
    try:
        with serving(server):
            yield server.server_address[1]
    finally:
        stop.set()


def bounded_attempt(url: str) -> tuple[str, float]:
    """One delivery attempt on a thread of its own, waited for twice its limit: its outcome's state, and how long
    it took."""
    poster = Poster(lambda: SECRET, loopback_allowed=True)
    event = event_document("c" * 36, "r" * 36, "ended", "2026-11-30T00:00:00Z", None)
    outcomes: list[Any] = []
    started = time.monotonic()
    attempt = threading.Thread(target=lambda: outcomes.append(poster.post(url, event)), daemon=True)
    attempt.start()
    attempt.join(2 * ATTEMPT_SECONDS)
    took = time.monotonic() - started
    assert outcomes, f"the attempt still ran after {took:.0f} s"
    return outcomes[0].state, took


def test_an_attempt_at_a_receiver_that_trickles_its_answer_ends_at_its_bound() -> None:
    """Timeouts bound each read, not their sum: a receiver sending a header line every second held the attempt,
    and the worker's thread, as long as it liked; past 5 minutes the timer took the step for lost and ran it
    again, posting the event again."""
    with trickling_receiver() as port:
        state, took = bounded_attempt(f"http://127.0.0.1:{port}/hook")

    assert state == PENDING  # tried again later
    assert ATTEMPT_SECONDS <= took < ATTEMPT_SECONDS + 5, took


def test_an_attempt_whose_name_lookup_outlasts_its_bound_is_cut_as_it_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut came while there was no socket yet, and nothing bounded the attempt after it: a receiver whose name
    took long to look up, and that then trickled its answer, held it as long as it liked."""
    look_up = socket.getaddrinfo

    def slow_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-lookup.test":  # the resolver's own slowness: nothing on loopback answers a lookup late
            time.sleep(ATTEMPT_SECONDS + 0.5)
            host = "127.0.0.1"
        return look_up(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    with trickling_receiver() as port:
        state, took = bounded_attempt(f"http://slow-lookup.test:{port}/hook")

    assert state == PENDING
    assert ATTEMPT_SECONDS <= took < ATTEMPT_SECONDS + 5, took


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_where_loopback_is_not_allowed_no_attempt_reaches_the_instance_whatever_the_name(
    receiver: Receiver, host: str
) -> None:
    """Only the URL's host name was checked: in Azure, an allowed receiver whose DNS answered 127.0.0.1 (or the
    platform's 169.254.169.254) was connected to, and sent a TLS handshake naming it. `localhost` is such a name."""
    url = receiver.url.replace("127.0.0.1", host)
    event = event_document("c" * 36, "r" * 36, "ended", "2026-11-30T00:00:00Z", None)

    refused = Poster(lambda: SECRET, loopback_allowed=False).post(url, event)
    allowed = Poster(lambda: SECRET, loopback_allowed=True).post(url, event)

    assert (refused.state, refused.detail) == (PENDING, "AddressNotAllowed")
    assert allowed.state == DELIVERED
    assert len(receiver.received) == 1  # the allowed attempt's only


@pytest.mark.parametrize(
    ("address", "in_azure", "local"),
    [
        ("169.254.169.254", False, False),  # the instance metadata service
        ("169.254.255.2", False, False),  # the Functions identity endpoint
        ("168.63.129.16", False, False),  # Azure's host node
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # IPv4 written as IPv6
        ("0.0.0.0", False, True),  # noqa: S104 - an address judged; nothing binds to it
        ("0.1.2.3", False, True),
        ("fe80::1%eth0", False, False),
        ("224.0.0.1", False, False),
        ("240.0.0.1", False, False),
        ("10.1.2.3", True, True),  # a receiver in the app's virtual network
        ("20.42.1.9", True, True),
        ("2603:1030::1", True, True),
    ],
)
def test_a_receiver_may_be_at_an_address_of_no_instance_or_platform(address: str, in_azure: bool, local: bool) -> None:
    assert is_receiver_address(address, loopback_allowed=False) is in_azure
    assert is_receiver_address(address, loopback_allowed=True) is local


def test_a_receiver_that_keeps_failing_is_recorded_undeliverable(scripted: Stack, receiver: Receiver) -> None:
    receiver.answers = [503] * 10
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle", timeout=60)
    assert len(receiver.received) == 5  # 1 + 2 + 4 + 8 s of backoff between them
    status = scripted.get(f"/api/calls/{conversation_id}").json()
    assert status["statusCallbacks"] == [{"event": "failed", "status": "undeliverable", "attempts": 5}]


@pytest.mark.parametrize(
    "redirect",
    [
        # requests read a redirect it did not follow: a malformed Location raised a plain ValueError, which ended
        # the step; the queue ran it again, posting the event again each time, until the watch was given up
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1/x\r\nContent-Length: 0\r\n\r\n",
        # and it downloaded the redirect's body: one that never ends held the step until the read timed out,
        # then was retried as a failure to connect
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://elsewhere.example/\r\nContent-Length: 1000\r\n\r\n.",
    ],
    ids=["malformed-location", "endless-body"],
)
def test_a_redirect_is_an_answer_that_is_never_followed_or_read(
    scripted: Stack, receiver: Receiver, redirect: bytes
) -> None:
    receiver.answers = [redirect]
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    assert len(receiver.received) == 1
    status = scripted.get(f"/api/calls/{conversation_id}").json()
    assert status["statusCallbacks"] == [{"event": "failed", "status": "undeliverable", "attempts": 1}]


def test_a_callback_url_never_reaches_the_logs_even_when_its_answer_is_malformed(
    scripted: Stack, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 logged a warning quoting the whole URL, its token with it, for an answer with a malformed header."""
    token = "token-in-the-callback-url"
    receiver.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n: no name\r\n\r\n"]
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": f"{receiver.url}?t={token}"})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    assert len(receiver.received) == 1
    assert "Event failed of" in caplog.text  # the delivery was logged
    assert token not in caplog.text


def test_a_secret_without_whsec_signs_with_its_utf8_bytes(
    scripted: Stack, receiver: Receiver, configure: Callable[..., None]
) -> None:
    configure(**{**FAST, "WEBHOOK_SECRET": "plain-shared-secret"})
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})

    eventually(lambda: settled(placed.json()["conversationId"]), "the watch to settle")
    headers, body = receiver.received[0]
    Webhook(b"plain-shared-secret").verify(body, headers)
    Webhook("whsec_" + base64.b64encode(b"plain-shared-secret").decode()).verify(body, headers)


def test_callbacks_signed_with_their_own_secret_sign_no_webhook_to_us(
    scripted: Stack, receiver: Receiver, configure: Callable[..., None]
) -> None:
    """With STATUS_CALLBACK_SECRET, a callback receiver holds a key that verifies our events and nothing else:
    a webhook it signs with that key is refused, not placed."""
    callback_secret = "whsec_" + base64.b64encode(b"callbacks-only-signing-key-32byt").decode()
    configure(**FAST, STATUS_CALLBACK_SECRET=callback_secret)
    placed = scripted.post("/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": receiver.url})
    eventually(lambda: settled(placed.json()["conversationId"]), "the watch to settle")
    headers, body = receiver.received[0]

    Webhook(callback_secret).verify(body, headers)  # raises unless signed with the callbacks' own secret
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)
    forged = json.dumps(CALL).encode()
    stamp = datetime.now(timezone.utc)
    signature = Webhook(callback_secret).sign("msg_forged", stamp, forged.decode())
    refused = scripted.session.post(
        scripted.host.base_url + "/api/webhooks/calls",
        data=forged,
        headers={
            "Content-Type": "application/json",
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature,
        },
        timeout=30,
    )
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_signature")
    assert len(scripted.creates()) == 1  # only the call placed above


NOT_ALLOWED, INVALID = (422, "callback_url_not_allowed"), (400, "validation_failed")


@pytest.mark.parametrize(
    ("callback", "answer", "field_name"),
    [
        ({"statusCallbackUrl": "https://attacker.example.net/hook"}, NOT_ALLOWED, "statusCallbackUrl"),
        ({"statusCallbackUrl": "http://callbacks.example.com/hook"}, NOT_ALLOWED, "statusCallbackUrl"),  # not loopback
        ({"statusCallbackUrl": "https://user:pw@callbacks.example.com/hook"}, NOT_ALLOWED, "statusCallbackUrl"),
        ({"statusCallbackUrl": "https://callbacks.example.com.attacker.net/"}, NOT_ALLOWED, "statusCallbackUrl"),
        ({"statusCallbackUrl": "ftp://callbacks.example.com/"}, INVALID, "statusCallbackUrl"),
        ({"statusCallbackUrl": 42}, INVALID, "statusCallbackUrl"),
        (
            {"statusCallbackUrl": "https://callbacks.example.com/", "statusCallbackEvents": ["answered"]},
            INVALID,
            "statusCallbackEvents",
        ),
        (
            {"statusCallbackUrl": "https://callbacks.example.com/", "statusCallbackEvents": []},
            INVALID,
            "statusCallbackEvents",
        ),
        ({"statusCallbackEvents": ["ended"]}, INVALID, "statusCallbackEvents"),
        (
            {"mode": "callback", "queueId": DEMO_QUEUE_ID, "statusCallbackUrl": "https://callbacks.example.com/"},
            INVALID,
            "statusCallbackUrl",
        ),
    ],
)
def test_a_disallowed_callback_is_refused_before_dialing(
    scripted: Stack, callback: dict[str, Any], answer: tuple[int, str], field_name: str
) -> None:
    for path in ("/api/calls", "/api/calls/validate"):
        response = scripted.post(path, {**CALL, **callback})

        assert response.status_code == answer[0], response.text
        assert (response.json()["code"], response.json()["field"]) == (answer[1], field_name)
    assert scripted.creates() == []
    assert scripted.genesys.requests("callback") == []


def test_without_an_allow_list_every_callback_is_refused(stack: Stack, configure: Callable[..., None]) -> None:
    configure(WEBHOOK_SECRET=SECRET)
    response = stack.post("/api/calls/validate", {**CALL, "statusCallbackUrl": "https://callbacks.example.com/h"})

    assert response.status_code == 422
    assert "STATUS_CALLBACK_ALLOWED_HOSTS" in response.json()["detail"]


def test_a_callback_with_no_secret_to_sign_it_is_refused_before_dialing(
    stack: Stack, configure: Callable[..., None], receiver: Receiver
) -> None:
    """The call was placed and each of its events failed to sign, five times, then was given up: nobody was told."""
    configure(**{**FAST, "WEBHOOK_SECRET": None})  # and no webhook-secret in the vault

    response = stack.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url})

    assert response.status_code == 500, response.text
    assert response.json()["code"] == "secret_not_found"
    assert "WEBHOOK_SECRET" in response.json()["hint"]
    assert stack.creates() == []


def test_a_placed_call_asking_for_callbacks_replays_though_nothing_can_sign_them_now(
    stack: Stack, configure: Callable[..., None], receiver: Receiver
) -> None:
    """A retry of a placed call is answered as it was, as when the policy would refuse it now: checking the
    secret first answered the retry 500 and it never learned its conversation id."""
    configure(**FAST)
    request, key = {**CALL, "statusCallbackUrl": receiver.url}, {"Idempotency-Key": "callback-secret-gone"}
    placed = stack.post("/api/calls", request, headers=key)
    configure(**{**FAST, "WEBHOOK_SECRET": None})

    retried = stack.post("/api/calls", request, headers=key)
    async_retry = stack.post("/api/calls", request, headers={**key, "Prefer": "respond-async"})

    assert placed.status_code == 201, placed.text
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (201, "true"), retried.text
    assert async_retry.status_code == 202, async_retry.text  # its job replays the same answer
    assert len(stack.creates()) == 1


def test_a_redelivery_days_later_replays_the_call_and_posts_none_of_its_events_again(
    scripted: Stack, receiver: Receiver
) -> None:
    """A signed delivery's answer is kept 8 days, its call's watch record only the watch's length and a retention
    (then purged): a sender's redelivery after that (GitHub's Redeliver on day 3) replayed the 201 and started a
    new watch, which posted the call's events again to its callback and to every flow subscribed."""
    body = json.dumps({**CALL, "statusCallbackUrl": receiver.url}).encode()
    placed = post_webhook(scripted, body, raw_signature(body, SECRET))
    assert placed.status_code == 201, placed.text
    conversation_id = placed.json()["conversationId"]
    eventually(lambda: settled(conversation_id), "the watch to settle")
    posted = len(receiver.received)

    two_days = 51 * 3600.0  # past the watch record's expiry (2 h and the 24 h retention) and the purge's retention
    backdate(record_key(conversation_id), two_days)
    backdate("key:sig:" + hashlib.sha256(body).hexdigest(), two_days)
    services().idempotency.purge()
    assert watch_record(conversation_id) is None
    redelivered = post_webhook(scripted, body, raw_signature(body, SECRET))

    assert (redelivered.status_code, redelivered.headers.get("Idempotent-Replayed")) == (201, "true"), redelivered.text
    assert redelivered.json()["conversationId"] == conversation_id
    assert watch_record(conversation_id) is None, "the replay started a watch of a call placed two days ago"
    assert len(receiver.received) == posted and len(scripted.creates()) == 1


def test_an_allowed_https_callback_validates(scripted: Stack) -> None:
    response = scripted.post("/api/calls/validate", {**CALL, "statusCallbackUrl": "https://CALLBACKS.example.com/x"})

    assert response.status_code == 200, response.text


def test_a_different_callback_is_a_different_request(scripted: Stack, receiver: Receiver) -> None:
    key = {"Idempotency-Key": "callback-fingerprint"}
    first = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url}, headers=key)
    other = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url + "?other"}, headers=key)

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_a_429_on_the_status_read_waits_its_retry_after(scripted: Stack, receiver: Receiver) -> None:
    limited_at: list[float] = []
    scripted.genesys.inject(
        "get_call", Fault(status=429, retry_after=5, before_answer=lambda: limited_at.append(time.monotonic()))
    )
    placed = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: limited_at, "the rate-limited read")
    reads = len(scripted.genesys.requests("get_call"))
    eventually(lambda: len(scripted.genesys.requests("get_call")) > reads, "the next read")
    assert time.monotonic() - limited_at[0] >= 4.5  # Retry-After: 5, not the 1 s poll interval
    eventually(lambda: settled(conversation_id), "the watch to settle")
    assert [event["type"] for event in receiver.events()] == ["call.ended"]


@pytest.mark.parametrize(("status", "code"), [(403, "missing.permissions"), (404, "not.found")])
def test_a_watch_whose_reads_genesys_keeps_refusing_stops_and_says_so(
    scripted: Stack, receiver: Receiver, caplog: pytest.LogCaptureFixture, status: int, code: str
) -> None:
    """A role without the read permission (or a conversation Genesys does not show this org) was polled for the
    watch's 2 hours, 123 refused reads of the rate limit the calls share, and the watch ended with no word."""
    scripted.genesys.inject("get_call", *[Fault(status=status, code=code)] * (MAX_REFUSED_READS + 3))
    placed = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to stop")

    assert len(scripted.genesys.requests("get_call")) == MAX_REFUSED_READS
    assert f"Stopped watching conversation {conversation_id}: Genesys refused {MAX_REFUSED_READS} reads" in caplog.text
    assert receiver.received == []


def test_a_retry_after_beyond_the_queues_limit_waits_as_long_as_a_queue_message_can(
    scripted: Stack, receiver: Receiver
) -> None:
    """A storage queue refuses a message hidden for more than 7 days: a Retry-After of a year must not stop the
    watch's chain (its next step would never be queued)."""
    scripted.genesys.inject("get_call", Fault(status=429, retry_after=365 * 24 * 3600))
    placed = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url})
    conversation_id = placed.json()["conversationId"]

    def next_step_due() -> float | None:
        record = watch_record(conversation_id)
        return record.due_at if record is not None and record.due_at and record.data["polls"] else None

    eventually(lambda: next_step_due(), "the step after the rate-limited read to be queued")
    wait_days = ((next_step_due() or 0) - time.time()) / 86400
    assert 5.9 < wait_days <= 6, wait_days  # MAX_QUEUE_DELAY_SECONDS: under the message's 7-day time to live


def test_a_failed_call_reaches_every_subscription_and_its_callback_once(scripted: Stack, receiver: Receiver) -> None:
    """With every subscription slot taken, a long request id and a long callback URL, the watch's record still
    fits Table Storage's 32K-character property: it once held a copy of the event per delivery, so its write
    failed with 400 and every retried step posted to every target again."""
    for flow in range(MAX_SUBSCRIPTIONS):
        subscribed = scripted.post("/api/subscriptions", {"notificationUrl": f"{receiver.url}?flow={flow}"})
        assert subscribed.status_code == 201, subscribed.text
    one_too_many = scripted.post("/api/subscriptions", {"notificationUrl": f"{receiver.url}?flow=more"})
    # not the URL's fault, as validation_failed naming notificationUrl told the flow's author
    assert (one_too_many.status_code, one_too_many.json()["code"]) == (409, "too_many_subscriptions")
    assert "field" not in one_too_many.json()
    callback = f"{receiver.url}?state={'x' * 1500}"

    placed = scripted.post(
        "/api/calls", {"to": UNREACHABLE, "statusCallbackUrl": callback}, headers={"X-Request-Id": "r" * 64}
    )
    conversation_id = placed.json()["conversationId"]

    eventually(lambda: settled(conversation_id), "the watch to settle")
    events = receiver.events()
    assert len(events) == MAX_SUBSCRIPTIONS + 1  # once each: the callback and every subscription
    assert {(event["type"], event["requestId"]) for event in events} == {("call.failed", "r" * 64)}


def test_concurrent_subscriptions_never_pass_the_cap(scripted: Stack, receiver: Receiver) -> None:
    """Each request counted before inserting, so requests at once all passed the count: past some 230 rows every
    watch record would outgrow its one Table property, and every step fail and post its events again."""
    for flow in range(MAX_SUBSCRIPTIONS - 5):
        assert scripted.post("/api/subscriptions", {"notificationUrl": f"{receiver.url}?flow={flow}"}).ok
    urls = [f"{receiver.url}?flow=late-{n}" for n in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda url: scripted.post("/api/subscriptions", {"notificationUrl": url}), urls))

    created = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(services().subscriptions.all()) == MAX_SUBSCRIPTIONS - 5 + len(created) <= MAX_SUBSCRIPTIONS
    assert {(a.status_code, a.json()["code"]) for a in refused} == {(409, "too_many_subscriptions")}


@pytest.mark.parametrize(
    "platform",
    [{"WEBSITE_SKU": "FlexConsumption"}, {"WEBSITE_INSTANCE_ID": "a1b2c3"}, {"CONTAINER_NAME": "c1"}],
    ids=["flex-consumption", "app-service", "linux-consumption"],
)
def test_where_azure_runs_the_app_no_callback_goes_to_its_loopback(
    scripted: Stack, receiver: Receiver, configure: Callable[..., None], platform: dict[str, str]
) -> None:
    """GENESYS_ALLOW_INSECURE_HTTP, an emulator setting, let callbacks go to any plain-HTTP loopback port: left on in
    Azure, a signed POST of the caller's choosing to a service of the instance itself. Linux Consumption, told only
    by CONTAINER_NAME, still let them go (a review sent one)."""
    configure(**FAST, **platform)

    refused = scripted.post("/api/calls", {**CALL, "statusCallbackUrl": receiver.url})

    assert (refused.status_code, refused.json()["code"]) == (422, "callback_url_not_allowed"), refused.text
    assert scripted.creates() == []


def test_the_number_of_reads_per_call_is_bounded() -> None:
    defaults = WatchSettings(frozenset(), False)

    assert [defaults.poll_interval(n) for n in range(6)] == [5, 10, 20, 40, 60, 60]
    assert defaults.max_polls() == 123  # at 5, 15, 35, 75 s, every 60 s to 2 h, and one that finds it too old


def test_the_trigger_subscribes_and_unsubscribes(scripted: Stack, receiver: Receiver) -> None:
    subscribed = scripted.post("/api/subscriptions", {"notificationUrl": receiver.url})
    assert subscribed.status_code == 201, subscribed.text
    location = subscribed.headers["Location"]
    assert location == f"{scripted.host.base_url}/api/subscriptions/{subscribed.json()['id']}"

    placed = scripted.post("/api/calls", CALL)  # no statusCallbackUrl: the flow gets every ended call
    eventually(lambda: receiver.received, "the flow's notification")
    headers, body = receiver.received[0]
    assert json.loads(body)["type"] == "call.ended"
    assert json.loads(body)["conversationId"] == placed.json()["conversationId"]
    assert "webhook-signature" not in headers  # Power Automate's callback URL is itself signed

    deleted = scripted.session.delete(location, timeout=30)
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert scripted.session.delete(location, timeout=30).json()["deleted"] is False
    again = scripted.post("/api/calls", {"to": "+12125550198"})
    assert not settled(again.json()["conversationId"])
    assert watch_record(again.json()["conversationId"]) is None  # nobody listens: not even watched


def test_a_url_subscribed_twice_gets_each_ended_call_once(scripted: Stack, receiver: Receiver) -> None:
    """A flow turned off and on again whose DELETE was lost has its URL subscribed twice: it ran twice per call,
    for good (both rows answer 2xx, so neither is ever cleaned up)."""
    first = scripted.post("/api/subscriptions", {"notificationUrl": receiver.url})
    second = scripted.post("/api/subscriptions", {"notificationUrl": receiver.url})
    assert first.json()["id"] != second.json()["id"]

    placed = scripted.post("/api/calls", CALL)
    conversation_id = placed.json()["conversationId"]
    eventually(lambda: settled(conversation_id), "the watch to settle")
    assert [event["type"] for event in receiver.events()] == ["call.ended"]

    scripted.session.delete(second.headers["Location"], timeout=30)  # the flow's own row goes: the other stays
    again = scripted.post("/api/calls", {"to": "+12125550198"})
    eventually(lambda: settled(again.json()["conversationId"]), "the second watch to settle")
    assert [event["conversationId"] for event in receiver.events()] == [conversation_id, again.json()["conversationId"]]


def test_a_subscription_whose_url_answers_gone_for_a_day_is_removed(scripted: Stack, receiver: Receiver) -> None:
    """A deleted flow's URL answers 404 (Power Automate's DELETE never came: a rotated key refused it, storage was
    down): its subscription was kept forever, posted every ended call, and held one of the 50 places. One "gone"
    may be a receiver mid-deploy: it is removed only when its URL still answers so a day later."""
    subscribed = scripted.post("/api/subscriptions", {"notificationUrl": receiver.url})
    assert subscribed.status_code == 201, subscribed.text
    row = ("subscription", subscribed.json()["id"])
    table = app_table(os.environ["IDEMPOTENCY_TABLE"])

    def ended_call_answered(status: int) -> None:
        receiver.answers.append(status)
        placed = scripted.post("/api/calls", {"to": f"+1212555{len(receiver.received):04d}"})
        eventually(lambda: settled(placed.json()["conversationId"]), "the watch to settle")

    ended_call_answered(404)
    first_gone = table.get_entity(*row)["GoneSince"]
    ended_call_answered(200)  # a receiver back from its deploy
    assert "GoneSince" not in table.get_entity(*row)
    ended_call_answered(410)
    entity = table.get_entity(*row)
    assert entity["GoneSince"] >= first_gone
    entity["GoneSince"] -= GONE_FOR_SECONDS  # as if that answer came a day ago
    table.update_entity(entity)
    ended_call_answered(404)
    again = scripted.post("/api/calls", {"to": "+12125550198"})

    assert len(receiver.received) == 4
    assert scripted.session.delete(subscribed.headers["Location"], timeout=30).json()["deleted"] is False
    assert watch_record(again.json()["conversationId"]) is None  # nobody listens any more: not even watched


POWER_AUTOMATE_URLS = [
    "https://prod-27.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke",
    # where flows' trigger URLs move: <environment>.NN.environment.api.powerplatform.com
    "https://0123abcd.09.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc"
    "/triggers/manual/paths/invoke?api-version=1",
]


@pytest.mark.parametrize("flow_url", POWER_AUTOMATE_URLS, ids=["logic.azure.com", "environment.api.powerplatform.com"])
def test_a_subscription_goes_only_to_power_automate_or_an_allowed_host(scripted: Stack, flow_url: str) -> None:
    refused = scripted.post("/api/subscriptions", {"notificationUrl": "https://attacker.example.net/x"})
    accepted = scripted.post("/api/subscriptions", {"notificationUrl": flow_url})

    assert (refused.status_code, refused.json()["field"]) == (422, "notificationUrl")
    assert refused.json()["code"] == "callback_url_not_allowed"
    assert accepted.status_code == 201, accepted.text
    assert "url" not in accepted.json()  # a SAS URL is a credential: never echoed
    scripted.session.delete(accepted.headers["Location"], timeout=30)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://169.254.169.254\\.prod-1.westus.logic.azure.com/", 400),  # urllib3 would connect to the IP
        ("https://10.0.0.5%5C.logic.azure.com/", 400),
        ("https://prod-1.westus.logic.azure.com/\x00", 400),
        ("https://prod-1.westus.logic.azure.com /x", 400),
        ("https://prod-1.westus.logic.azure.com:22/x", 422),
        ("https://user:pass@prod-1.westus.logic.azure.com/x", 422),
        ("https://prod-1.westus.logic.azure.com.attacker.example/x", 422),
    ],
    ids=["backslash", "escaped-backslash", "nul", "space", "other-port", "user-info", "suffix-trick"],
)
def test_a_url_that_parsers_could_read_two_ways_is_refused(scripted: Stack, url: str, status: int) -> None:
    response = scripted.post("/api/subscriptions", {"notificationUrl": url})

    assert response.status_code == status, response.text
    assert response.json()["field"] == "notificationUrl"
