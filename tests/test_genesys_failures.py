"""Genesys failures: every documented error maps to its catalog problem, and a create is never repeated
unless Genesys provably did not act."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulators.genesys import DEMO_USER_ID, NO_STATION_USER_ID, Fault
from emulators.stack import CLIENT_ID, CLIENT_SECRET
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import REFUSED_SECRET_SECONDS, RENEWAL_RETRY_SECONDS, GenesysClient
from tests.conftest import Clock, Stack, wait_for

CALL = {"to": "+12125550199"}
OTHER_CALL = {"to": "+12125550198"}  # a different call: identical ones inside the duplicate window are one

# (Genesys status, Genesys code, our code, our status): the codes of reference/genesys-cloud-api.md.
GENESYS_ERRORS = [
    (400, "bad.request", "genesys_rejected_address", 422),
    (400, "invalid.value", "genesys_rejected_request", 422),
    (400, "invalid.date", "genesys_rejected_request", 422),
    (400, "not.a.user", "genesys_user_context_required", 502),
    (400, "conversation.error.no.user.station", "genesys_no_station", 409),
    (400, "too.many.create.conversation.parameters", "genesys_rejected_request", 422),
    (400, "invalid.ani.address", "genesys_rejected_address", 422),
    (401, "authentication.required", "genesys_auth_failed", 502),
    (401, "bad.credentials", "genesys_auth_failed", 502),
    (401, "ip.not.authorized", "genesys_auth_failed", 502),
    (403, "missing.permissions", "genesys_permission_denied", 502),
    (403, "missing.any.permissions", "genesys_permission_denied", 502),
    (403, "not.authorized", "genesys_permission_denied", 502),
    (404, "not.found", "genesys_not_found", 404),
    (408, "client.timeout", "genesys_unavailable", 503),
    (413, "request.entity.too.large", "genesys_rejected_request", 422),
    (415, "unsupported.media.type", "genesys_rejected_request", 422),
    (429, "too.many.requests", "genesys_rate_limited", 429),
    (429, "too.many.requests.retry.after", "genesys_rate_limited", 429),
    (500, "internal.server.error", "genesys_unavailable", 503),
    (503, "service.unavailable", "genesys_unavailable", 503),
    (504, "request.timeout", "genesys_timeout", 504),
]


@pytest.mark.parametrize(("status", "genesys_code", "code", "our_status"), GENESYS_ERRORS)
def test_genesys_error_maps_to_catalog(
    stack: Stack, status: int, genesys_code: str, code: str, our_status: int
) -> None:
    # A 401 is retried once with a fresh token, and a 429 waits: give every attempt the same answer.
    stack.genesys.inject("create_call", *[Fault(status=status, code=genesys_code, retry_after=30)] * 3)

    response = stack.post("/api/calls", CALL)

    assert response.status_code == our_status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == our_status
    upstream = problem["upstream"]
    assert upstream["status"] == status
    assert upstream["code"] == genesys_code
    assert len(upstream["correlationId"]) == 36  # the emulator's ININ-Correlation-Id, a UUID
    # A 429 sent nothing; a 5xx (or 408) to the create leaves its outcome unknown: a retry only replays it
    assert problem["retryable"] is (our_status == 429)
    if our_status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1
    assert len(stack.creates()) == (2 if status == 401 else 1)  # only a 401 is retried, with a new token


def test_malformed_participant_address_lists_the_real_causes(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(status=400, code="bad.request", message="Malformed participant address"))

    problem = stack.post("/api/calls", CALL).json()

    assert problem["code"] == "genesys_rejected_address"
    assert problem["upstream"]["message"] == "Malformed participant address"
    for cause in ("E.164", "caller ID", "user token", "outbound route"):
        assert cause in problem["hint"]


def test_credentials_an_answer_echoes_never_reach_the_caller_or_readiness(stack: Stack) -> None:
    """A proxy or gateway before Genesys may echo the request it refused: its text went into the problem's detail
    and upstream message, and into the readiness answer, with the client secret or the token in it."""
    assert stack.post("/api/calls", OTHER_CALL).status_code == 201
    token = stack.genesys.requests("create_call")[-1].headers["Authorization"].split(" ", 1)[1]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    echo = f"refused: Authorization: Bearer {token}"
    stack.genesys.inject("create_call", Fault(status=400, code="bad.request", message=echo))
    refused_call = stack.post("/api/calls", CALL)
    stack.genesys.revoke_tokens()
    said = f"refused: Authorization: Basic {basic} (client_secret={CLIENT_SECRET})"
    refusal = {"error": "invalid_request", "error_description": said}
    stack.genesys.inject("token", Fault(status=400, json_body=refusal))  # one token request per readiness check
    not_ready = stack.get("/api/health/ready")
    # a 200 that is no token (a captive proxy), its echo written as an object
    stack.genesys.inject("token", Fault(status=200, json_body={"message": {"echo": said}}))
    proxied = stack.get("/api/health/ready")

    assert refused_call.status_code == 422, refused_call.text
    assert refused_call.json()["upstream"]["message"] == "refused: Authorization: Bearer [withheld]"
    assert (not_ready.status_code, proxied.status_code) == (503, 503), proxied.text
    for answer in (refused_call.text, not_ready.text, proxied.text):
        assert token not in answer and basic not in answer and CLIENT_SECRET not in answer
    assert "Basic [withheld] (client_secret=[withheld])" in not_ready.text
    assert "invalid_request" in not_ready.text  # the OAuth code is read as sent


def test_station_less_user_is_genesys_no_station_from_the_emulated_org(stack: Stack) -> None:
    response = stack.post("/api/calls", {**CALL, "userId": NO_STATION_USER_ID})

    assert response.status_code == 409
    assert response.json()["code"] == "genesys_no_station"
    assert response.json()["upstream"]["code"] == "conversation.error.no.user.station"


def test_missing_permission_in_the_org_is_permission_denied(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.genesys.org, "permissions", {"telephony:plugin:all", "routing:queue:view"})

    problem = stack.post("/api/calls", CALL).json()

    assert problem["code"] == "genesys_permission_denied"
    assert problem["upstream"]["code"] == "missing.any.permissions"


def test_429_then_success_answers_201_with_one_call_created(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(status=429, retry_after=1))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 201, response.text
    creates = stack.creates()
    assert len(creates) == 2  # the refused attempt and the accepted one
    assert len(stack.genesys.org.conversations) == 1


@pytest.mark.parametrize("asked", ["0", "0.2"])
def test_a_429_asking_for_no_wait_is_sent_again_at_most_three_times_a_second_apart(
    stack: Stack, configure, asked: str
) -> None:
    """A Retry-After of 0 or a fraction was read as no wait: the create went out again as fast as the loop turned
    (1,847 times in 3 s, each after a do-not-call read) until the deadline, deepening the org's rate limit."""
    configure(CALL_DEADLINE_SECONDS="8")
    stack.genesys.inject("create_call", *[Fault(status=429, headers={"Retry-After": asked})] * 50)

    started = time.monotonic()
    response = stack.post("/api/calls", CALL)

    assert response.status_code == 429, response.text
    assert response.json()["code"] == "genesys_rate_limited"
    assert response.headers["Retry-After"] == "1"
    assert len(stack.creates()) == 4  # the first and three re-sends
    assert time.monotonic() - started >= 3  # a second before each re-send


