"""AWS SNS HTTP(S) subscriptions (`POST /api/webhooks/sns`).

Every message is verified before anything in it is acted on: its `TopicArn` must be one of `SNS_TOPIC_ARNS`,
its `Signature` (`SignatureVersion` 1: SHA1withRSA, 2: SHA256withRSA) must verify over AWS's canonical string
of the message's fields with the certificate at `SigningCertURL`, which must be `https://sns.<region>.
amazonaws.com/<name>.pem` (or China's `.amazonaws.com.cn`), and its signed `Timestamp` must not be in the future
nor older than the record of the message's first delivery is sure to be kept (a replay past it could not be told
from a new message). Certificates are cached by URL (AWS publishes a new URL for a new certificate), a bounded
number of them.

- `SubscriptionConfirmation`: confirmed by visiting `SubscribeURL` (checked like `SigningCertURL`).
- `Notification`: `Message` holds our call request as JSON; `MessageId` (kept by SNS across retries) is the
  delivery's identity.
- `UnsubscribeConfirmation`: acknowledged; nothing to do.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.errors import Problem
from shared.http import parse_json
from shared.instants import parse_instant
from shared.waiting import FailureForWaiters
from shared.webhooks import signed
from shared.webhooks.signed import SignedCall, delivery_key, keys_unavailable

MESSAGE_TYPE_HEADER = "x-amz-sns-message-type"
NOTIFICATION, SUBSCRIBE, UNSUBSCRIBE = "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {  # AWS's canonical order; Subject only when present
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIBE: _CONFIRMATION_FIELDS,
    UNSUBSCRIBE: _CONFIRMATION_FIELDS,
}
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# The label after `sns.` must be a region (us-east-1, us-gov-west-1, cn-north-1): any label would also admit
# S3's virtual hosts, `sns.s3.amazonaws.com` being the bucket named "sns", which anyone may own.
SNS_HOST = re.compile(r"^sns\.[a-z]{2}(-[a-z]+)+-\d{1,2}\.amazonaws\.com(\.cn)?(:443)?$")
FUTURE_TOLERANCE_SECONDS = 300
CERTIFICATE_CACHE_SIZE = 16
MAX_CERTIFICATE_BYTES = 64 * 1024
PEM_BEGIN, PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
MAX_SNS_BYTES = 64 * 1024  # the envelope around a call request of at most 16 KiB, JSON-escaped
TIMEOUT = (3.05, 5.0)


REFUSED_HINT = (
    "Subscribe this endpoint to a topic in SNS_TOPIC_ARNS and let SNS deliver its messages as sent: AWS signs each, "
    "and a message changed on the way, or not from SNS, is refused."
)


def refused(field: str, detail: str) -> Problem:
    return signed.refused(field, detail, REFUSED_HINT)


def _is_one_pem_certificate(content: bytes) -> bool:
    text = content.strip()
    return text.startswith(PEM_BEGIN) and text.endswith(PEM_END) and text.count(PEM_BEGIN) == 1


def is_sns_host(netloc: str) -> bool:
    """AWS's SNS endpoints: `sns.<region>.amazonaws.com` and, in China, `sns.<region>.amazonaws.com.cn`."""
    return bool(SNS_HOST.match(netloc.lower()))


@dataclass(frozen=True)
class SnsMessage:
    """A verified SNS message from an allowed topic."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None

    def call(self) -> SignedCall:
        """A Notification's call request (the JSON in `Message`), named by its `MessageId`."""
        return SignedCall(delivery_key("sns", self.message_id), self.message.encode())


