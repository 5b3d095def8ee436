"""Google Pub/Sub authenticated push on /api/webhooks/pubsub: an RS256 OIDC token made here, checked against a
JWKS served from loopback HTTPS (its URL and CA injected into the verifier, never set by a setting), and the
wrapped push format end to end."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import function_app
from shared.services import services
from shared.webhooks import GoogleKeys, PubSubVerifier
from shared.webhooks import pubsub as pubsub_module
from tests.conftest import Stack, wait_for
from tests.loopback_https import LoopbackHttps, loopback_https
from tests.test_webhooks import CALL

AUDIENCE = "https://calls.example.net/api/webhooks/pubsub"
ACCOUNT = "pubsub-push@acme-calls.iam.gserviceaccount.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-key-1"
JWKS_PATH = "/oauth2/v3/certs"


def jwks() -> bytes:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return json.dumps({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()


def token(key: rsa.RSAPrivateKey = KEY, kid: str = KID, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "1234567890",
        "email": ACCOUNT,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid})


def push(call: dict[str, Any] = CALL, message_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "message": {
                "attributes": {"origin": "tests"},
                "data": base64.b64encode(json.dumps(call).encode()).decode(),
                "messageId": message_id or str(uuid.uuid4().int)[:16],
                "publishTime": "2026-11-29T12:00:00.000Z",
            },
            "subscription": "projects/acme-calls/subscriptions/calls-push",
        }
    ).encode()


@dataclasses.dataclass
class PubSub:
    stack: Stack
    server: LoopbackHttps

    def post(self, body: bytes, bearer: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return self.stack.session.post(
            self.stack.host.base_url + "/api/webhooks/pubsub", data=body, headers=headers, timeout=30
        )


@pytest.fixture
def pubsub(
    stack: Stack, configure: Callable[..., None], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PubSub]:
    configure(PUBSUB_AUDIENCE=AUDIENCE, PUBSUB_SERVICE_ACCOUNTS=f"other@example.com, {ACCOUNT.upper()}")
    with loopback_https(tmp_path) as server:
        server.routes[JWKS_PATH] = jwks()
        app = services()
        keys = GoogleKeys(server.base_url + JWKS_PATH, verify=server.ca_bundle)
        verifier = PubSubVerifier(app.settings.pubsub_audience, app.settings.pubsub_service_accounts, keys)
        injected = dataclasses.replace(app, webhooks=dataclasses.replace(app.webhooks, pubsub=verifier))
        monkeypatch.setattr(function_app, "services", lambda: injected)
        yield PubSub(stack, server)


def refused(response: Any) -> str:
    assert response.status_code == 401, response.text
    assert (response.json()["code"], response.json()["field"]) == ("invalid_signature", "Authorization")
    assert "PUBSUB_SERVICE_ACCOUNTS" in response.json()["hint"]  # not the shared secret's hint: Pub/Sub has none
    return str(response.json()["detail"])


def test_a_push_places_the_call_once_per_message_id(pubsub: PubSub) -> None:
    body = push()

    first = pubsub.post(body, token())
    redelivered = pubsub.post(body, token(iat=int(time.time()) - 5))  # Pub/Sub may send a fresh token

    assert (first.status_code, redelivered.status_code) == (201, 201), first.text
    assert redelivered.headers["Idempotent-Replayed"] == "true"
    assert len(pubsub.stack.creates()) == 1
    assert pubsub.stack.creates()[0].json["phoneNumber"] == "+12125550199"
    assert len(pubsub.server.hits(JWKS_PATH)) == 1  # the keys are cached


def test_both_google_issuer_spellings_are_accepted(pubsub: PubSub) -> None:
    answers = [
        pubsub.post(push(), token(iss=issuer)) for issuer in ("accounts.google.com", "https://accounts.google.com")
    ]

    assert [a.status_code for a in answers] == [201, 201]


FORGERIES: list[tuple[str, Callable[[], str | None], str]] = [
    ("no-token", lambda: None, "Bearer"),
    ("not-a-jwt", lambda: "not.a.jwt", "not a JWT"),
    ("wrong-key", lambda: token(FOREIGN_KEY), "signature"),
    ("unknown-kid", lambda: token(FOREIGN_KEY, kid="someone-elses"), "Google's published keys"),
    ("wrong-audience", lambda: token(aud="https://elsewhere.example/push"), "PUBSUB_AUDIENCE"),
    ("wrong-issuer", lambda: token(iss="https://evil.example"), "Google"),
    ("expired", lambda: token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "expired"),
    ("other-account", lambda: token(email="intruder@evil.iam.gserviceaccount.com"), "PUBSUB_SERVICE_ACCOUNTS"),
    ("unverified-email", lambda: token(email_verified=False), "not verified"),
    ("no-email-verified", lambda: token(email_verified=None), "not verified"),
    ("hs256", lambda: jwt.encode({"aud": AUDIENCE}, "k" * 32, algorithm="HS256", headers={"kid": KID}), "RS256"),
]


@pytest.mark.parametrize(("bearer", "detail"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
def test_forged_pushes_are_401_and_dial_nothing(pubsub: PubSub, bearer, detail: str) -> None:
    assert detail in refused(pubsub.post(push(), bearer()))
    assert pubsub.stack.genesys.requests() == []


def test_an_unknown_key_refetches_the_keys_at_most_once_a_minute(pubsub: PubSub) -> None:
    for _ in range(3):
        refused(pubsub.post(push(), token(FOREIGN_KEY, kid=f"kid-{uuid.uuid4()}")))

    assert len(pubsub.server.hits(JWKS_PATH)) == 1


def test_a_push_whose_key_is_held_is_not_held_up_by_a_slow_fetch_of_the_keys(
    pubsub: PubSub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock was held across the fetch: one push naming a key Google does not publish (any caller can send one,
    a fetch a minute) held every genuine push for as long as Google's key server took."""
    assert pubsub.post(push(), token()).status_code == 201  # the keys are held
    monkeypatch.setattr(pubsub_module, "KEY_REFETCH_SECONDS", 0.0)  # the minute between fetches has passed
    pubsub.server.delays[JWKS_PATH] = [2.0]
    stray = threading.Thread(target=pubsub.post, args=(push(), token(FOREIGN_KEY, kid=f"kid-{uuid.uuid4()}")))
    stray.start()
    assert wait_for(lambda: len(pubsub.server.hits(JWKS_PATH)) == 2, 5)  # its fetch is under way

    started = time.monotonic()
    genuine = pubsub.post(push(), token())
    waited = time.monotonic() - started
    stray.join(10)

    assert genuine.status_code == 201, genuine.text
    assert waited < 1.0, waited


