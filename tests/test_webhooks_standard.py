"""Standard Webhooks (the official `standardwebhooks` package as the sender) and GitHub's X-Hub-Signature-256
on /api/webhooks/calls: each delivery identity dials once, every forgery is 401 and dials nothing."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from shared.idempotency import keyed_store_key
from shared.webhooks.signed import delivery_key
from shared.webhooks.standard_webhooks import TOLERANCE_SECONDS
from tests.conftest import Stack, backdate
from tests.test_webhooks import CALL, post_webhook, raw_signature, stamped_signature

KEY = base64.b64encode(os.urandom(32)).decode()
SECRET = f"whsec_{KEY}"
PREVIOUS = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BODY = json.dumps(CALL).encode()
# Timestamps are whole seconds: a signature 301 s ahead, cut to the second and sent a moment later, can be 300 s
# ahead when it arrives, and accepted.
PAST_TOLERANCE = timedelta(seconds=TOLERANCE_SECONDS + 5)


def standard(body: bytes, secret: str = SECRET, msg_id: str | None = None, at: datetime | None = None) -> dict:
    """Headers as the official package signs them."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(timezone.utc)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def github(body: bytes, secret: str = SECRET) -> dict:
    return {"X-Hub-Signature-256": raw_signature(body, secret)["X-Signature-256"], "X-GitHub-Event": "calls"}


@pytest.fixture
def whsec(stack: Stack, configure) -> Stack:
    configure(WEBHOOK_SECRET=SECRET, WEBHOOK_SECRET_PREVIOUS=PREVIOUS)
    return stack


def refused(response, field: str) -> dict:
    assert response.status_code == 401, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid_signature", field)
    return problem


def test_a_standard_webhook_places_the_call_once_per_webhook_id(whsec: Stack) -> None:
    headers = standard(BODY)
    assert Webhook(SECRET).verify(BODY, headers) == CALL  # the package accepts what we are about to send

    first = post_webhook(whsec, BODY, headers)
    again = post_webhook(whsec, BODY, headers)
    # the sender's retry: same webhook-id, new timestamp, new signature
    retry = post_webhook(whsec, BODY, standard(BODY, msg_id=headers["webhook-id"], at=datetime.now(timezone.utc)))

    assert [r.status_code for r in (first, again, retry)] == [201, 201, 201], first.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == retry.headers["Idempotent-Replayed"] == "true"
    assert len(whsec.creates()) == 1
    assert whsec.creates()[0].json["phoneNumber"] == "+12125550199"


def test_a_delivery_resent_with_its_webhook_id_days_later_dials_nothing(whsec: Stack) -> None:
    """Svix's Resend (and automatic retries, which run about 27 hours) send the same message id signed anew. Its
    answer was kept for the 24 h retention, so a resend on the second day placed the call again."""
    headers = standard(BODY)

    first = post_webhook(whsec, BODY, headers)
    backdate(keyed_store_key(delivery_key("swh", headers["webhook-id"])), 7 * 24 * 3600)  # a week passes
    resent = post_webhook(whsec, BODY, standard(BODY, msg_id=headers["webhook-id"]))

    assert (first.status_code, resent.status_code) == (201, 201), resent.text
    assert resent.headers["Idempotent-Replayed"] == "true"
    assert len(whsec.creates()) == 1


def svix(headers: dict) -> dict:
    """The same delivery as Svix sends it by default (`svix-` headers; `webhook-` only when renamed)."""
    return {name.replace("webhook-", "svix-"): value for name, value in headers.items()}


def test_svix_headers_are_standard_webhooks_under_svix_names(whsec: Stack) -> None:
    headers = standard(BODY)

    first = post_webhook(whsec, BODY, svix(headers))
    renamed = post_webhook(whsec, BODY, headers)  # the same message id: the same delivery
    both = post_webhook(whsec, BODY, {**headers, **svix(headers)})  # a relay that copied one set to the other

    assert [r.status_code for r in (first, renamed, both)] == [201, 201, 201], first.text
    assert renamed.headers["Idempotent-Replayed"] == both.headers["Idempotent-Replayed"] == "true"
    assert len(whsec.creates()) == 1


def test_svix_headers_that_disagree_with_webhook_headers_are_refused(whsec: Stack) -> None:
    other = standard(BODY)  # validly signed too, under another message id

    refused(post_webhook(whsec, BODY, {**standard(BODY), **svix(other)}), "webhook-id")
    refused(post_webhook(whsec, BODY, {**svix(standard(BODY)), **github(BODY)}), "webhook-signature")  # two schemes
    missing = svix(standard(BODY))
    del missing["svix-timestamp"]
    refused(post_webhook(whsec, BODY, missing), "svix-timestamp")
    assert whsec.creates() == []


def test_a_new_webhook_id_is_a_new_delivery(whsec: Stack) -> None:
    answers = [post_webhook(whsec, BODY, standard(BODY)) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201]
    assert len(whsec.creates()) == 2


