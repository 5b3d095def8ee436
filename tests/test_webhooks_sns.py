"""AWS SNS on /api/webhooks/sns: signed messages (SignatureVersion 1 and 2) with a certificate served from
loopback HTTPS, the subscription handshake end to end, and every forgery refused 401 before anything is done.

The certificate host check and the TLS trust are injected into the verifier (an allowed-host predicate and
this module's CA), never relaxed by a setting.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from schemathesis.specs.openapi.checks import response_schema_conformance

import function_app
from emulators.genesys import Fault
from shared.services import services
from shared.webhooks.sns import (
    CERTIFICATE_CACHE_SIZE,
    FUTURE_TOLERANCE_SECONDS,
    SIGNED_FIELDS,
    SnsVerifier,
    is_sns_host,
)
from tests.conftest import Stack
from tests.loopback_https import LoopbackHttps, loopback_https
from tests.test_openapi import served_schema
from tests.test_webhooks import CALL

TOPIC = "arn:aws:sns:us-east-1:123456789012:calls"
OTHER_TOPIC = "arn:aws:sns:us-east-1:210987654321:someone-elses"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
RETENTION = 3600.0


def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(message: dict[str, Any], key: rsa.RSAPrivateKey = KEY) -> dict[str, Any]:
    """Sign as SNS does: AWS's canonical string of the type's fields, SHA1 (v1) or SHA256 (v2) with RSA."""
    fields = [name for name in SIGNED_FIELDS[message["Type"]] if name in message]
    canonical = "".join(f"{name}\n{message[name]}\n" for name in fields).encode()
    algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()  # noqa: S303 (SNS v1)
    signature = key.sign(canonical, padding.PKCS1v15(), algorithm)
    return {**message, "Signature": base64.b64encode(signature).decode()}


@dataclasses.dataclass
class Sns:
    stack: Stack
    server: LoopbackHttps

    def message(self, kind: str = "Notification", version: str = "2", **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Message": json.dumps(CALL),
            "Timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SignatureVersion": version,
            "SigningCertURL": self.server.base_url + CERT_PATH,
        }
        if kind == "Notification":
            base["UnsubscribeURL"] = self.server.base_url + "/?Action=Unsubscribe"
        else:
            token = uuid.uuid4().hex
            base.update(
                Token=token,
                Message=f"You have chosen to subscribe to the topic {TOPIC}.",
                SubscribeURL=f"{self.server.base_url}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
            )
        return {**base, **fields}

    def post(self, message: dict[str, Any], message_type: str | None = None) -> Any:
        return self.stack.session.post(
            self.stack.host.base_url + "/api/webhooks/sns",
            data=json.dumps(message).encode(),
            headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": message_type or message["Type"],
                "x-amz-sns-message-id": message["MessageId"].partition("\n")[0],  # a header is one line
                "x-amz-sns-topic-arn": message["TopicArn"],
            },
            timeout=30,
        )


@pytest.fixture
def sns(stack: Stack, configure: Callable[..., None], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sns]:
    configure(SNS_TOPIC_ARNS=TOPIC)
    with loopback_https(tmp_path) as server:
        server.routes[CERT_PATH] = certificate(KEY)
        server.routes["/"] = b"<ConfirmSubscriptionResponse/>"
        verifier = SnsVerifier(
            frozenset({TOPIC}),
            retention_seconds=RETENTION,
            allowed_host=lambda netloc: netloc == server.netloc,
            verify=server.ca_bundle,
        )
        app = services()
        injected = dataclasses.replace(app, webhooks=dataclasses.replace(app.webhooks, sns=verifier))
        monkeypatch.setattr(function_app, "services", lambda: injected)
        yield Sns(stack, server)


def refused(response: Any, field: str) -> None:
    assert response.status_code == 401, response.text
    assert (response.json()["code"], response.json()["field"]) == ("invalid_signature", field)
    assert "SNS_TOPIC_ARNS" in response.json()["hint"]  # not the shared secret's hint: SNS signs with AWS's key


def test_without_trusted_topics_every_message_is_refused_saying_so(
    stack: Stack, configure: Callable[..., None]
) -> None:
    """It said "Type must be one of ..." of a well-formed message, never that the route was not configured."""
    configure(SNS_TOPIC_ARNS=None)
    message = {"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Message": "{}"}

    response = stack.session.post(
        stack.host.base_url + "/api/webhooks/sns",
        data=json.dumps(message).encode(),
        headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"},
        timeout=30,
    )

    refused(response, "TopicArn")
    assert "SNS_TOPIC_ARNS is not set" in response.json()["detail"]
    assert stack.genesys.requests() == []


@pytest.mark.parametrize("version", ["1", "2"], ids=["SHA1withRSA", "SHA256withRSA"])
def test_a_notification_places_the_call_once_per_message_id(sns: Sns, version: str) -> None:
    message = sign(sns.message(version=version))

    first = sns.post(message)
    redelivered = sns.post(message)

    assert (first.status_code, redelivered.status_code) == (201, 201), first.text
    assert redelivered.headers["Idempotent-Replayed"] == "true"
    assert len(sns.stack.creates()) == 1
    assert sns.stack.creates()[0].json["phoneNumber"] == "+12125550199"


def test_a_refusal_that_can_pass_answers_503_so_sns_delivers_again(sns: Sns, caplog: pytest.LogCaptureFixture) -> None:
    """SNS retries only server-side failures: Genesys's rate limit answered 429, and SNS dropped the message, so
    the call was never placed. A refusal for good stays 4xx."""
    sns.stack.genesys.inject("create_call", Fault(status=429, retry_after=120))
    message = sign(sns.message())

    limited = sns.post(message)
    redelivered = sns.post(message)
    never = sns.post(sign(sns.message(Message=json.dumps({"to": "12"}))))

    assert limited.status_code == 503, limited.text
    assert (limited.json()["code"], limited.json()["eventStatus"]) == ("genesys_rate_limited", 429)
    # as the served document says (its 503 was a Problem, which has no eventStatus)
    served_schema(sns.stack).find_operation_by_id("ReceiveSnsMessage").Case().validate_response(
        limited, checks=[response_schema_conformance]
    )
    assert redelivered.status_code == 201, redelivered.text
    assert len(sns.stack.genesys.org.conversations) == 1
    assert never.status_code == 400, never.text
    assert "Answered 503 genesys_rate_limited" in caplog.text  # logged as every answer


def test_a_notification_with_a_subject_and_the_certificate_fetched_once(sns: Sns) -> None:
    answers = [sns.post(sign(sns.message(Subject=f"call {n}"))) for n in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 201], answers[0].text
    assert len(sns.stack.creates()) == 3
    assert len(sns.server.hits(CERT_PATH)) == 1


def deliver_at_once(sns: Sns, messages: list[dict[str, Any]]) -> list[Any]:
    """Post the messages from threads released together; their answers, in the order they came."""
    together = threading.Barrier(len(messages))
    answers: list[Any] = []

    def deliver(message: dict[str, Any]) -> None:
        together.wait(10)
        answers.append(sns.post(message))

    senders = [threading.Thread(target=deliver, args=(message,)) for message in messages]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    return answers


def test_deliveries_at_once_on_a_cold_instance_fetch_the_certificate_once(sns: Sns) -> None:
    """The cache was looked at, then the certificate fetched outside the lock: eight deliveries at once fetched it
    eight times from AWS, each up to its timeout."""
    sns.server.delays[CERT_PATH] = [0.5]  # the first fetch is slow: the others arrive while it runs
    answers = deliver_at_once(sns, [sign(sns.message(Subject=f"call {n}")) for n in range(8)])

    assert [a.status_code for a in answers] == [201] * 8
    assert len(sns.server.hits(CERT_PATH)) == 1


def test_deliveries_waiting_on_a_failed_certificate_fetch_get_its_failure_not_a_fetch_each(sns: Sns) -> None:
    """A fetch that failed was not handed to the deliveries waiting on it: each fetched again in turn, each up to
    the fetch's timeout (about 8 s), the last of eight about a minute on. Four at once: fewer than the local host's
    worker threads (six on two cores), so that all four wait on the one fetch."""
    sns.server.delays[CERT_PATH] = [0.5]
    sns.server.failures[CERT_PATH] = [503] * 4
    answers = deliver_at_once(sns, [sign(sns.message(Subject=f"call {n}")) for n in range(4)])

    assert [a.status_code for a in answers] == [503] * 4  # SNS delivers each again
    assert len(sns.server.hits(CERT_PATH)) == 1
    assert sns.stack.creates() == []


def test_the_subscription_handshake_confirms_an_allowed_topic(sns: Sns) -> None:
    confirmation = sign(sns.message("SubscriptionConfirmation"))

    response = sns.post(confirmation)

    assert response.status_code == 200, response.text
    assert response.json()["type"] == "SubscriptionConfirmation"
    assert sns.server.hits("/") == [confirmation["SubscribeURL"].split(sns.server.netloc)[1]]
    assert sns.stack.genesys.requests() == []


def test_a_subscription_to_a_topic_not_in_the_setting_is_not_confirmed(sns: Sns) -> None:
    confirmation = sign(sns.message("SubscriptionConfirmation", TopicArn=OTHER_TOPIC))

    refused(sns.post(confirmation), "TopicArn")
    assert sns.server.hits("/") == []


def test_an_unsubscribe_confirmation_is_acknowledged_and_nothing_else(sns: Sns) -> None:
    response = sns.post(sign(sns.message("UnsubscribeConfirmation")))

    assert response.status_code == 200, response.text
    assert sns.server.hits("/") == []
    assert sns.stack.genesys.requests() == []


def _stamp(seconds_from_now: float) -> str:
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds_from_now)
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def subject_moved_into_the_message_id(signed: dict[str, Any]) -> dict[str, Any]:
    """`MessageId\n<id>\nSubject\n<subject>\n` reads the same with the Subject inside a MessageId of three lines."""
    moved = {name: value for name, value in signed.items() if name != "Subject"}
    return {**moved, "MessageId": f"{signed['MessageId']}\nSubject\n{signed['Subject']}"}


FORGERIES: list[tuple[str, Callable[[Sns], tuple[dict[str, Any], str | None]], str]] = [
    ("wrong-key", lambda s: (sign(s.message(), FOREIGN_KEY), None), "Signature"),
    (
        "tampered-message",
        lambda s: ({**sign(s.message()), "Message": json.dumps({"to": "+12125550198"})}, None),
        "Signature",
    ),
    ("swapped-id", lambda s: ({**sign(s.message()), "MessageId": str(uuid.uuid4())}, None), "Signature"),
    ("stale", lambda s: (sign(s.message(Timestamp=_stamp(-RETENTION - 1))), None), "Timestamp"),
    # + 5: the stamp is cut to the second, so 301 s ahead can arrive 300 s ahead and pass
    ("future", lambda s: (sign(s.message(Timestamp=_stamp(FUTURE_TOLERANCE_SECONDS + 5))), None), "Timestamp"),
    (
        "foreign-certificate-host",
        lambda s: (sign(s.message(SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/x.pem")), None),
        "SigningCertURL",
    ),
    (  # urlsplit raises ValueError for an unclosed bracket: it answered 500 with a traceback in the log
        "certificate-host-unreadable",
        lambda s: (sign(s.message(SigningCertURL="https://[sns.us-east-1.amazonaws.com/x.pem")), None),
        "SigningCertURL",
    ),
    (
        "certificate-over-http",
        lambda s: (sign(s.message(SigningCertURL=f"http://{s.server.netloc}{CERT_PATH}")), None),
        "SigningCertURL",
    ),
    (  # the same signed string with a new MessageId: a replay under another identity, which dialed again
        "subject-moved-into-the-message-id",
        lambda s: (subject_moved_into_the_message_id(sign(s.message(Subject="Reminder"))), None),
        "MessageId",
    ),
    ("other-topic", lambda s: (sign(s.message(TopicArn=OTHER_TOPIC)), None), "TopicArn"),
    ("unknown-version", lambda s: (sign(s.message(version="2")) | {"SignatureVersion": "3"}, None), "SignatureVersion"),
    ("type-header-mismatch", lambda s: (sign(s.message()), "SubscriptionConfirmation"), "x-amz-sns-message-type"),
    ("type-not-a-string", lambda s: ({**sign(s.message()), "Type": [None, None]}, "Notification"), "Type"),
    ("no-signature", lambda s: ({k: v for k, v in sign(s.message()).items() if k != "Signature"}, None), "Signature"),
    # b64decode raises a plain ValueError for text that is not ASCII: it answered 500
    ("signature-not-ascii", lambda s: ({**sign(s.message()), "Signature": "\u00e9" * 8}, None), "Signature"),
    (  # its first delivery may have come when the Timestamp was 300 s ahead: its record may be purged already
        "older-than-its-record-is-sure-to-last",
        lambda s: (sign(s.message(Timestamp=_stamp(-(RETENTION - FUTURE_TOLERANCE_SECONDS) - 5))), None),
        "Timestamp",
    ),
]


@pytest.mark.parametrize(("change", "field"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
def test_forged_messages_are_401_and_dial_nothing(sns: Sns, change, field: str) -> None:
    message, message_type = change(sns)

    refused(sns.post(message, message_type), field)
    assert sns.stack.genesys.requests() == []


@pytest.mark.parametrize("status", [503, 429])
def test_a_certificate_host_that_fails_for_now_gets_a_503_so_sns_delivers_again(sns: Sns, status: int) -> None:
    """SNS retries only server-side failures: a 401 here would drop the message for good."""
    sns.server.failures[CERT_PATH] = [status]
    message = sign(sns.message())

    first = sns.post(message)
    again = sns.post(message)

    assert first.status_code == 503, first.text
    assert first.json()["code"] == "signing_keys_unavailable" and first.json()["retryable"] is True
    assert int(first.headers["Retry-After"]) > 0
    assert again.status_code == 201, again.text
    assert len(sns.stack.creates()) == 1


@pytest.mark.parametrize(
    ("path", "served_at", "wrapped"),
    [
        ("/?Action=ListTopics", "/", True),
        (CERT_PATH + "?Action=ListTopics", CERT_PATH, False),
        ("/certificate", "/certificate", False),
        (CERT_PATH, CERT_PATH, True),
    ],
    ids=["api-call", "pem-with-query", "not-a-pem-file", "certificate-inside-other-text"],
)
def test_a_certificate_is_taken_only_from_a_pem_file(sns: Sns, path: str, served_at: str, wrapped: bool) -> None:
    """An SNS host's answer to an API call holding a certificate among other text is no signing certificate."""
    pem = certificate(KEY)
    sns.server.routes[served_at] = b"<Error><Message>" + pem + b"</Message></Error>" if wrapped else pem

    refused(sns.post(sign(sns.message(SigningCertURL=sns.server.base_url + path))), "SigningCertURL")
    assert sns.stack.genesys.requests() == []