def test_a_create_is_not_sent_again_with_too_little_time_left_to_hear_its_answer(stack: Stack, configure) -> None:
    """After a 429 the create was sent again with as little as 1 s of the request's time left (a 6 s Retry-After
    in 7.5 s): Genesys placed it in 1.7 s, and the caller heard "it may have been placed" of a call that rang."""
    configure(CALL_DEADLINE_SECONDS="7.5")
    stack.genesys.inject("create_call", Fault(status=429, retry_after=6), Fault(then_succeed=True, delay=1.7))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 429, response.text
    assert (response.json()["code"], response.headers["Retry-After"]) == ("genesys_rate_limited", "6")
    assert len(stack.creates()) == 1
    assert stack.genesys.org.conversations == {}


def test_a_429_with_an_unreadable_retry_after_waits_the_default_and_places_the_call(stack: Stack) -> None:
    """Retry-After: 1e400 raised OverflowError while the create's answer was read: "it may have been placed"."""
    stack.genesys.inject("create_call", Fault(status=429, headers={"Retry-After": "1e400"}))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 201, response.text
    assert len(stack.creates()) == 2
    assert len(stack.genesys.org.conversations) == 1


def test_429_longer_than_the_deadline_answers_rate_limited_without_waiting(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(status=429, retry_after=120))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 429
    assert response.json()["code"] == "genesys_rate_limited"
    assert response.headers["Retry-After"] == "120"
    assert len(stack.creates()) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_create_is_never_sent_twice(stack: Stack, status: int) -> None:
    """Its answer said `retryable: true`, though a retry with the key only replays it (and one with another key
    could ring the person twice): a flow branching on `retryable` looped on the stored answer."""
    stack.genesys.inject("create_call", Fault(status=status))

    response = stack.post("/api/calls", CALL, headers={"Idempotency-Key": f"unknown-{status}"})
    retried = stack.post("/api/calls", CALL, headers={"Idempotency-Key": f"unknown-{status}"})

    assert response.status_code == 503
    problem = response.json()
    assert problem["code"] == "genesys_unavailable"
    assert "Outcome unknown" in problem["hint"]
    assert problem["retryable"] is False
    assert retried.json() == problem and retried.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_read_timeout_on_create_is_outcome_unknown_and_sent_once(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(delay=5, then_succeed=True))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 504
    problem = response.json()
    assert problem["code"] == "genesys_timeout"
    assert "Outcome unknown" in problem["hint"]
    assert problem["retryable"] is False
    assert len(stack.creates()) == 1