class SnsVerifier:
    """Verifies SNS messages and confirms subscriptions.

    `allowed_host` decides which `host[:port]` may serve certificates and subscription confirmations, and
    `verify` is the TLS trust (True: the system's CAs): tests inject a loopback host and their own CA here,
    never through a setting.
    """

    def __init__(
        self,
        topic_arns: frozenset[str],
        *,
        retention_seconds: float,
        allowed_host: Callable[[str], bool] = is_sns_host,
        verify: bool | str = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topic_arns = topic_arns
        # A record is kept `retention_seconds` from its first delivery, which may have come when the Timestamp was
        # up to FUTURE_TOLERANCE_SECONDS ahead of this clock: past this age the record may be gone.
        self._max_age_seconds = retention_seconds - FUTURE_TOLERANCE_SECONDS
        self._allowed_host = allowed_host
        self._verify = verify
        self._clock = clock
        self._session = requests.Session()
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()
        # One fetch in flight per certificate URL, and its failure for the deliveries that waited on it
        self._fetching: dict[str, tuple[threading.Lock, FailureForWaiters]] = {}

    def verify(self, headers: Mapping[str, str], body: bytes) -> SnsMessage:
        """The verified message, or `invalid_signature` naming the header or field that failed."""
        if not self._topic_arns:
            raise refused("TopicArn", "SNS_TOPIC_ARNS is not set: no SNS message is trusted.")
        document = parse_json(body)
        if not isinstance(document, dict):
            raise refused(MESSAGE_TYPE_HEADER, "The body is not an SNS message (a JSON object).")
        kind = document.get("Type")
        if not isinstance(kind, str) or kind not in SIGNED_FIELDS:
            raise refused("Type", f"Type must be one of {', '.join(SIGNED_FIELDS)}.")
        if headers.get(MESSAGE_TYPE_HEADER) != kind:
            raise refused(MESSAGE_TYPE_HEADER, "x-amz-sns-message-type must name the message's Type.")
        fields: dict[str, str] = {}
        for name in SIGNED_FIELDS[kind]:
            value = document.get(name)
            if name == "Subject" and value is None:
                continue
            if not isinstance(value, str) or not value:
                raise refused(name, f"The SNS message has no {name}.")
            if name != "Message" and "\n" in value:  # else a field could take in the next (or Subject) unsigned
                raise refused(name, f"The SNS message's {name} must be one line.")
            fields[name] = value
        if fields["TopicArn"] not in self._topic_arns:
            raise refused("TopicArn", "The topic is not one of SNS_TOPIC_ARNS.")
        algorithm = SIGNATURE_HASHES.get(str(document.get("SignatureVersion")))
        if algorithm is None:
            raise refused("SignatureVersion", "SignatureVersion must be 1 (SHA1withRSA) or 2 (SHA256withRSA).")
        try:
            signature = base64.b64decode(str(document.get("Signature") or ""), validate=True)
        except ValueError:  # binascii.Error, and a plain ValueError for text that is not ASCII
            signature = b""
        if not signature:
            raise refused("Signature", "Signature must be base64.")
        key = self._public_key(document.get("SigningCertURL"))
        canonical = "".join(f"{name}\n{value}\n" for name, value in fields.items())
        try:
            key.verify(signature, canonical.encode(), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise refused("Signature", "The signature does not match the message.") from None
        self._check_timestamp(fields["Timestamp"])
        return SnsMessage(kind, fields["MessageId"], fields["TopicArn"], fields["Message"], fields.get("SubscribeURL"))

    def confirm(self, message: SnsMessage) -> None:
        """Visit the verified message's `SubscribeURL`: SNS then delivers the topic's notifications here."""
        url = self._checked_url(message.subscribe_url, "SubscribeURL")
        try:
            response = self._session.get(url, timeout=TIMEOUT, verify=self._verify, allow_redirects=False)
        except requests.RequestException:
            response = None
        if response is None or response.status_code != 200:
            answered = "no answer" if response is None else f"HTTP {response.status_code}"
            raise Problem(
                "internal_error",
                f"Confirming the SNS subscription failed ({answered}); SNS delivers the confirmation again.",
            )

    def _checked_url(self, url: object, field: str) -> str:
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
        except ValueError:  # an unclosed or misplaced bracket in the host
            parts = None
        if parts is None or parts.scheme != "https" or "@" in parts.netloc or not self._allowed_host(parts.netloc):
            raise refused(field, f"{field} must be https://sns.<region>.amazonaws.com/... (or .amazonaws.com.cn).")
        return str(url)

    def _checked_certificate_url(self, url: object) -> str:
        """A certificate is a `.pem` file on an SNS host, as AWS names them: not the answer of an API call (a query)
        that happens to hold a certificate among other text."""
        checked = self._checked_url(url, "SigningCertURL")
        parts = urlsplit(checked)
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise refused("SigningCertURL", "SigningCertURL must name a .pem file, with no query.")
        return checked

    def _public_key(self, url: object) -> rsa.RSAPublicKey:
        """The certificate's RSA key, fetched once per URL (deliveries at once wait for the one fetch in flight, not
        one fetch each from AWS); at most `CERTIFICATE_CACHE_SIZE` are kept."""
        checked = self._checked_certificate_url(url)
        with self._lock:
            if checked in self._keys:
                self._keys.move_to_end(checked)
                return self._keys[checked]
            fetch = self._fetching.setdefault(checked, (threading.Lock(), FailureForWaiters()))
        in_flight, failure = fetch
        asked_at = failure.asked()
        with in_flight:
            try:
                with self._lock:
                    if checked in self._keys:  # fetched while this delivery waited
                        return self._keys[checked]
                key = failure.attempt(asked_at, lambda: self._fetch_key(checked))
                with self._lock:
                    self._keys[checked] = key
                    while len(self._keys) > CERTIFICATE_CACHE_SIZE:
                        self._keys.popitem(last=False)
                return key
            finally:
                with self._lock:  # cached or failed: kept no longer than its fetch (URLs are the sender's to choose)
                    if self._fetching.get(checked) is fetch:
                        del self._fetching[checked]

    def _fetch_key(self, url: str) -> rsa.RSAPublicKey:
        """A failure that may pass (no answer, 429, 5xx) is 503: SNS retries only server-side failures, and a
        401 would drop the message for good. A certificate AWS will not give, or that is unusable, is 401."""
        unusable = refused("SigningCertURL", "The signing certificate could not be fetched or read.")
        try:
            response = self._session.get(url, timeout=TIMEOUT, verify=self._verify, allow_redirects=False)
        except requests.RequestException as error:
            raise keys_unavailable(
                f"The SNS signing certificate could not be fetched ({type(error).__name__})."
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise keys_unavailable(f"The SNS signing certificate host answered {response.status_code}.")
        if response.status_code != 200 or len(response.content) > MAX_CERTIFICATE_BYTES:
            raise unusable
        if not _is_one_pem_certificate(response.content):  # the parser finds one inside any other text too
            raise unusable
        try:
            key = x509.load_pem_x509_certificate(response.content).public_key()
        except ValueError:
            raise unusable from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise unusable
        return key

    def _check_timestamp(self, stamp: str) -> None:
        sent = parse_instant(stamp)
        if sent is None or sent.tzinfo is None:
            raise refused("Timestamp", "Timestamp is not an ISO-8601 time in UTC.")
        age = self._clock() - sent.timestamp()
        if age > self._max_age_seconds:
            raise refused("Timestamp", "The message is older than the idempotency retention: a replay.")
        if age < -FUTURE_TOLERANCE_SECONDS:
            raise refused("Timestamp", f"The message's Timestamp is more than {FUTURE_TOLERANCE_SECONDS} s ahead.")