def test_a_pem_file_holding_more_than_one_certificate_is_refused(sns: Sns) -> None:
    sns.server.routes[CERT_PATH] = certificate(KEY) + certificate(FOREIGN_KEY)

    refused(sns.post(sign(sns.message())), "SigningCertURL")
    assert sns.stack.genesys.requests() == []


def test_a_certificate_aws_will_not_give_is_refused(sns: Sns) -> None:
    message = sign(sns.message(SigningCertURL=sns.server.base_url + "/no-such-certificate.pem"))

    refused(sns.post(message), "SigningCertURL")
    assert sns.stack.genesys.requests() == []


def test_the_deployed_host_check_refuses_a_loopback_certificate(sns: Sns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the injected verifier, the app's own host check applies: no setting can relax it."""
    monkeypatch.setattr(function_app, "services", services)

    refused(sns.post(sign(sns.message())), "SigningCertURL")
    assert sns.server.requests == []


@pytest.mark.parametrize(
    ("netloc", "allowed"),
    [
        ("sns.us-east-1.amazonaws.com", True),
        ("sns.eu-central-2.amazonaws.com:443", True),
        ("sns.cn-north-1.amazonaws.com.cn", True),
        ("SNS.US-WEST-2.AMAZONAWS.COM", True),
        ("sns.us-east-1.amazonaws.com.evil.example", False),
        ("sns.us-east-1.amazonaws.com:8443", False),
        ("sqs.us-east-1.amazonaws.com", False),
        ("sns.amazonaws.com", False),
        ("sns.s3.amazonaws.com", False),  # the S3 bucket named "sns", not SNS
        ("sns.s3-accelerate.amazonaws.com", False),
        ("sns.s3-external-1.amazonaws.com", False),
        ("sns.us-gov-west-1.amazonaws.com", True),
        ("sns.ap-southeast-5.amazonaws.com", True),
        ("evil.example", False),
        ("sns.us-east-1.amazonaws.com@evil.example", False),
    ],
)
def test_the_certificate_host_check(netloc: str, allowed: bool) -> None:
    assert is_sns_host(netloc) is allowed


def test_the_certificate_cache_is_bounded(sns: Sns) -> None:
    verifier = SnsVerifier(
        frozenset({TOPIC}),
        retention_seconds=RETENTION,
        allowed_host=lambda netloc: netloc == sns.server.netloc,
        verify=sns.server.ca_bundle,
    )
    paths = [f"/cert-{n}.pem" for n in range(CERTIFICATE_CACHE_SIZE + 1)]
    for path in paths:
        sns.server.routes[path] = sns.server.routes[CERT_PATH]

    def check(path: str) -> None:
        message = sign(sns.message(SigningCertURL=sns.server.base_url + path))
        verifier.verify({"x-amz-sns-message-type": "Notification"}, json.dumps(message).encode())

    for path in [*paths, paths[-1], paths[0]]:
        check(path)

    assert [len(sns.server.hits(path)) for path in (paths[0], paths[-1])] == [2, 1]
