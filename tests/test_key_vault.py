"""The client secret through the real azure-identity and azure-keyvault-secrets clients."""

from __future__ import annotations

import threading
import time

import pytest

from emulators.azure import ManagedIdentityEmulator, VaultFault
from shared import secrets
from shared.services import services
from tests.conftest import CLIENT_SECRET, Stack, answering_identity_endpoint, wait_for

CALL = {"to": "+12125550199"}


def test_secret_is_read_through_managed_identity_once(stack: Stack) -> None:
    before = len(stack.identity.requests())  # earlier tests' tokens (storage ones included) are not this one's

    answers = [stack.post("/api/calls", {"to": f"+1212555010{i}"}) for i in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert stack.vault.secret_reads("genesys-client-secret") == 1
    assert {r["resource"] for r in stack.identity.requests()[before:]} == {"https://vault.azure.net"}


def test_user_assigned_identity_is_chosen_by_azure_client_id(stack: Stack, configure) -> None:
    configure(AZURE_CLIENT_ID="0d9b7a4e-1111-4c2d-9e8f-123456789abc")
    before = len(stack.identity.requests())

    assert stack.post("/api/calls", CALL).status_code == 201

    assert stack.identity.requests()[before]["client_id"] == "0d9b7a4e-1111-4c2d-9e8f-123456789abc"


def test_missing_secret_is_secret_not_found(stack: Stack, configure) -> None:
    configure(GENESYS_CLIENT_SECRET_NAME="no-such-secret")

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 500
    assert response.json()["code"] == "secret_not_found"
    assert "no-such-secret" in response.json()["detail"]
    assert stack.genesys.requests() == []


def test_a_secret_created_after_it_was_found_missing_is_read_without_a_restart(
    stack: Stack, configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template leaves the secret for the operator to set (`az keyvault secret set`, as the hint says); a
    call or readiness probe before that must not leave the instance refusing every call until it restarts, and
    while it is missing it must not cost a Key Vault read per call."""
    # Caller IDs from settings: the secret is first needed by the create's token, not by a DID list load.
    configure(GENESYS_CLIENT_SECRET_NAME="set-later", CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+13175550100")

    answers = [stack.post("/api/calls", CALL).json()["code"] for _ in range(3)]
    assert answers == ["secret_not_found"] * 3
    looked_up = [r for r in stack.vault.requests() if r["path"].startswith("/secrets/set-later") and r["authorized"]]
    assert [r["status"] for r in looked_up] == [404]  # one read found it missing; the next calls knew

    stack.vault.set_secret("set-later", CLIENT_SECRET)
    monkeypatch.setattr(secrets, "MISSING_SECRET_RECHECK_SECONDS", 0.0)  # as if the interval had passed
    response = stack.post("/api/calls", CALL)

    assert response.status_code == 201, response.text
    assert stack.vault.secret_reads("set-later") == 1  # its one read since it exists


def test_forbidden_vault_is_key_vault_forbidden(stack: Stack) -> None:
    stack.vault.inject(VaultFault(status=403))

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 500
    problem = response.json()
    assert problem["code"] == "key_vault_forbidden"
    assert "Key Vault Secrets User" in problem["hint"]
    assert stack.genesys.requests() == []


def test_vault_down_is_key_vault_unavailable_with_retry_after(stack: Stack) -> None:
    stack.vault.inject(*[VaultFault(status=503)] * 6)

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 503
    assert response.json()["code"] == "key_vault_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert stack.genesys.requests() == []


def test_an_identity_endpoint_that_died_is_key_vault_unavailable_not_forbidden(stack: Stack, configure) -> None:
    """The platform's identity endpoint really gone (a brief outage): retry later, not "grant the role", which
    the credential chain around the managed identity credential would have said."""
    identity = ManagedIdentityEmulator().start()
    configure(**identity.environment())
    identity.stop()
    started = time.monotonic()

    response = stack.post("/api/calls", CALL)

    assert time.monotonic() - started < 8  # in seconds, inside the call's deadline, not after the SDK's backoff
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "key_vault_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert stack.genesys.requests() == []


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (503, "application/json", b'{"error": "busy"}'),
        (502, "text/html", b"<html>Bad Gateway</html>"),
        (503, "application/json", b'{"error": "busy", "message": "retry in 400 ms"}'),  # no identity refused (400)
    ],
    ids=["json-503", "html-502", "503-saying-400"],
)
def test_an_identity_endpoint_that_fails_for_now_is_key_vault_unavailable(
    stack: Stack, configure, status: int, content_type: str, body: bytes
) -> None:
    """A 5xx from the identity endpoint is an outage too: azure-identity calls a JSON one unavailable and trips
    over an HTML one (JSONDecodeError), and neither is "grant the role" or an internal error."""

    with answering_identity_endpoint(status, content_type, body) as endpoint:
        configure(**endpoint)
        started = time.monotonic()
        response = stack.post("/api/calls", CALL)

    assert time.monotonic() - started < 8
    assert (response.status_code, response.json()["code"]) == (503, "key_vault_unavailable"), response.text
    assert stack.genesys.requests() == []


def test_an_identity_the_app_does_not_have_is_key_vault_forbidden_naming_azure_client_id(
    stack: Stack, configure
) -> None:
    """AZURE_CLIENT_ID naming an identity not attached to the app: App Service's endpoint answers 400, which was
    a retryable 503 key_vault_unavailable telling the operator to check the vault."""
    body = b'{"statusCode": 400, "message": "Unable to load the proper Managed Identity.", "correlationId": "c"}'
    with answering_identity_endpoint(400, "application/json", body) as endpoint:
        configure(**endpoint, AZURE_CLIENT_ID="11111111-2222-3333-4444-555555555555")
        response = stack.post("/api/calls", CALL)

    problem = response.json()
    assert (response.status_code, problem["code"]) == (500, "key_vault_forbidden"), response.text
    assert "AZURE_CLIENT_ID" in problem["hint"] and problem["retryable"] is False
    assert stack.genesys.requests() == []


def test_one_vault_hiccup_is_retried_by_the_sdk(stack: Stack) -> None:
    stack.vault.inject(VaultFault(status=500))

    assert stack.post("/api/calls", CALL).status_code == 201


def test_local_secret_setting_skips_the_vault(stack: Stack, configure) -> None:
    configure(KEY_VAULT_URL=None, GENESYS_CLIENT_SECRET=CLIENT_SECRET)

    assert stack.post("/api/calls", CALL).status_code == 201
    assert stack.vault.secret_reads() == 0


def test_no_secret_text_in_any_answer(stack: Stack) -> None:
    stack.genesys.client_secret = "something-else"  # force invalid_client: the secret must still not leak

    response = stack.post("/api/calls", CALL)

    assert response.json()["code"] == "genesys_auth_failed"
    assert CLIENT_SECRET not in response.text


def test_a_cached_secret_is_answered_while_another_is_read_slowly(stack: Stack) -> None:
    """One lock served every secret: the cached client secret (and with it every Genesys token renewal) waited
    behind a slow re-read of another, such as the webhook secret."""
    stack.vault.set_secret("slowly-read-secret", "a value")  # a name no setting reads
    vault = services().secrets
    assert vault.get("genesys-client-secret") == CLIENT_SECRET  # read once: cached
    stack.vault.inject(VaultFault(status=None, delay=2.0))
    slow = threading.Thread(target=vault.get_optional, args=("slowly-read-secret",), kwargs={"refresh": True})
    slow.start()
    assert wait_for(lambda: stack.vault.pending_faults() == 0, 5)  # the slow read is at the vault

    started = time.monotonic()
    cached = vault.get("genesys-client-secret")
    waited = time.monotonic() - started
    slow.join(10)

    assert cached == CLIENT_SECRET
    assert waited < 1.0, waited


def test_requests_waiting_on_a_failed_vault_read_get_its_failure_not_a_read_each(stack: Stack, configure) -> None:
    """On a cold instance with Key Vault hanging up, the requests queued behind the Genesys token's lock each read
    the vault again in turn (its failure may pass, so it was not handed on): the sixth of six answered after 31 s,
    past CALL_DEADLINE_SECONDS, after 18 vault requests. A vault's failure is no request's own: they all get it."""
    # a cold instance, nothing read yet; caller IDs from the settings (the default): no DID list loaded first
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+13175550100")
    stack.vault.inject(*[VaultFault(status=None, delay=0.5, drop=True)] * 30)
    together = threading.Barrier(6)
    answers: list = []

    def call(index: int) -> None:
        together.wait(10)
        answers.append(stack.post("/api/calls", {"to": f"+1212555030{index}"}))

    callers = [threading.Thread(target=call, args=(index,)) for index in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)

    assert len(answers) == 6
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(503, "key_vault_unavailable")}
    assert 30 - stack.vault.pending_faults() <= 3  # one read: the SDK's three attempts


def test_re_reads_of_a_secret_asked_at_once_are_one_read(stack: Stack) -> None:
    """A missing secret is looked for again by every request once MISSING_SECRET_RECHECK_SECONDS have passed: each
    read the vault in turn, the sixth of six after six reads."""
    stack.vault.set_secret("reread-secret", "a value")  # a name no setting reads
    vault = services().secrets
    assert vault.get_optional("reread-secret") == "a value"
    before = stack.vault.secret_reads("reread-secret")
    stack.vault.inject(VaultFault(status=None, delay=0.5))  # the first re-read is slow: the others ask meanwhile
    together = threading.Barrier(6)
    values: list = []

    def reread() -> None:
        together.wait(10)
        values.append(vault.get_optional("reread-secret", refresh=True))

    readers = [threading.Thread(target=reread) for _ in range(6)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(30)

    assert values == ["a value"] * 6
    # one read, and a second for those that asked after it began (its value may predate their asking)
    assert stack.vault.secret_reads("reread-secret") - before <= 2