def test_dropped_connection_after_sending_is_not_resent(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(drop=True))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 504
    assert response.json()["code"] == "genesys_timeout"
    assert len(stack.creates()) == 1


def test_html_error_page_is_mapped_by_status(stack: Stack) -> None:
    stack.genesys.inject("create_call", Fault(status=502, raw_body=b"<html>Bad gateway</html>"))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 503
    problem = response.json()
    assert problem["code"] == "genesys_unavailable"
    assert problem["upstream"] == {
        "status": 502,
        "code": None,
        "message": None,
        "correlationId": problem["upstream"]["correlationId"],
    }


@pytest.mark.parametrize(
    ("status", "fault", "code"),
    [
        # a gateway's error object where Genesys puts a string (`error`, `code`)
        (429, Fault(status=429, json_body={"error": {"code": "TooManyRequests"}}, retry_after=30), 429),
        (400, Fault(status=400, json_body={"code": ["bad.request"], "message": {"text": "no"}}), 422),
        # nested deeper than the JSON parser reads
        (400, Fault(status=400, raw_body=b"[" * 100_000), 422),
    ],
    ids=["error-object", "code-list", "deep-json"],
)
def test_a_refusal_whatever_its_body_is_a_refusal_and_a_retry_places_the_call(
    stack: Stack, status: int, fault: Fault, code: int
) -> None:
    """A refused create whose body held an object where a string goes, or JSON too deep to parse, raised an
    internal error after the create: answered 500 and kept "may have been placed" for 8 days, so the key's retry
    was told the outcome was unknown and the call was never placed."""
    stack.genesys.inject("create_call", fault)  # a 429 asking more than the deadline is not waited for
    key = {"Idempotency-Key": f"refused-with-odd-body-{status}"}

    refused = stack.post("/api/calls", CALL, headers=key)
    retried = stack.post("/api/calls", CALL, headers=key)

    assert refused.status_code == code, refused.text
    upstream = refused.json()["upstream"]
    assert upstream["status"] == status and upstream["code"] is None  # a code is a string, or none
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("Idempotent-Replayed") is None
    assert len(stack.creates()) == 2  # the refused one and the retry's


