"""The app on identity-based storage, as the azd template deploys it: no connection string, no shared key.

Azurite serves HTTPS with `--oauth basic` and takes the managed-identity emulator's Entra-shaped tokens; the
app's Table and Queue clients and the local host's queue trigger connect through `AzureWebJobsStorage__*`
service URIs with `__credential=managedidentity`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emulators.azure import ManagedIdentityEmulator
from emulators.azurite import Azurite
from shared.services import forget_services
from tests.conftest import Stack, answering_identity_endpoint
from tests.test_async_mode import ASYNC, follow

CLIENT_ID = str(uuid.uuid4())  # the user-assigned identity's client id (AzureWebJobsStorage__clientId)
STORAGE_AUDIENCE = "https://storage.azure.com"


@pytest.fixture(scope="module")
def oauth_azurite(emulators: tuple[Any, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    vault = emulators[2]
    tls = vault.issue_server_certificate(Path(tmp_path_factory.mktemp("azurite-tls")))
    with Azurite(oauth_tls=tls) as running:
        yield running


@pytest.fixture
def identity_stack(stack: Stack, configure, oauth_azurite: Azurite) -> Stack:
    configure(
        AzureWebJobsStorage=None,
        DO_NOT_CALL_TABLE=None,
        ASYNC_RETRY_AFTER_SECONDS="1",
        **oauth_azurite.identity_settings(CLIENT_ID),
    )
    return stack


def storage_token_requests(stack: Stack) -> list[dict]:
    return [r for r in stack.identity.requests() if (r["resource"] or "").rstrip("/") == STORAGE_AUDIENCE]


def test_readiness_names_the_storage_mode(identity_stack: Stack) -> None:
    response = identity_stack.get("/api/health/ready")

    checks = {check["name"]: check for check in response.json()["checks"]}
    assert checks["idempotency_store"]["status"] == "ok", checks["idempotency_store"]
    assert "managed identity" in checks["idempotency_store"]["detail"]
    assert all(r["client_id"] == CLIENT_ID for r in storage_token_requests(identity_stack))


def test_a_keyed_call_is_placed_once_and_replayed(identity_stack: Stack) -> None:
    key = {"Idempotency-Key": f"identity-{uuid.uuid4()}"}

    first = identity_stack.post("/api/calls", {"to": "+12125550199"}, headers=key)
    again = identity_stack.post("/api/calls", {"to": "(212) 555-0199"}, headers=key)

    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(identity_stack.creates()) == 1
    assert storage_token_requests(identity_stack), "the Table client never asked the identity for a token"


def test_identical_keyless_calls_inside_the_window_are_one(identity_stack: Stack) -> None:
    first = identity_stack.post("/api/calls", {"to": "+12125550198"})
    again = identity_stack.post("/api/calls", {"to": "+12125550198"})

    assert again.json()["conversationId"] == first.json()["conversationId"]
    assert len(identity_stack.creates()) == 1


def test_asynchronous_mode_queues_and_places_the_call(identity_stack: Stack) -> None:
    accepted = identity_stack.post("/api/calls", {"to": "+12125550197"}, headers=ASYNC)

    final, _ = follow(identity_stack, accepted)

    assert final.status_code == 201, final.text
    assert final.json()["to"] == "+12125550197"
    assert len(identity_stack.creates()) == 1


def test_unreachable_identity_storage_answers_503_and_dials_nothing(identity_stack: Stack, configure) -> None:
    configure(
        AzureWebJobsStorage=None,
        DO_NOT_CALL_TABLE=None,
        AzureWebJobsStorage__credential="managedidentity",
        AzureWebJobsStorage__clientId=CLIENT_ID,
        AzureWebJobsStorage__tableServiceUri="https://127.0.0.1:9/devstoreaccount1",
        AzureWebJobsStorage__queueServiceUri="https://127.0.0.1:9/devstoreaccount1",
    )

    response = identity_stack.post("/api/calls", {"to": "+12125550196"}, headers={"Idempotency-Key": "no-store"})

    assert response.status_code == 503
    assert response.json()["code"] == "idempotency_store_unavailable"
    assert identity_stack.creates() == []


def test_an_identity_endpoint_that_died_answers_503_in_seconds_and_dials_nothing(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """No token for storage (the platform's identity endpoint is gone for a moment): the claim cannot be written,
    so nothing is dialed, and the answer comes at once, not after azure-identity's own retries."""
    dead = ManagedIdentityEmulator().start()
    configure(
        AzureWebJobsStorage=None,
        DO_NOT_CALL_TABLE=None,
        **oauth_azurite.identity_settings(CLIENT_ID),
        **dead.environment(),
    )
    dead.stop()
    started = time.monotonic()

    response = identity_stack.post("/api/calls", {"to": "+12125550195"}, headers={"Idempotency-Key": "no-token"})

    assert time.monotonic() - started < 3  # 5 s with azure-identity's own retries, under 1 s with the bounded ones
    assert (response.status_code, response.json()["code"]) == (503, "idempotency_store_unavailable")
    assert identity_stack.creates() == []


@contextmanager
def identity_behind_an_error_page(configure, azurite: Azurite) -> Iterator[None]:
    """Identity-based storage whose identity endpoint answers an HTML 502 (a gateway's error page)."""
    with answering_identity_endpoint(502, "text/html", b"<html>Bad Gateway</html>") as endpoint:
        configure(AzureWebJobsStorage=None, DO_NOT_CALL_TABLE=None, **azurite.identity_settings(CLIENT_ID), **endpoint)
        yield


def test_an_identity_endpoint_answering_an_error_page_is_503_not_an_internal_error(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """azure-identity trips over an HTML 502 from the identity endpoint (JSONDecodeError): still an outage."""
    with identity_behind_an_error_page(configure, oauth_azurite):
        response = identity_stack.post("/api/calls", {"to": "+12125550194"}, headers={"Idempotency-Key": "html"})

    assert (response.status_code, response.json()["code"]) == (503, "idempotency_store_unavailable")
    assert identity_stack.creates() == []


def test_an_identity_endpoint_answering_an_error_page_is_an_outage_of_the_queues_too(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """The queues read an SDK error only: the same error page made their readiness check an internal_error."""
    with identity_behind_an_error_page(configure, oauth_azurite):
        response = identity_stack.get("/api/health/ready")

    queues = next(check for check in response.json()["checks"] if check["name"] == "queues")
    assert (response.status_code, queues["status"], queues["code"]) == (503, "failed", "idempotency_store_unavailable")


RESOURCE_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-api"


def uris(azurite: Azurite, spelling: str = "ServiceUri") -> dict[str, str]:
    return {f"AzureWebJobsStorage__{s.lower()}{spelling}": azurite.service_uri(s) for s in ("Queue", "Table")}


def identity_asked_for_a_call(stack: Stack, configure, azurite: Azurite, to: str, **settings: str | None) -> list[dict]:
    """Place a call with identity-based storage set by `settings` (and the service URIs): the storage token
    requests it made, each naming the identity it asked for."""
    configure(AzureWebJobsStorage=None, DO_NOT_CALL_TABLE=None, **settings, **uris(azurite))
    before = len(storage_token_requests(stack))

    response = stack.post("/api/calls", {"to": to})

    assert response.status_code == 201, response.text
    asked = storage_token_requests(stack)[before:]
    assert asked, "the Table client never asked the identity for a token"
    return asked


def test_a_user_assigned_identity_named_by_its_resource_id_is_the_one_asked_for(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """`__managedIdentityResourceId` is one of Azure's documented ways to name the identity: it was ignored, the
    system-assigned identity was asked for instead, and every call answered 503 while the host's triggers worked."""
    asked = identity_asked_for_a_call(
        identity_stack,
        configure,
        oauth_azurite,
        "+12125550193",
        AzureWebJobsStorage__credential="managedidentity",
        AzureWebJobsStorage__managedIdentityResourceId=RESOURCE_ID,
    )

    assert all((r["mi_res_id"], r["client_id"]) == (RESOURCE_ID, None) for r in asked)


def test_a_client_id_without_a_credential_setting_is_the_identity_used(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """The host reads `__clientId` alone as the managed identity's client id (DefaultAzureCredential's): the app
    dropped it and, with no AZURE_CLIENT_ID, asked for the system-assigned identity."""
    asked = identity_asked_for_a_call(
        identity_stack,
        configure,
        oauth_azurite,
        "+12125550192",
        AZURE_CLIENT_ID=None,
        AzureWebJobsStorage__clientId=CLIENT_ID,
    )

    assert all(r["client_id"] == CLIENT_ID for r in asked)


def test_setting_names_are_read_in_any_case_as_the_host_reads_them(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """The Functions host reads settings whatever their case: `__TableServiceUri` served its triggers, while the app
    found no storage, kept its claims in memory, and a retry with the same key after a restart dialed again."""
    configure(
        AzureWebJobsStorage=None,
        DO_NOT_CALL_TABLE=None,
        AzureWebJobsStorage__Credential="managedidentity",
        AzureWebJobsStorage__ClientId=CLIENT_ID,
        **uris(oauth_azurite, "ServiceURI"),
    )
    key = {"Idempotency-Key": f"cased-{uuid.uuid4()}"}

    first = identity_stack.post("/api/calls", {"to": "+12125550191"}, headers=key)
    forget_services()  # a restart: a claim in memory would be gone
    again = identity_stack.post("/api/calls", {"to": "+12125550191"}, headers=key)

    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(identity_stack.creates()) == 1


def test_a_resource_id_without_a_credential_setting_and_a_stray_tenant_are_read_as_the_host_reads_them(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """The host asks the managed identity for a resource id without `__credential`, and ignores `__tenantId`
    beside a managed identity: both were refused."""
    asked = identity_asked_for_a_call(
        identity_stack,
        configure,
        oauth_azurite,
        "+12125550189",
        AzureWebJobsStorage__managedIdentityResourceId=RESOURCE_ID,
        AzureWebJobsStorage__tenantId=str(uuid.uuid4()),
    )

    assert all(r["mi_res_id"] == RESOURCE_ID for r in asked)


@pytest.mark.parametrize(
    ("named", "principal"),
    [
        ("AZURE_TENANT_ID", {"AZURE_TENANT_ID": "not a tenant!", "AZURE_CLIENT_SECRET": "a developer's"}),
        (
            "AZURE_CLIENT_CERTIFICATE_PATH",
            {"AZURE_TENANT_ID": str(uuid.uuid4()), "AZURE_CLIENT_CERTIFICATE_PATH": "/nowhere/principal.pem"},
        ),
    ],
    ids=["tenant", "certificate"],
)
def test_a_malformed_service_principal_for_the_default_credential_is_a_configuration_error(
    identity_stack: Stack, configure, oauth_azurite: Azurite, named: str, principal: dict[str, str]
) -> None:
    """azure-identity refuses a service principal's malformed AZURE_TENANT_ID, or a certificate file that is not
    there, when the credential is built: every call answered 500 internal_error, and readiness failed whole,
    naming no setting."""
    configure(
        AzureWebJobsStorage=None, DO_NOT_CALL_TABLE=None, AZURE_CLIENT_ID=CLIENT_ID, **principal, **uris(oauth_azurite)
    )

    call = identity_stack.post("/api/calls", {"to": "+12125550188"})
    ready = identity_stack.get("/api/health/ready")

    assert (call.status_code, call.json()["code"]) == (500, "configuration_error"), call.text
    assert named in call.json()["detail"]
    assert ready.status_code == 503 and named in ready.text, ready.text
    assert identity_stack.creates() == []


def test_a_service_principal_secret_for_storage_is_refused_by_name(
    identity_stack: Stack, configure, oauth_azurite: Azurite
) -> None:
    """The host can connect with a service principal's secret; the app cannot, and asked another identity."""
    configure(
        AzureWebJobsStorage=None,
        DO_NOT_CALL_TABLE=None,
        AzureWebJobsStorage__tenantId=str(uuid.uuid4()),
        AzureWebJobsStorage__clientId=CLIENT_ID,
        AzureWebJobsStorage__clientSecret="sp-secret-value",
        **uris(oauth_azurite),
    )

    response = identity_stack.post("/api/calls", {"to": "+12125550190"})

    assert (response.status_code, response.json()["code"]) == (500, "configuration_error"), response.text
    assert "AzureWebJobsStorage__clientSecret names a service principal's secret" in response.json()["detail"]
    assert "sp-secret-value" not in response.text
    assert identity_stack.creates() == []