def test_keys_google_does_not_give_for_now_are_503_and_a_failed_refresh_keeps_the_ones_it_has(
    pubsub: PubSub, monkeypatch: pytest.MonkeyPatch
) -> None:
    pubsub.server.failures[JWKS_PATH] = [503]
    unavailable = [pubsub.post(push(), token()) for _ in range(2)]  # the second inside the minute between fetches
    assert [a.status_code for a in unavailable] == [503, 503], unavailable[1].text
    assert {a.json()["code"] for a in unavailable} == {"signing_keys_unavailable"}

    monkeypatch.setattr(pubsub_module, "KEY_REFETCH_SECONDS", 0.0)  # the next push may fetch again at once
    assert pubsub.post(push(), token()).status_code == 201  # fetched now
    monkeypatch.setattr(pubsub_module, "KEYS_MAX_AGE_SECONDS", 0.0)  # every push refreshes the keys
    pubsub.server.failures[JWKS_PATH] = [503]
    kept = pubsub.post(push(), token())

    assert kept.status_code == 201, kept.text
    assert len(pubsub.server.hits(JWKS_PATH)) == 3  # the failure, the fetch, the failed refresh
    assert len(pubsub.stack.creates()) == 2


@pytest.mark.parametrize(
    "document",
    [b'{"keys": 5}', b'{"keys": [{"kty": "RSA", "kid": "k-1", "n": 5, "e": "AQAB"}]}', b"[1, 2]"],
    ids=["keys-not-a-list", "key-with-a-number-for-n", "not-an-object"],
)
def test_a_malformed_key_document_is_a_failed_fetch_and_the_next_one_is_made(
    pubsub: PubSub, monkeypatch: pytest.MonkeyPatch, document: bytes
) -> None:
    """A key document of the wrong shape raised out of the fetch, which then never marked itself ended: no later
    push fetched again, each waited 10 s for it and was refused 401, until the app restarted."""
    good = pubsub.server.routes[JWKS_PATH]
    pubsub.server.routes[JWKS_PATH] = document
    unusable = pubsub.post(push(), token())
    assert unusable.status_code == 503, unusable.text
    assert unusable.json()["code"] == "signing_keys_unavailable"

    pubsub.server.routes[JWKS_PATH] = good
    monkeypatch.setattr(pubsub_module, "KEY_REFETCH_SECONDS", 0.0)  # the minute between fetches has passed
    started = time.monotonic()
    placed = pubsub.post(push(), token())

    assert placed.status_code == 201, placed.text
    assert time.monotonic() - started < 5
    assert len(pubsub.server.hits(JWKS_PATH)) == 2


def test_without_the_settings_no_push_is_trusted(stack: Stack, configure: Callable[..., None]) -> None:
    configure(PUBSUB_AUDIENCE=AUDIENCE)  # no PUBSUB_SERVICE_ACCOUNTS
    response = stack.session.post(
        stack.host.base_url + "/api/webhooks/pubsub",
        data=push(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token()}"},
        timeout=30,
    )

    assert "PUBSUB_SERVICE_ACCOUNTS" in refused(response)
    assert stack.genesys.requests() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (json.dumps({"subscription": "projects/p/subscriptions/s"}).encode(), "message"),
        (json.dumps({"message": {"data": "%%%", "messageId": "1"}}).encode(), "message.data"),
        (json.dumps({"message": {"data": base64.b64encode(b"{}").decode()}}).encode(), "message.messageId"),
    ],
    ids=["no-message", "data-not-base64", "no-message-id"],
)
def test_an_authenticated_push_in_the_wrong_format_is_400(pubsub: PubSub, body: bytes, field: str) -> None:
    response = pubsub.post(body, token())

    assert response.status_code == 400, response.text
    assert (response.json()["code"], response.json()["field"]) == ("validation_failed", field)
    assert pubsub.stack.genesys.requests() == []


def test_the_call_request_in_data_is_checked_like_api_calls(pubsub: PubSub) -> None:
    response = pubsub.post(push({"to": "+12125550199", "phoneNumber": "+12125550199"}), token())

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    assert pubsub.stack.creates() == []