@pytest.mark.parametrize("token", ["tok\u2013abc", "tok\r\nX-Injected: 1", "tok abc"], ids=["en-dash", "crlf", "space"])
def test_a_token_no_header_can_carry_is_refused_when_issued_not_sent_and_not_kept(stack: Stack, token: str) -> None:
    """A token answer whose token is not a bearer token's characters (RFC 6750: letters, digits, -._~+/ and
    trailing =): one outside Latin-1 failed the create before a byte left, filed as sent (504 "may have been
    placed"); one with a line break was refused while building each request, and kept for its whole lifetime."""
    issued = {"access_token": token, "token_type": "bearer", "expires_in": 86400}
    stack.genesys.inject("token", Fault(status=200, json_body=issued))

    refused = stack.post("/api/calls", CALL, headers={"Idempotency-Key": f"odd-token-{len(token)}"})
    retried = stack.post("/api/calls", CALL, headers={"Idempotency-Key": f"odd-token-{len(token)}"})

    assert refused.status_code == 503 and refused.json()["code"] == "genesys_unavailable", refused.text
    assert refused.json()["retryable"] is True
    assert token not in refused.text
    assert retried.status_code == 201, retried.text  # the next token is a good one: the odd one was not kept
    assert len(stack.creates()) == 1


def test_expired_token_is_refreshed_once_and_the_call_placed(stack: Stack) -> None:
    assert stack.post("/api/calls", CALL).status_code == 201
    stack.genesys.revoke_tokens()

    response = stack.post("/api/calls", OTHER_CALL)

    assert response.status_code == 201, response.text
    assert len(stack.genesys.requests("token")) == 2
    assert len(stack.genesys.org.conversations) == 2


def test_wrong_client_secret_is_genesys_auth_failed_after_one_reread(stack: Stack) -> None:
    stack.genesys.client_secret = "a-secret-the-vault-does-not-hold"

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 502
    problem = response.json()
    assert problem["code"] == "genesys_auth_failed"
    assert problem["upstream"]["code"] == "invalid_client"
    assert stack.vault.secret_reads("genesys-client-secret") == 2
    assert stack.creates() == []
    assert "a-secret-the-vault-does-not-hold" not in response.text


def test_a_refused_secret_costs_no_vault_read_or_login_per_request(stack: Stack) -> None:
    """A wrong secret in the vault (rotated in Genesys, not in the vault): every request read the vault again and
    sent two refused logins, one after another, however fast they came."""
    stack.genesys.client_secret = "a-secret-the-vault-does-not-hold"

    answers = [stack.post("/api/calls", {"to": f"+1212555010{n}"}) for n in range(5)]

    assert {a.json()["code"] for a in answers} == {"genesys_auth_failed"}
    assert len(stack.genesys.requests("token")) == 2  # the first call's two; the others had its refusal
    assert stack.vault.secret_reads("genesys-client-secret") == 2  # the first read and the one re-read


def test_a_secret_put_right_in_the_vault_is_read_once_the_refusal_has_lapsed(stack: Stack) -> None:
    clock = Clock(now=1000.0)
    vault = {"value": "a-secret-genesys-refuses", "cached": "a-secret-genesys-refuses", "reads": 0}

    def read_secret(refresh: bool) -> str:  # as KeyVaultSecrets: the cached value, read again when asked
        if refresh:
            vault["cached"], vault["reads"] = vault["value"], vault["reads"] + 1
        return vault["cached"]

    client = clocked_client(stack, clock, read_secret)
    for _ in range(2):
        with pytest.raises(Problem) as refused:
            client.token(Deadline(10))
        assert refused.value.code == "genesys_auth_failed"
    vault["value"] = CLIENT_SECRET  # the operator puts the right one in the vault
    clock.now += REFUSED_SECRET_SECONDS - 1
    with pytest.raises(Problem):
        client.token(Deadline(10))  # not yet: the remembered refusal, nothing sent
    assert (len(stack.genesys.requests("token")), vault["reads"]) == (2, 1)

    clock.now += 1
    assert client.token(Deadline(10))  # the cached secret refused once more, the vault read, the right one sent
    assert (len(stack.genesys.requests("token")), vault["reads"]) == (4, 2)


