"""Google Cloud Pub/Sub push subscriptions with authentication (`POST /api/webhooks/pubsub`).

Pub/Sub signs no body: it sends `Authorization: Bearer <OIDC ID token>` for the subscription's service
account. The token must verify (RS256) with one of Google's published keys, come from Google (`iss`), be for
us (`aud` equals `PUBSUB_AUDIENCE`), name a service account of `PUBSUB_SERVICE_ACCOUNTS` with a verified
`email`, and not be expired. Only then is the body read: `{"message": {"data": <base64 of our call request>,
"messageId": ...}, "subscription": ...}`; `message.messageId` (kept across redeliveries) is the identity.

PyJWT (with `cryptography`) checks the token: both are already installed for msal, and the only Google-specific
part, fetching and caching a JWKS document, is a few lines here; `google-auth` would add its own transport
and caching stack (and `cachetools`, `pyasn1-modules`, `rsa`) to every cold start for the same check.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import requests

from shared.errors import Problem
from shared.http import parse_json
from shared.logs import get_logger
from shared.webhooks import signed
from shared.webhooks.signed import SignedCall, delivery_key, keys_unavailable

log = get_logger(__name__)

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
AUTHORIZATION = "Authorization"
KEYS_MAX_AGE_SECONDS = 3600.0  # Google rotates its keys over days and publishes new ones in advance
KEY_REFETCH_SECONDS = 60.0  # an unknown `kid` refetches at most this often, whatever a caller sends
MAX_KEYS = 16
MAX_JWKS_BYTES = 64 * 1024
LEEWAY_SECONDS = 30
MAX_PUSH_BYTES = 32 * 1024  # a call request of at most 16 KiB in base64, in the push envelope
TIMEOUT = (3.05, 5.0)
FETCH_WAIT_SECONDS = 10.0  # a push waiting for another's fetch of the keys: the fetch's own timeouts, and more
KEYS_NOT_FETCHED = "Google's token-signing keys could not be fetched."


REFUSED_HINT = (
    "Turn on the push subscription's authentication with a service account in PUBSUB_SERVICE_ACCOUNTS, and its "
    "audience PUBSUB_AUDIENCE (as set here)."
)


def refused(header: str, detail: str) -> Problem:
    return signed.refused(header, detail, REFUSED_HINT)


class GoogleKeys:
    """Google's token-signing keys (a JWKS document), fetched when needed and cached.

    `url` and `verify` (TLS trust) are injected by tests, never set by a setting.
    """

    def __init__(
        self, url: str = GOOGLE_JWKS_URL, *, verify: bool | str = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._verify = verify
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at = self._attempted_at = float("-inf")
        self._last_fetch_failed = False
        self._fetching: threading.Event | None = None  # set when the fetch in flight has ended
        self._lock = threading.Lock()

    def get(self, kid: str) -> Any | None:
        """The public key named `kid`, or None when Google publishes no such key. While the last fetch failed, a
        key not fetched before is `signing_keys_unavailable` (Google may well publish it), not None.

        One fetch runs at a time, outside the lock: a key already held is answered at once meanwhile (any caller
        can set off a fetch, at most once a minute, by naming a key Google does not publish), and a key not held
        waits for the fetch's end.
        """
        with self._lock:
            now = self._clock()
            due = kid not in self._keys or now - self._fetched_at >= KEYS_MAX_AGE_SECONDS
            fetching, mine = self._fetching, None
            if due and fetching is None and now - self._attempted_at >= KEY_REFETCH_SECONDS:
                self._attempted_at, mine = now, threading.Event()
                self._fetching = mine
            elif kid in self._keys:
                return self._keys[kid]
        if mine is not None:
            self._fetch_into_cache(now, mine)
        elif fetching is not None:
            fetching.wait(FETCH_WAIT_SECONDS)
        with self._lock:
            if kid not in self._keys and self._last_fetch_failed:
                raise keys_unavailable(KEYS_NOT_FETCHED)
            return self._keys.get(kid)

    def _fetch_into_cache(self, started: float, done: threading.Event) -> None:
        """Fetch, and whatever happens mark the fetch ended: one left in flight would stop every later one."""
        keys: dict[str, Any] | None = None
        try:
            keys = self._fetch()
        except Problem:
            log.warning("Google's token-signing keys could not be fetched; keeping %d", len(self._keys))
        finally:
            with self._lock:
                if keys is not None:
                    self._keys, self._fetched_at = keys, started
                self._last_fetch_failed = keys is None
                self._fetching = None
            done.set()

    def _fetch(self) -> dict[str, Any]:
        unusable = keys_unavailable(KEYS_NOT_FETCHED)
        try:
            response = requests.get(self._url, timeout=TIMEOUT, verify=self._verify, allow_redirects=False)
            readable = response.status_code == 200 and len(response.content) <= MAX_JWKS_BYTES
            document = response.json() if readable else {}
        except (requests.RequestException, ValueError):
            raise unusable from None
        keys: dict[str, Any] = {}
        listed = document.get("keys") if isinstance(document, dict) else None
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and item.get("kty") == "RSA" and isinstance(item.get("kid"), str):
                try:
                    keys[item["kid"]] = jwt.PyJWK(item, algorithm="RS256").key
                except jwt.PyJWTError:
                    continue
            if len(keys) == MAX_KEYS:
                break
        if not keys:
            raise unusable
        return keys


class PubSubVerifier:
    """Verifies a Pub/Sub push: its token first, then the push body."""

    def __init__(self, audience: str | None, service_accounts: frozenset[str], keys: GoogleKeys) -> None:
        self._audience = audience
        self._service_accounts = service_accounts  # lowercase
        self._keys = keys

    def verify(self, headers: Mapping[str, str], body: bytes) -> SignedCall:
        """The push's call request named by its messageId, or `invalid_signature` naming Authorization."""
        self._check_token(headers.get(AUTHORIZATION) or "")
        return _read_push(body)

    def _check_token(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise refused(AUTHORIZATION, "A Pub/Sub push needs Authorization: Bearer <OIDC token>.")
        if not self._audience or not self._service_accounts:
            raise refused(
                AUTHORIZATION, "PUBSUB_AUDIENCE and PUBSUB_SERVICE_ACCOUNTS are not both set: no push is trusted."
            )
        try:
            header = jwt.get_unverified_header(token.strip())
        except jwt.PyJWTError:
            raise refused(AUTHORIZATION, "The bearer token is not a JWT.") from None
        kid = header.get("kid")
        key = self._keys.get(kid) if header.get("alg") == "RS256" and isinstance(kid, str) else None
        if key is None:
            raise refused(AUTHORIZATION, "The token is not signed (RS256) with one of Google's published keys.")
        try:
            claims = jwt.decode(
                token.strip(),
                key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=GOOGLE_ISSUERS,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise refused(AUTHORIZATION, "The token has expired.") from None
        except jwt.InvalidAudienceError:
            raise refused(AUTHORIZATION, "The token's audience is not PUBSUB_AUDIENCE.") from None
        except jwt.InvalidIssuerError:
            raise refused(AUTHORIZATION, "The token was not issued by Google (accounts.google.com).") from None
        except jwt.PyJWTError:
            raise refused(AUTHORIZATION, "The token's signature or claims are not valid.") from None
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() not in self._service_accounts:
            raise refused(AUTHORIZATION, "The token's email is not one of PUBSUB_SERVICE_ACCOUNTS.")
        if claims.get("email_verified") is not True:
            raise refused(AUTHORIZATION, "The token's email is not verified.")


def _read_push(body: bytes) -> SignedCall:
    """The wrapped push format: `message.data` (base64) is the call request, `message.messageId` its identity."""
    document = parse_json(body)
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, dict):
        raise Problem("validation_failed", "A Pub/Sub push body holds a 'message' object.", field="message")
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id or len(message_id) > 256:
        raise Problem("validation_failed", "The pushed message has no usable messageId.", field="message.messageId")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        data = b""
    if not data:
        raise Problem("validation_failed", "message.data must be the base64 of a call request.", field="message.data")
    return SignedCall(delivery_key("pubsub", message_id), data)
