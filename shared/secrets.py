"""Secrets from Azure Key Vault through managed identity, cached in memory.

In steady state a call costs no Key Vault request: the value is read once and re-read only when the
caller says the cached one stopped working (`refresh=True`, e.g. after a rotation).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from typing import TYPE_CHECKING, Protocol

from shared.errors import Problem
from shared.identity import BOUNDED_RETRIES, default_credential, managed_identity_credential
from shared.logs import get_logger
from shared.waiting import FailureForWaiters

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

log = get_logger(__name__)

MISSING_SECRET_RECHECK_SECONDS = 10.0
# How azure-identity reports the identity endpoint's 400 (App Service: "Unable to load the proper Managed Identity"
# for a client id the app has no identity with). Another wording is read as an outage, as before.
_IDENTITY_REFUSED = re.compile(r"Token request error: \(\w+\) 400,")  # "(invalid_scope) 400, Unable to ..."
CONNECT_TIMEOUT_SECONDS = 3  # Key Vault's, and its token's (the read timeout is KEY_VAULT_READ_TIMEOUT_SECONDS)


class SecretSource(Protocol):
    def get(self, name: str, *, refresh: bool = False) -> str: ...

    def get_optional(self, name: str, *, refresh: bool = False) -> str | None:
        """None when the secret does not exist (cached too: a missing secret costs no request per call)."""


class StaticSecrets:
    """Secrets given as settings (local runs, or `@Microsoft.KeyVault(...)` references resolved by the platform)."""

    def __init__(self, values: dict[str, str | None]) -> None:
        self._values = values

    def get(self, name: str, *, refresh: bool = False) -> str:
        value = self.get_optional(name)
        if not value:
            raise Problem("secret_not_found", f"No value is configured for secret {name!r}.")
        return value

    def get_optional(self, name: str, *, refresh: bool = False) -> str | None:
        return self._values.get(name) or None


class KeyVaultSecrets:
    """Key Vault reads with the platform's managed identity where it offers one, else azure-identity's chain.

    The managed identity credential itself, not the chain around it: the chain reports an identity endpoint that
    cannot be reached as an authentication failure ("grant the role", not retryable), the credential as a
    connection failure (Key Vault unavailable, retry), and it tries no other credential first on a cold start.
    """

    def __init__(
        self,
        vault_url: str,
        *,
        verify_challenge_resource: bool = True,
        read_timeout: float = 5.0,
        managed_identity: bool = False,
        client_id: str | None = None,
    ) -> None:
        self._vault_url = vault_url
        self._managed_identity = managed_identity
        self._client_id = client_id  # a user-assigned identity's (AZURE_CLIENT_ID); None: the system-assigned one
        self._verify_challenge_resource = verify_challenge_resource
        self._read_timeout = read_timeout
        self._client: SecretClient | None = None
        self._cache: dict[str, str | None] = {}  # None: the vault has no such secret
        self._read_at: dict[str, float] = {}
        self._lock = threading.Lock()  # guards the client and the per-name locks
        # One read in flight per secret, and its failure for the requests that waited on it
        self._reading: dict[str, tuple[threading.Lock, FailureForWaiters]] = {}

    def _secret_client(self) -> SecretClient:
        # Imported here: the Azure SDK costs cold-start time that local-secret deployments never need.
        from azure.core.credentials import TokenCredential
        from azure.keyvault.secrets import SecretClient

        with self._lock:
            if self._client is None:
                credential: TokenCredential = (
                    managed_identity_credential(
                        self._client_id, connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=self._read_timeout
                    )
                    if self._managed_identity
                    else default_credential()  # a developer's az login; honours AZURE_CLIENT_ID too
                )
                self._client = SecretClient(
                    self._vault_url,
                    credential,
                    verify_challenge_resource=self._verify_challenge_resource,
                    connection_timeout=CONNECT_TIMEOUT_SECONDS,
                    read_timeout=self._read_timeout,
                    **BOUNDED_RETRIES,
                )
            return self._client

    def get(self, name: str, *, refresh: bool = False) -> str:
        """A secret that must exist. Found missing, it is looked for again `MISSING_SECRET_RECHECK_SECONDS` later:
        set in the vault after a first call, it needs no restart, and a missing one costs no read per call."""
        found_missing_at = self._read_at.get(name, -math.inf) if self._cache.get(name, "") is None else math.inf
        recheck = time.monotonic() - found_missing_at >= MISSING_SECRET_RECHECK_SECONDS
        value = self.get_optional(name, refresh=refresh or recheck)
        if value is None:
            raise Problem("secret_not_found", f"Key Vault has no secret named {name!r}.")
        return value

    def get_optional(self, name: str, *, refresh: bool = False) -> str | None:
        """A secret, None when the vault has none. A cached one is answered at once: it never waits behind a read
        of another (the webhook secrets are re-read every 5 minutes, and a slow vault held the client secret, and
        with it every Genesys token renewal, behind them)."""
        if not refresh and name in self._cache:
            return self._cache[name]
        with self._lock:
            reading, failure = self._reading.setdefault(name, (threading.Lock(), FailureForWaiters()))
        asked_at = failure.asked()
        with reading:  # one read of a secret in flight: a cold start under load costs one Key Vault request
            # A read that began after this request asked is as fresh as one of its own: re-reads asked at once (a
            # missing secret looked for again by every request) are one or two reads, not one each in turn
            read_since = self._read_at.get(name, -math.inf) >= asked_at
            if name not in self._cache or (refresh and not read_since):
                started = time.monotonic()  # the clock of `failure.asked()`
                self._cache[name] = failure.attempt(asked_at, lambda: self._read(name))
                self._read_at[name] = started
            return self._cache[name]

    def _read(self, name: str) -> str | None:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.identity import CredentialUnavailableError

        try:
            value = self._secret_client().get_secret(name).value
        except ResourceNotFoundError:
            return None
        except (CredentialUnavailableError, json.JSONDecodeError) as error:
            if _IDENTITY_REFUSED.search(str(error)):
                raise Problem(  # as docs/errors.md files a wrong AZURE_CLIENT_ID: not an outage, not retried
                    "key_vault_forbidden",
                    "The managed identity endpoint refused a token (400): the app has no identity with the client id "
                    "asked for.",
                    hint="Set AZURE_CLIENT_ID to the client id of a user-assigned identity attached to the function "
                    "app, or remove it to use the system-assigned identity.",
                ) from None
            # The identity endpoint answered, but with a failure (a 5xx, or an HTML error page): for now.
            log.warning("Managed identity token unavailable: %s", type(error).__name__)
            raise Problem("key_vault_unavailable", "No managed identity token for Key Vault.", retry_after=5) from None
        except ValueError as error:  # after JSONDecodeError, one too
            if self._verify_challenge_resource and "does not match the requested domain" in str(error):
                raise Problem(
                    "configuration_error",
                    "Key Vault's authentication challenge names a resource other than KEY_VAULT_URL's host.",
                    hint="For a local emulated vault, set KEY_VAULT_VERIFY_CHALLENGE_RESOURCE=false (not honoured "
                    "where WEBSITE_SKU, WEBSITE_INSTANCE_ID or CONTAINER_NAME is set); else check KEY_VAULT_URL.",
                ) from None
            # Any other: a malformed answer (a Retry-After no date, a bare challenge): the vault's side, for now
            log.warning("Key Vault answered what could not be read: %s", type(error).__name__)
            raise Problem("key_vault_unavailable", "Key Vault's answer could not be read.", retry_after=5) from None
        except ClientAuthenticationError as error:
            log.warning("Key Vault authentication failed: %s", type(error).__name__)
            raise Problem(
                "key_vault_forbidden",
                "The function could not get a managed identity token for Key Vault.",
            ) from None
        except HttpResponseError as error:
            if error.status_code in (401, 403):
                raise Problem("key_vault_forbidden", f"Key Vault refused to read secret {name!r}.") from None
            if error.status_code == 400:  # not the vault being down: retrying cannot help
                raise Problem(
                    "configuration_error",
                    f"Key Vault refused the request for secret {name!r} as malformed (400).",
                    hint="Check the secret's name setting and KEY_VAULT_URL.",
                ) from None
            raise Problem(
                "key_vault_unavailable", f"Key Vault answered {error.status_code} reading {name!r}.", retry_after=5
            ) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            log.warning("Key Vault unreachable: %s", type(error).__name__)
            raise Problem("key_vault_unavailable", "Key Vault could not be reached.", retry_after=5) from None
        if value is None or not value.strip():  # never a client secret or an HMAC key
            raise Problem(
                "configuration_error",
                f"Key Vault secret {name!r} is empty or only whitespace.",
                hint=f"Set the value of Key Vault secret {name!r}.",
            )
        log.info("Read secret %s from Key Vault", name)
        # As an inline setting is: `az keyvault secret set --file` stores a file's final newline with the value.
        return value.strip()
