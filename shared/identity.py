"""Azure SDK clients' bounded retries, and the platform's managed identity credential bounded alike.

Left to themselves, the SDKs retry for minutes, and azure-identity reads an identity endpoint's answer for up to
300 s a try: a request waiting on Key Vault, storage or a token for either would outlast its deadline. Bounded,
an outage answers 503 in seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.errors import Problem

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

BOUNDED_RETRIES: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2}


def managed_identity_credential(
    client_id: str | None, *, resource_id: str | None = None, connect_timeout: float, read_timeout: float
) -> TokenCredential:
    """The managed identity credential itself, with the timeouts of the requests it gets tokens for.

    `client_id` or `resource_id` names a user-assigned identity; neither, the system-assigned one.
    """
    from azure.identity import ManagedIdentityCredential  # imported on first use: it costs cold-start time

    return ManagedIdentityCredential(
        client_id=client_id,
        identity_config={"resource_id": resource_id} if resource_id else None,
        connection_timeout=connect_timeout,
        read_timeout=read_timeout,
        **BOUNDED_RETRIES,
    )


def default_credential(managed_identity_client_id: str | None = None) -> TokenCredential:
    """azure-identity's chain (a developer's az login, a service principal in AZURE_* variables), whose malformed
    variables it refuses as it is built (ValueError; for a certificate, OSError or TypeError): a configuration
    error naming them, not an internal one."""
    from azure.identity import DefaultAzureCredential

    try:
        if managed_identity_client_id:
            return DefaultAzureCredential(managed_identity_client_id=managed_identity_client_id)
        return DefaultAzureCredential()
    except (ValueError, TypeError, OSError):  # a certificate file not there (OSError), its password wrong (TypeError)
        raise Problem(
            "configuration_error",
            "The Azure identity settings (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST, "
            "AZURE_CLIENT_CERTIFICATE_PATH, AZURE_CLIENT_CERTIFICATE_PASSWORD) are malformed, or name a certificate "
            "that cannot be read.",
            hint="Correct or remove them: a tenant id is a GUID or a domain name, the authority a https:// host, the "
            "certificate a readable PEM or PKCS12 file.",
        ) from None