def test_requests_waiting_behind_a_refused_token_get_its_refusal_instead_of_asking_again(
    stack: Stack, configure
) -> None:
    """A wrong client secret: each request in turn held the token lock for two token requests and a vault read,
    so ten at once took ten times as long and sent the login host twenty refused requests."""
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+13175550100")  # no DID list to load first
    stack.genesys.client_secret = "a-secret-the-vault-does-not-hold"
    stack.genesys.inject("token", *[Fault(then_succeed=True, delay=0.3)] * 20)

    def call(n: int):
        return stack.session.post(stack.host.base_url + "/api/calls", json={"to": f"+1212555{n:04d}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(call, range(10)))

    assert {a.json()["code"] for a in answers} == {"genesys_auth_failed"}
    assert len(stack.genesys.requests("token")) <= 4  # the first request's two, and at most one more request's
    assert stack.creates() == []


def clocked_client(
    stack: Stack, clock: Clock, client_secret: Callable[[bool], str] = lambda refresh: CLIENT_SECRET
) -> GenesysClient:
    """A client of the stack's Genesys whose token lifetime runs on `clock`."""
    return GenesysClient(
        api_base_url=stack.genesys.base_url,
        login_base_url=stack.genesys.base_url,
        client_id=CLIENT_ID,
        client_secret=client_secret,
        clock=clock,
    )


def test_a_token_being_renewed_is_still_used_by_other_requests_until_it_expires(stack: Stack) -> None:
    """Renewal starts a margin before expiry, under the token lock: every API call, creates included, waited for
    a slow login though the token it held still worked."""
    clock = Clock(now=1000.0)
    client = clocked_client(stack, clock)
    first = client.token(Deadline(10))  # valid for the emulator's day; renewed from a minute before its end
    clock.now += 86_400 - 30
    stack.genesys.inject("token", Fault(then_succeed=True, delay=2.0))
    renewing = threading.Thread(target=client.token, args=(Deadline(10),))
    renewing.start()
    assert wait_for(lambda: len(stack.genesys.requests("token")) == 2, 5)  # the renewal is at the login host

    started = time.monotonic()
    during = client.token(Deadline(10))
    waited = time.monotonic() - started
    renewing.join(10)

    assert during == first and waited < 1.0, waited
    assert client.token(Deadline(10)) != first  # renewed


def test_a_failed_renewal_fails_no_request_while_the_token_it_renews_is_good(stack: Stack) -> None:
    """Renewal starts a minute before expiry: a login host failing then failed every request that tried it, though
    Genesys still took the token. They go on with it, and the next renewal comes a few seconds later."""
    clock = Clock(now=1000.0)
    client = clocked_client(stack, clock)
    first = client.token(Deadline(10))  # valid for the emulator's day; renewed from a minute before its end
    clock.now += 86_400 - 30
    stack.genesys.inject("token", Fault(status=500))  # not retried: one try

    created = client.create_call(
        DEMO_USER_ID, {"phoneNumber": "+12125550199", "callerId": "+13175550100"}, Deadline(10)
    )
    meanwhile = client.token(Deadline(10))  # within RENEWAL_RETRY_SECONDS: no second try at the login host
    clock.now += RENEWAL_RETRY_SECONDS

    assert created.conversation_id and meanwhile == first
    assert len(stack.genesys.requests("token")) == 2
    assert client.token(Deadline(10)) != first  # renewed on the next try
    clock.now += 86_400  # past the renewed token's end too, the login host failing: nothing to go on with
    stack.genesys.inject("token", Fault(status=500))
    with pytest.raises(Problem) as failed:
        client.token(Deadline(10))
    assert failed.value.code == "genesys_unavailable"


@pytest.mark.parametrize(
    ("fault", "short_failure"),
    [
        (Fault(then_succeed=True, delay=2.0), "genesys_timeout"),
        (Fault(status=429, retry_after=2, delay=0.5), "genesys_rate_limited"),  # a wait it had no time for
    ],
    ids=["timeout", "rate-limited"],
)
def test_a_token_fetch_that_ran_out_of_its_own_time_is_not_handed_to_a_request_with_more(
    stack: Stack, fault: Fault, short_failure: str
) -> None:
    """What the fetching request's own time shaped is not handed to the requests that waited: a fetch for a caller
    with 1 s left (a status poll) timed out, or met a 429 whose Retry-After it could not wait, and the create
    waiting behind it with 30 s got the same failure instead of a token."""
    client = GenesysClient(
        api_base_url=stack.genesys.base_url,
        login_base_url=stack.genesys.base_url,
        client_id=CLIENT_ID,
        client_secret=lambda refresh: CLIENT_SECRET,
        read_timeout=10.0,
    )
    stack.genesys.inject("token", fault)
    answers: dict[str, object] = {}

    def fetch(name: str, seconds: float) -> None:
        try:
            answers[name] = client.token(Deadline(seconds))
        except Problem as problem:
            answers[name] = problem.code

    short = threading.Thread(target=fetch, args=("short", 1.0))
    short.start()
    assert wait_for(lambda: len(stack.genesys.requests("token")) == 1, 5)  # it holds the lock, fetching
    fetch("long", 30.0)
    short.join(10)

    assert answers["short"] == short_failure
    assert isinstance(answers["long"], str) and answers["long"].lower().startswith("bearer ")


@pytest.mark.parametrize(
    "error", ["unauthorized_client", "invalid_grant", "unsupported_grant_type", "invalid_scope", "invalid_request"]
)
def test_any_oauth_error_of_the_token_endpoint_is_genesys_auth_failed(stack: Stack, error: str) -> None:
    # A client without the Client Credentials grant answers 400 unauthorized_client: a configuration fault (5xx),
    # not a request the caller should correct (422).
    stack.genesys.inject("token", Fault(status=400, json_body={"error": error, "error_description": "refused"}))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["code"] == "genesys_auth_failed"
    assert problem["retryable"] is False
    assert problem["upstream"]["code"] == error
    assert stack.creates() == []


def test_an_api_error_code_that_reads_like_an_oauth_error_is_not_an_auth_failure(stack: Stack) -> None:
    # Only the token endpoint answers OAuth's `error` field; an API ErrorBody's `code` is the API's own.
    stack.genesys.inject("create_call", Fault(status=400, code="invalid_request"))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "genesys_rejected_request"


# `az keyvault secret set --file new-secret.txt` (docs/deploy.md) stores the file's final newline with the value
@pytest.mark.parametrize("stored", ["rotated-secret", "rotated-secret\r\n"])
def test_rotated_secret_is_reread_once_and_the_call_placed(stack: Stack, stored: str) -> None:
    assert stack.post("/api/calls", CALL).status_code == 201
    stack.genesys.rotate_secret("rotated-secret")
    stack.genesys.revoke_tokens()
    stack.vault.set_secret("genesys-client-secret", stored)

    response = stack.post("/api/calls", OTHER_CALL)

    assert response.status_code == 201, response.text
    assert stack.vault.secret_reads("genesys-client-secret") == 2
    assert len(stack.genesys.org.conversations) == 2


def test_a_token_with_a_line_break_is_not_sent_and_never_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """requests refuses such a header while building the request, quoting it: the exception reached the log."""
    token = "tok\r\nen-secret-value"
    stack.genesys.inject(
        "token", Fault(status=200, json_body={"access_token": token, "token_type": "bearer", "expires_in": 3600})
    )

    response = stack.post("/api/calls", CALL)

    assert (response.status_code, response.json()["code"]) == (503, "genesys_unavailable"), response.text
    assert stack.creates() == []
    assert "en-secret-value" not in caplog.text and "en-secret-value" not in response.text


def test_a_token_request_that_timed_out_says_nothing_was_dialed(stack: Stack) -> None:
    """Its 504 hint said "Outcome unknown: the call may have been placed" though no create was ever sent."""
    stack.genesys.inject("token", *[Fault(drop=True)] * 3)

    response = stack.post("/api/calls", CALL)

    assert (response.status_code, response.json()["code"]) == (504, "genesys_timeout"), response.text
    assert "outcome unknown" not in response.json()["hint"].lower()
    assert response.json()["retryable"] is True  # nothing was sent: a retry may place it
    assert stack.creates() == []


@pytest.mark.parametrize(
    "location",
    [
        "ftp://elsewhere.example/",
        "/api/v2/conversations/calls/user/again",
        "http://127.0.0.1:99999/x",  # requests, reading it after sending, raised a plain ValueError
    ],
)
def test_a_create_answered_with_a_redirect_is_sent_once(stack: Stack, location: str) -> None:
    """Followed, a redirect sent the create again (31 times to its own URL); one requests could not follow was
    taken for "never sent" and the create sent 3 times. Genesys sends none: the answer is an unknown outcome."""
    stack.genesys.inject("create_call", Fault(status=307, headers={"Location": location}, json_body={}))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 503, response.text  # the redirect, as answered: its Location is never read
    assert "outcome unknown" in response.json()["hint"].lower()
    assert len(stack.creates()) == 1


def test_token_endpoint_5xx_is_retried_then_succeeds(stack: Stack) -> None:
    stack.genesys.inject("token", Fault(status=503))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 201, response.text
    assert len(stack.genesys.requests("token")) == 2


def test_token_endpoint_down_is_unavailable_and_nothing_created(stack: Stack) -> None:
    stack.genesys.inject("token", *[Fault(status=503)] * 3)

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 503
    assert response.json()["code"] == "genesys_unavailable"
    assert stack.creates() == []


def test_connection_refused_is_unavailable_and_nothing_created(stack: Stack, configure) -> None:
    configure(GENESYS_API_BASE_URL="http://127.0.0.1:9", GENESYS_LOGIN_BASE_URL="http://127.0.0.1:9")

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 503
    assert response.json()["code"] == "genesys_unavailable"
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("token_answer", "status", "calls"),
    [
        # a token with a lifetime that is no number: used (Genesys refuses this one, and a new one is asked for)
        ({"access_token": "not-a-token", "expires_in": "soon"}, 201, 1),
        ({"access_token": 12345, "expires_in": 3600}, 503, 0),  # no token at all: Genesys's failure, for now
    ],
    ids=["lifetime-a-word", "token-a-number"],
)
def test_a_token_answer_genesys_does_not_document_is_no_500(
    stack: Stack, configure, token_answer: dict, status: int, calls: int
) -> None:
    """A token answer whose lifetime was no number made every call a 500."""
    configure()  # a restart: no token cached
    stack.genesys.inject("token", Fault(status=200, json_body=token_answer))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == status, response.text
    assert len(stack.genesys.org.conversations) == calls


def test_a_conversation_genesys_does_not_document_is_no_500(stack: Stack) -> None:
    """A status read of an answer in another shape (a list, a participant that is no object, an errorInfo that is
    text) was a 500: a body that is no conversation is Genesys's failure, the rest is read as far as it goes."""
    response = stack.post("/api/calls", CALL)
    assert response.status_code == 201, response.text
    conversation_id = response.json()["conversationId"]
    stack.genesys.set_call_state(conversation_id, "disconnected", error_info="tel:+12125550199 unreachable")
    text_error_info = stack.get(f"/api/calls/{conversation_id}")
    stack.genesys.inject("get_call", Fault(status=200, raw_body=b'["not", "a", "conversation"]'))
    a_list = stack.get(f"/api/calls/{conversation_id}")
    odd_participants = {"id": conversation_id, "participants": ["agent", None, {"purpose": "customer", "state": 7}]}
    stack.genesys.inject("get_call", Fault(status=200, json_body=odd_participants))
    no_agent = stack.get(f"/api/calls/{conversation_id}")

    assert text_error_info.status_code == 200, text_error_info.text
    assert text_error_info.json()["status"] == "ended"  # an error it cannot read is no failure it can name
    assert (a_list.status_code, a_list.json()["code"]) == (503, "genesys_unavailable"), a_list.text
    assert (no_agent.status_code, no_agent.json()["code"]) == (403, "user_not_allowed"), no_agent.text


def test_a_client_secret_an_answer_echoes_in_an_object_is_withheld_however_json_escapes_it(
    stack: Stack, configure
) -> None:
    """An echo written as an object was serialized with its non-ASCII characters and quotes escaped, so the secret
    no longer matched and went into the problem: `emulator-cl\\u00efent-secret`."""
    secret = 'cl\u00efent-"secret"\\x'
    configure(KEY_VAULT_URL=None, GENESYS_CLIENT_SECRET=secret)
    echo = {"error": "invalid_request", "error_description": {"received": {"client_secret": secret}}}
    stack.genesys.inject("token", *[Fault(status=400, json_body=echo)] * 2)

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 502, response.text
    shown = json.dumps(response.json(), ensure_ascii=False)
    for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        assert form not in response.text and form not in shown
    assert "[withheld]" in shown