def test_previous_secret_and_several_signatures_during_a_rotation(whsec: Stack) -> None:
    old = standard(BODY, PREVIOUS)
    both = standard(BODY, "whsec_" + base64.b64encode(os.urandom(32)).decode())
    both["webhook-signature"] += " " + Webhook(SECRET).sign(
        both["webhook-id"], datetime.fromtimestamp(int(both["webhook-timestamp"]), timezone.utc), BODY.decode()
    )

    assert post_webhook(whsec, BODY, old).status_code == 201
    assert post_webhook(whsec, BODY, both).status_code == 201
    assert len(whsec.creates()) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda h: {**h, **standard(BODY, "whsec_" + base64.b64encode(b"k" * 32).decode())}, "webhook-signature"),
        (lambda h: standard(BODY, at=datetime.now(timezone.utc) - PAST_TOLERANCE), "webhook-timestamp"),
        (lambda h: standard(BODY, at=datetime.now(timezone.utc) + PAST_TOLERANCE), "webhook-timestamp"),
        (lambda h: {**h, "webhook-id": "msg_swapped"}, "webhook-signature"),
        (lambda h: {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}, "webhook-signature"),
        (lambda h: {**h, "webhook-signature": "v1a," + h["webhook-signature"][3:]}, "webhook-signature"),
        (lambda h: {k: v for k, v in h.items() if k != "webhook-id"}, "webhook-id"),
    ],
    ids=["wrong-key", "stale", "future", "swapped-id", "altered-timestamp", "not-v1", "no-id"],
)
def test_forged_standard_webhooks_are_401_and_dial_nothing(whsec: Stack, change, field: str) -> None:
    refused(post_webhook(whsec, BODY, change(standard(BODY))), field)
    assert whsec.genesys.requests() == []


def test_a_tampered_body_is_refused(whsec: Stack) -> None:
    headers = standard(BODY)

    refused(post_webhook(whsec, BODY.replace(b"0199", b"0198"), headers), "webhook-signature")
    assert whsec.creates() == []


def test_a_secret_without_whsec_is_no_standard_webhooks_key(whsec: Stack, configure) -> None:
    plain = "plain-shared-secret"
    configure(WEBHOOK_SECRET=plain)
    # what a sender that fed the plain secret's bytes to the scheme would send
    as_bytes = Webhook(plain.encode()).sign("msg_1", datetime.now(timezone.utc), BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(datetime.now(timezone.utc).timestamp()))}

    problem = refused(post_webhook(whsec, BODY, {**headers, "webhook-signature": as_bytes}), "webhook-signature")
    assert "whsec_" in problem["detail"]
    assert plain not in json.dumps(problem)
    assert whsec.creates() == []


def test_github_signature_places_the_call_once_whatever_the_delivery_header(whsec: Stack) -> None:
    first = post_webhook(whsec, BODY, {**github(BODY), "X-GitHub-Delivery": str(uuid.uuid4())})
    redelivered = post_webhook(whsec, BODY, {**github(BODY), "X-GitHub-Delivery": str(uuid.uuid4())})
    as_ours = post_webhook(whsec, BODY, raw_signature(BODY, SECRET))  # the same signed bytes: the same delivery

    assert [r.status_code for r in (first, redelivered, as_ours)] == [201, 201, 201], first.text
    assert redelivered.headers["Idempotent-Replayed"] == as_ours.headers["Idempotent-Replayed"] == "true"
    assert len(whsec.creates()) == 1


def test_github_signature_with_the_wrong_secret_or_a_tampered_body_is_refused(whsec: Stack) -> None:
    refused(post_webhook(whsec, BODY, github(BODY, "not-the-secret")), "X-Hub-Signature-256")
    refused(post_webhook(whsec, BODY.replace(b"0199", b"0198"), github(BODY)), "X-Hub-Signature-256")
    assert whsec.creates() == []


def test_require_timestamp_refuses_github_but_not_standard_webhooks(whsec: Stack, configure) -> None:
    configure(WEBHOOK_SECRET=SECRET, WEBHOOK_REQUIRE_TIMESTAMP="true")

    problem = refused(post_webhook(whsec, BODY, github(BODY)), "X-Hub-Signature-256")
    assert "WEBHOOK_REQUIRE_TIMESTAMP" in problem["detail"]
    assert post_webhook(whsec, BODY, standard(BODY)).status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        lambda: {**github(BODY), **standard(BODY)},
        lambda: {**raw_signature(BODY, SECRET), **github(BODY)},
        lambda: {**stamped_signature(BODY, SECRET), **standard(BODY)},
        lambda: {**github(BODY), "webhook-id": "msg_stray"},
    ],
    ids=["github+standard", "ours+github", "timestamped+standard", "github+stray-webhook-id"],
)
def test_two_schemes_on_one_delivery_are_refused_not_guessed(whsec: Stack, headers) -> None:
    response = post_webhook(whsec, BODY, headers())

    assert response.status_code == 401
    assert "two signature schemes" in response.json()["detail"]
    assert whsec.creates() == []
