"""Application settings, read from the environment and validated once.

A wrong setting is reported as `configuration_error` naming the setting, at the first request and by
`/api/health/ready`, instead of surfacing later as a confusing Genesys or Key Vault failure.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared import phone
from shared.errors import Problem
from shared.ids import is_uuid
from shared.outbound import is_loopback
from shared.policy.call_cap import MAX_LIMIT, MAX_WINDOW_SECONDS
from shared.policy.calling_hours import CallingHours, Window, parse_window
from shared.storage import StorageAccount

# SDK region names (PureCloudRegionHosts) to region domains; see reference/genesys-cloud-api.md.
REGION_DOMAINS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "eu_west_1": "mypurecloud.ie",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "eu_central_1": "mypurecloud.de",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "ap_northeast_2": "apne2.pure.cloud",
    "eu_west_2": "euw2.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "us_east_2": "use2.us-gov-pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "eu_central_2": "euc2.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
}
CALLER_ID_SOURCES = ("settings", "genesys", "both")
DEFAULT_CALLING_HOURS = "08:00-21:00"  # TCPA: no solicitation before 8 am or after 9 pm, callee's local time
STORAGE_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
MAX_WINDOW_HOURS = MAX_WINDOW_SECONDS // 3600
MIN_WINDOW_HOURS = 1 / 60
# Event Grid redelivers a whole batch for up to 24 h when one of its events failed; each event already placed
# must still find its answer then, or it dials again. Shorter retention is refused, not taken.
MIN_RETENTION_SECONDS = 24 * 3600.0
DEFAULT_DO_NOT_CALL_TABLE = "donotcall"
MAX_CALL_DEADLINE_SECONDS = 100.0  # Power Automate gives up at 120 s; the store's requests need the rest
MIN_TIMEOUT_SECONDS = 0.1  # requests and azure-core refuse a zero timeout with a ValueError, an internal_error
MAX_RETRY_AFTER_SECONDS = 3600.0
# What the Functions host reads to tell it runs in Azure (azure-functions-host, EnvironmentExtensions): App Service
# plans set WEBSITE_INSTANCE_ID; Linux Consumption and Flex Consumption, the template's plan, leave it out and set
# CONTAINER_NAME (and, on Flex, WEBSITE_SKU=FlexConsumption).
AZURE_HOST_VARIABLES = ("WEBSITE_INSTANCE_ID", "CONTAINER_NAME", "WEBSITE_SKU")
APP_SERVICE_VARIABLES = ("WEBSITE_INSTANCE_ID", "WEBSITE_SKU")  # App Service's own: dev containers set CONTAINER_NAME
# An identity-based connection's properties (`<connection>__<property>`) that the Functions host reads, in any case
# of their names: the app reads the same ones, so that its tables are the ones the host's triggers use.
STORAGE_PROPERTIES = (
    "accountName",
    "tableServiceUri",
    "queueServiceUri",
    "blobServiceUri",  # the host's own; the app uses no blobs
    "credential",
    "clientId",
    "managedIdentityResourceId",
    "clientSecret",  # a service principal's, with tenantId and clientId: refused unless __credential=managedidentity
)
IDENTITY_RESOURCE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+",
    re.IGNORECASE,
)
SERVICE_ACCOUNT = re.compile(r"[^@\s,]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
TOPIC_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*")
PLACEHOLDER = re.compile(r"<[^>]*>")  # `<your-vault>`, `<OAuth client id ...>` in local.settings.json.example
TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no", ""}


@dataclass(frozen=True)
class Settings:
    api_base_url: str
    login_base_url: str
    client_id: str
    key_vault_url: str | None
    client_secret_name: str
    client_secret: str | None = field(repr=False)  # secrets never in a repr: a log line or a traceback's locals
    key_vault_verify_challenge_resource: bool
    key_vault_read_timeout_seconds: float
    call_user_id: str | None
    allowed_user_ids: frozenset[str] | None  # lowercase, GENESYS_CALL_USER_ID included; None: any ("*")
    allowed_queue_ids: frozenset[str] | None  # lowercase; None: any ("*")
    default_caller_id: str | None
    allowed_caller_ids: frozenset[str]
    caller_id_source: str
    default_phone_region: str
    allow_premium_rate: bool
    caller_id_cache_seconds: float
    call_deadline_seconds: float
    connect_timeout_seconds: float
    read_timeout_seconds: float
    webhook_secret_name: str
    webhook_secret_name_set: bool  # WEBHOOK_SECRET_NAME given: the webhook route is meant to be in use
    webhook_secrets: tuple[str, ...] = field(repr=False)  # from settings: current, then previous during a rotation
    # Status callbacks' own signing secret (a value, or a Key Vault secret's name); neither: the webhook secret
    status_callback_secret: str | None = field(repr=False)
    status_callback_secret_name: str | None
    # IDENTITY_ENDPOINT and IDENTITY_HEADER set: the platform (App Service, Functions) offers a managed identity
    managed_identity: bool
    azure_client_id: str | None  # AZURE_CLIENT_ID: the user-assigned identity to use
    sns_topic_arns: frozenset[str]  # SNS topics whose messages /api/webhooks/sns trusts; empty: none
    pubsub_audience: str | None  # the `aud` Pub/Sub push tokens must carry
    pubsub_service_accounts: frozenset[str]  # lowercase: the service accounts whose pushes are trusted
    storage: StorageAccount | None  # AzureWebJobsStorage: idempotency records, asynchronous jobs
    in_azure: bool  # a hosting plan's variable is set (AZURE_HOST_VARIABLES): it runs and replaces several instances
    idempotency_table: str
    duplicate_window_seconds: float
    idempotency_retention_seconds: float
    idempotency_wait_seconds: float
    async_retry_after_seconds: int
    stale_claim_seconds: float  # a claim without an outcome this old lost its owner
    webhook_require_timestamp: bool
    max_events_per_delivery: int
    allowed_countries: frozenset[str] | None  # None: every country
    calling_hours: CallingHours
    do_not_call_table: str
    calls_per_number_limit: int | None  # None: no cap
    calls_per_number_window_seconds: float
    status_callback_allowed_hosts: frozenset[str]  # lowercase; empty: statusCallbackUrl is refused
    allow_insecure_http: bool  # GENESYS_ALLOW_INSECURE_HTTP: plain-HTTP Genesys and vault emulators
    allow_loopback_callbacks: bool  # and plain-HTTP callbacks to loopback, never where Azure runs the app (in_azure)
    status_poll_seconds: float
    status_poll_max_seconds: float
    status_watch_max_seconds: float
    status_callback_retry_seconds: float

    @property
    def do_not_call_table_named(self) -> bool:
        """DO_NOT_CALL_TABLE names a table other than the default: it must exist (the app never makes it)."""
        return self.do_not_call_table != DEFAULT_DO_NOT_CALL_TABLE

    @property
    def uses_genesys_caller_ids(self) -> bool:
        return self.caller_id_source in ("genesys", "both")

    @property
    def uses_setting_caller_ids(self) -> bool:
        return self.caller_id_source in ("settings", "both")


# host names and IPv4 (no leading dot), and IPv6 (urlsplit drops its [])
_HOST = re.compile(r"[0-9a-z_-][0-9a-z._-]*|[0-9a-f.]*:[0-9a-f:.]*", re.IGNORECASE)
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,118}")  # 127 in Key Vault, less "-previous" for rotations


def _config_error(setting: str, problem: str) -> Problem:
    return Problem("configuration_error", f"Setting {setting} {problem}.")


# What App Service leaves in a setting whose Key Vault reference it could not resolve (and what a local run sees)
UNRESOLVED_REFERENCE = "@microsoft.keyvault("


def _raw(env: Mapping[str, str], name: str, *, secret: bool = False) -> str | None:
    """The setting as given, None when unset or empty; a placeholder left from the example file is refused.

    A secret may hold `<` and `>` anywhere: only a value that is wholly `<...>` is a placeholder there.
    """
    value = env.get(name) or None
    if value is None:
        return None
    placeholder = PLACEHOLDER.fullmatch(value.strip()) if secret else PLACEHOLDER.search(value)
    if placeholder or value.strip().lower().startswith("your-"):
        raise _config_error(name, "still holds a placeholder from local.settings.json.example; set the real value")
    if value.strip().lower().startswith(UNRESOLVED_REFERENCE):
        raise _config_error(
            name,
            "holds a Key Vault reference (@Microsoft.KeyVault(...)) that was not resolved: in Azure the identity the "
            "site's keyVaultReferenceIdentity names (the template sets the app's own) needs Key Vault Secrets User on "
            "that vault and the reference must name an existing secret (the app's Environment variables page says "
            "why it failed); locally, references are never resolved: set the value",
        )
    return value


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = (_raw(env, name) or "").strip()
    return value or default


def _secret(env: Mapping[str, str], name: str, *, free_text: bool = True) -> str | None:
    """A secret setting: empty is unset, but only whitespace is a mistake, never a key. A `free_text` secret
    (a password, an HMAC key) may hold `<...>`; a structured one (a connection string) may not."""
    value = _raw(env, name, secret=free_text)
    if value is not None and not value.strip():
        raise _config_error(name, "is only whitespace; set the secret or leave the setting empty")
    return value.strip() if value else None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    word = _text(env, name)
    if word is None:
        return default
    if word.lower() in TRUE_WORDS:
        return True
    if word.lower() in FALSE_WORDS:
        return False
    raise _config_error(name, "must be true or false")


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0, maximum: float = math.inf
) -> float:
    value = _text(env, name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise _config_error(name, "must be a number of seconds") from None
    if not minimum <= seconds <= maximum or seconds == math.inf:
        upper = "" if maximum == math.inf else f" and at most {maximum:g}"
        raise _config_error(name, f"must be a finite number of seconds, at least {minimum:g}{upper}")
    return seconds


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int = 999_999_999) -> int:
    value = _text(env, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdecimal() and len(value) <= 9) or not 1 <= int(value) <= maximum:
        raise _config_error(name, f"must be a whole number from 1 to {maximum}")
    return int(value)


def _webhook_secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """The inline webhook secrets, current first. A previous one alone would be taken for the current one: the
    status callbacks signed with the old key, the vault's current secret shadowed."""
    current, previous = _secret(env, "WEBHOOK_SECRET"), _secret(env, "WEBHOOK_SECRET_PREVIOUS")
    if previous and not current:
        raise _config_error("WEBHOOK_SECRET_PREVIOUS", "needs WEBHOOK_SECRET, the secret it is the previous one of")
    return tuple(secret for secret in (current, previous) if secret)


def _secret_name(env: Mapping[str, str], name: str, default: str | None, *, vault: bool) -> str | None:
    """A Key Vault secret name: 1-127 letters, digits and dashes (the vault answers any other 400, which would
    read as the vault being down). `-previous` is appended to the webhook secret's, so it must leave room.
    Checked only where a `vault` is used: a name left over without one is read by nothing."""
    value = _text(env, name, default)
    if vault and value is not None and not _SECRET_NAME.fullmatch(value):
        raise _config_error(name, "must be a Key Vault secret name: 1 to 118 letters, digits and dashes")
    return value


def region_domain(region: str) -> str:
    """Accept a region domain (`usw2.pure.cloud`) or an SDK-style name (`us_west_2`)."""
    key = region.strip().lower().replace("-", "_")
    if key in REGION_DOMAINS:
        return REGION_DOMAINS[key]
    domain = region.strip().lower()
    if domain in REGION_DOMAINS.values():
        return domain
    raise _config_error(
        "GENESYS_REGION",
        "is not a Genesys Cloud region; use a domain such as mypurecloud.com or a name such as us_east_1",
    )


def _url(name: str, url: str, schemes: tuple[str, ...], *, origin_only: bool = False) -> str:
    """An absolute URL with one of `schemes`, a host, a valid port if any and no user-info (credentials);
    `origin_only`: nothing after the host and port, for a service the app adds its own paths to (a secret's own
    URL given as KEY_VAULT_URL asked the vault for .../secrets/x/secrets/x, read as "no such secret")."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError unless a number from 0 to 65535
    except ValueError:
        raise _config_error(name, "is not a valid URL (check the host and port)") from None
    if parts.scheme not in schemes:
        raise _config_error(name, "must be an absolute " + " or ".join(f"{scheme}://" for scheme in schemes) + " URL")
    if "@" in parts.netloc:
        raise _config_error(
            name, "must not hold credentials (user-info before '@'): keep secrets in their own settings"
        )
    if not parts.hostname:
        raise _config_error(name, "has no host")
    if not _HOST.fullmatch(parts.hostname):  # a space or other character no host name or address holds
        raise _config_error(name, "has a host name with characters no host name holds")
    if port == 0:
        raise _config_error(name, "has port 0; use a port from 1 to 65535")
    if origin_only and (parts.path.strip("/") or parts.query or parts.fragment or url.endswith(("?", "#"))):
        raise _config_error(
            name, f"must be the service's address alone ({parts.scheme}://{parts.netloc}): no path, query or fragment"
        )
    return url


def _account_key_is_base64(connection_string: str) -> bool:
    """Whether the connection string's AccountKey, if it has one, decodes (an account key is 64 bytes in base64)."""
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "accountkey":
            try:  # as the SDK decodes it, from bytes: what is not base64 (spaces, quotes of any kind) is passed over
                base64.b64decode(value.encode())
            except ValueError:  # binascii.Error: a length no key has
                return False
    return True


def _optional_url(
    env: Mapping[str, str], name: str, schemes: tuple[str, ...], *, origin_only: bool = False
) -> str | None:
    url = _text(env, name)
    return None if url is None else _url(name, url, schemes, origin_only=origin_only)


def _base_url(env: Mapping[str, str], name: str, default: str | None, allow_http: bool) -> str:
    url = _text(env, name, default)
    if url is None:
        raise _config_error("GENESYS_REGION", "is required (or set GENESYS_API_BASE_URL and GENESYS_LOGIN_BASE_URL)")
    _url(name, url, ("http", "https"), origin_only=True)
    parts = urlsplit(url)
    if parts.scheme == "http" and not allow_http:
        raise _config_error(name, "uses http://; set GENESYS_ALLOW_INSECURE_HTTP=true for a local emulator only")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        # The client secret and the bearer tokens would cross the network in clear text.
        raise _config_error(name, "uses http:// to a host other than this machine; use https://")
    return url.rstrip("/")


def storage_account(env: Mapping[str, str], connection: str = "AzureWebJobsStorage") -> StorageAccount | None:
    """The storage a connection setting names, read as the Functions host reads it: the setting itself as a
    connection string, else identity-based `<connection>__tableServiceUri` and `__queueServiceUri`, or
    `<connection>__accountName` for an account in Azure's public cloud (whose service URIs it names)."""
    env = _as_the_host_reads(env, connection)
    connection_string = _secret(env, connection, free_text=False)
    if connection_string:
        if not _account_key_is_base64(connection_string):  # the SDK's signing failure reads as an outage
            raise _config_error(connection, "holds an AccountKey that is not a base64 key (cut short when copied?)")
        return StorageAccount(connection_string=connection_string, setting=connection)
    table_uri = _optional_url(env, f"{connection}__tableServiceUri", ("https",))
    queue_uri = _optional_url(env, f"{connection}__queueServiceUri", ("https",))
    account = _text(env, f"{connection}__accountName")
    if account is not None and table_uri is None and queue_uri is None:
        if not STORAGE_ACCOUNT_NAME.fullmatch(account):
            raise _config_error(f"{connection}__accountName", "must be a storage account name: 3-24 a-z and 0-9")
        table_uri, queue_uri = (f"https://{account}.{service}.core.windows.net" for service in ("table", "queue"))
    if table_uri is None and queue_uri is None:
        return None
    if table_uri is None or queue_uri is None:
        missing = "tableServiceUri" if table_uri is None else "queueServiceUri"
        raise _config_error(f"{connection}__{missing}", "is required with identity-based storage (tables and queues)")
    credential = (_text(env, f"{connection}__credential") or "").lower()
    if credential not in ("", "managedidentity"):
        raise _config_error(
            f"{connection}__credential", "must be managedidentity (or unset for DefaultAzureCredential)"
        )
    secret = f"{connection}__clientSecret"
    if credential != "managedidentity" and secret in env:  # the host's service principal, with tenantId, clientId
        raise _config_error(
            secret,
            "names a service principal's secret, which the app does not connect to storage with: use the managed "
            f"identity ({connection}__credential=managedidentity), or unset for DefaultAzureCredential (az login)",
        )
    client_id = _client_id(env, f"{connection}__clientId")
    resource_id = _identity_resource_id(env, f"{connection}__managedIdentityResourceId", client_id)
    return StorageAccount(
        table_uri=table_uri.rstrip("/"),
        queue_uri=queue_uri.rstrip("/"),
        # A resource id names a managed identity: DefaultAzureCredential takes none in Python, so it is asked itself
        managed_identity=credential == "managedidentity" or resource_id is not None,
        client_id=client_id,
        resource_id=resource_id,
        setting=connection,
    )


def _durable_storage(env: Mapping[str, str]) -> StorageAccount | None:
    """AzureWebJobsStorage; None (in-memory duplicate protection) only off App Service. Where App Service runs the
    app (APP_SERVICE_VARIABLES: its plans and Flex Consumption), several instances run and replace each other: a
    claim in one's memory would let another dial the same request, so no call is placed without the shared tables.
    (Linux Consumption is told only by CONTAINER_NAME, which dev containers set too: there readiness fails.)"""
    storage = storage_account(env)
    if storage is None and any(_text(env, name) for name in APP_SERVICE_VARIABLES):
        raise _config_error(
            "AzureWebJobsStorage",
            "is not set in a form the app reads (a connection string; __accountName; or __tableServiceUri and "
            "__queueServiceUri), and in Azure duplicate protection in memory would cover one instance of several",
        )
    return storage


def _as_the_host_reads(env: Mapping[str, str], connection: str) -> dict[str, str]:
    """A connection's settings under their documented names, whatever the case they were written in: the host
    reads `AzureWebJobsStorage__TableServiceUri` for its triggers, and an app that missed it would keep its claims in
    memory. Two spellings of one name with different values are refused: which one the host takes is not said."""
    documented = {name.lower(): name for name in (connection, *(f"{connection}__{p}" for p in STORAGE_PROPERTIES))}
    found: dict[str, str] = {}
    for name, value in env.items():
        spelled = documented.get(name.lower())
        if spelled is None or not value:
            continue
        if found.setdefault(spelled, value) != value:
            raise _config_error(spelled, "is set twice, in two spellings of its name, to different values")
    return found


def _identity_resource_id(env: Mapping[str, str], name: str, client_id: str | None) -> str | None:
    """A user-assigned identity named by its resource id, the other way the host takes besides `__clientId`."""
    resource_id = _text(env, name)
    if resource_id is None:
        return None
    if not IDENTITY_RESOURCE_ID.fullmatch(resource_id):
        raise _config_error(
            name,
            "must be a user-assigned identity's resource id: /subscriptions/<id>/resourceGroups/<group>/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
        )
    if client_id is not None:
        raise _config_error(name, "is set beside __clientId: both name the identity; keep one")
    return resource_id


def _list(env: Mapping[str, str], name: str, pattern: re.Pattern[str], rule: str) -> frozenset[str]:
    """A comma-separated setting whose every item matches `pattern`; empty when unset."""
    items = frozenset(item.strip() for item in (_text(env, name) or "").split(",") if item.strip())
    if not all(pattern.fullmatch(item) for item in items):
        raise _config_error(name, rule)
    return items


def _caller_id(text: str, setting: str, region: str) -> str:
    try:
        return phone.normalize(text, region).e164
    except Problem as error:
        reason = str(error.extensions.get("reason", "not a dialable number")).replace("_", " ")
        raise _config_error(
            setting, f"holds a value that is not a valid phone number ({reason}): write each as + and its country code"
        ) from None


def _client_id(env: Mapping[str, str], name: str) -> str | None:
    """A user-assigned identity's client id: another value made every token request fail, read as the vault or
    storage being down (a retryable 503) rather than as this setting."""
    client_id = _text(env, name)
    if client_id is not None and not is_uuid(client_id):
        raise _config_error(name, "must be the client id (a UUID) of a user-assigned identity attached to the app")
    return client_id


def _user_id(env: Mapping[str, str]) -> str | None:
    user_id = _text(env, "GENESYS_CALL_USER_ID")
    if user_id is not None and not is_uuid(user_id):
        raise _config_error("GENESYS_CALL_USER_ID", "must be a Genesys user id (a UUID)")
    return user_id


def _genesys_ids(env: Mapping[str, str], name: str) -> frozenset[str] | None:
    """A comma-separated list of Genesys ids, lowercased; None for `*` (any id)."""
    items = [item.strip() for item in (_text(env, name) or "").split(",") if item.strip()]
    if items == ["*"]:
        return None
    if not all(is_uuid(item) for item in items):
        raise _config_error(name, "must be * or Genesys ids (UUIDs) separated by commas")
    return frozenset(item.lower() for item in items)


def _with(ids: frozenset[str] | None, extra: str | None) -> frozenset[str] | None:
    return ids if ids is None or extra is None else ids | {extra.lower()}


def _table_name(env: Mapping[str, str], setting: str, default: str) -> str:
    name = _text(env, setting, default) or ""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", name):
        raise _config_error(setting, "must be 3 to 63 letters and digits, starting with a letter")
    return name


def _countries(env: Mapping[str, str]) -> frozenset[str] | None:
    text = _text(env, "ALLOWED_COUNTRIES")
    if text is None:
        return None
    countries = frozenset(item.strip().upper() for item in text.split(",") if item.strip())
    if not countries or not all(re.fullmatch(r"[A-Z]{2}", c) and phone.is_known_region(c) for c in countries):
        raise _config_error("ALLOWED_COUNTRIES", "must be a comma-separated list of ISO 3166 country codes (US,GB)")
    return countries


def _window(setting: str, text: str) -> Window | None:
    try:
        return parse_window(text)
    except ValueError as error:
        raise _config_error(setting, str(error)) from None


def _calling_hours(env: Mapping[str, str]) -> CallingHours:
    """`CALLING_HOURS` (default 08:00-21:00, `off`) and `CALLING_HOURS_BY_COUNTRY` (`US=08:00-21:00;GB=off`)."""
    default = _window("CALLING_HOURS", _text(env, "CALLING_HOURS", DEFAULT_CALLING_HOURS) or "")
    by_country: dict[str, Window | None] = {}
    for entry in (_text(env, "CALLING_HOURS_BY_COUNTRY") or "").split(";"):
        if not entry.strip():
            continue
        country, _, window = entry.partition("=")
        country = country.strip().upper()
        if not (re.fullmatch(r"[A-Z]{2}", country) and phone.is_known_region(country)) or not window:
            raise _config_error("CALLING_HOURS_BY_COUNTRY", "must be COUNTRY=HH:MM-HH:MM entries separated by ';'")
        if country in by_country:  # the last would win unseen: US=08:00-20:00;US=off turned the check off
            raise _config_error("CALLING_HOURS_BY_COUNTRY", f"names {country} twice; give each country once")
        by_country[country] = _window("CALLING_HOURS_BY_COUNTRY", window)
    return CallingHours(default, by_country)


def _hours(env: Mapping[str, str], name: str, default: float) -> float:
    text = _text(env, name)
    try:
        hours = default if text is None else float(text)
    except ValueError:
        hours = -1.0
    if not MIN_WINDOW_HOURS <= hours <= MAX_WINDOW_HOURS:  # shorter, a cap that holds nothing back
        raise _config_error(name, f"must be a number of hours from 1/60 (a minute) to {MAX_WINDOW_HOURS} (a year)")
    return hours


def _hosts(env: Mapping[str, str], name: str) -> frozenset[str]:
    """Comma-separated host names (no scheme, port or path), lowercased."""
    hosts = frozenset(item.strip().lower().rstrip(".") for item in (_text(env, name) or "").split(",") if item.strip())
    if not all(HOST_NAME.fullmatch(host) for host in hosts):
        raise _config_error(name, "must be host names separated by commas (no scheme, port or path)")
    return hosts


def _cap(env: Mapping[str, str]) -> int | None:
    return _positive_int(env, "CALLS_PER_NUMBER_LIMIT", 0, MAX_LIMIT) or None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `configuration_error` naming the first bad one."""
    env = os.environ if env is None else env
    allow_http = _flag(env, "GENESYS_ALLOW_INSECURE_HTTP", False)
    region = _text(env, "GENESYS_REGION")
    domain = region_domain(region) if region else None

    client_id = _text(env, "GENESYS_CLIENT_ID")
    if client_id is None:
        raise _config_error("GENESYS_CLIENT_ID", "is required")
    key_vault_url = _optional_url(env, "KEY_VAULT_URL", ("https",), origin_only=True)
    client_secret = _secret(env, "GENESYS_CLIENT_SECRET")
    if key_vault_url is None and client_secret is None:
        raise _config_error("KEY_VAULT_URL", "or GENESYS_CLIENT_SECRET is required")

    default_region = (_text(env, "DEFAULT_PHONE_REGION", "US") or "US").upper()
    if not phone.is_known_region(default_region):
        raise _config_error("DEFAULT_PHONE_REGION", "must be an ISO country code such as US or GB")

    caller_id_source = (_text(env, "CALLER_ID_SOURCE", "settings") or "settings").lower()
    if caller_id_source not in CALLER_ID_SOURCES:
        raise _config_error("CALLER_ID_SOURCE", f"must be one of {', '.join(CALLER_ID_SOURCES)}")
    allowed = frozenset(
        _caller_id(item, "ALLOWED_CALLER_IDS", default_region)
        for item in (_text(env, "ALLOWED_CALLER_IDS") or "").split(",")
        if item.strip()
    )
    default_caller = _text(env, "DEFAULT_CALLER_ID")

    # Emulator settings that a hosting plan's variables overrule (CONTAINER_NAME too: Linux Consumption sets only
    # that; the local stack clears them): unverified, the vault URL's host could name another resource in its
    # challenge (Azure Resource Manager) and be sent the identity's token for it; a loopback callback would be a
    # signed POST to a service of the instance itself.
    in_azure = any(_text(env, name) for name in AZURE_HOST_VARIABLES)
    call_user_id = _user_id(env)
    call_deadline = _seconds(env, "CALL_DEADLINE_SECONDS", 30.0, minimum=1, maximum=MAX_CALL_DEADLINE_SECONDS)
    return Settings(
        api_base_url=_base_url(env, "GENESYS_API_BASE_URL", domain and f"https://api.{domain}", allow_http),
        login_base_url=_base_url(env, "GENESYS_LOGIN_BASE_URL", domain and f"https://login.{domain}", allow_http),
        client_id=client_id,
        key_vault_url=key_vault_url,
        client_secret_name=_secret_name(
            env, "GENESYS_CLIENT_SECRET_NAME", "genesys-client-secret", vault=key_vault_url is not None
        )
        or "",
        client_secret=client_secret,
        key_vault_verify_challenge_resource=in_azure or _flag(env, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", True),
        # At most 30: the SDK tries 3 times, and a call or a readiness probe waits for all of them
        key_vault_read_timeout_seconds=_seconds(
            env, "KEY_VAULT_READ_TIMEOUT_SECONDS", 5.0, minimum=MIN_TIMEOUT_SECONDS, maximum=30
        ),
        call_user_id=call_user_id,
        allowed_user_ids=_with(_genesys_ids(env, "ALLOWED_USER_IDS"), call_user_id),
        allowed_queue_ids=_genesys_ids(env, "ALLOWED_QUEUE_IDS"),
        default_caller_id=_caller_id(default_caller, "DEFAULT_CALLER_ID", default_region) if default_caller else None,
        allowed_caller_ids=allowed,
        caller_id_source=caller_id_source,
        default_phone_region=default_region,
        allow_premium_rate=_flag(env, "ALLOW_PREMIUM_RATE", False),
        caller_id_cache_seconds=_seconds(env, "CALLER_ID_CACHE_SECONDS", 300.0),
        call_deadline_seconds=call_deadline,
        connect_timeout_seconds=_seconds(env, "GENESYS_CONNECT_TIMEOUT_SECONDS", 3.05, minimum=MIN_TIMEOUT_SECONDS),
        read_timeout_seconds=_seconds(env, "GENESYS_READ_TIMEOUT_SECONDS", 10.0, minimum=MIN_TIMEOUT_SECONDS),
        webhook_secret_name=_secret_name(env, "WEBHOOK_SECRET_NAME", "webhook-secret", vault=key_vault_url is not None)
        or "",
        webhook_secret_name_set=_text(env, "WEBHOOK_SECRET_NAME") is not None,
        sns_topic_arns=_list(
            env,
            "SNS_TOPIC_ARNS",
            TOPIC_ARN,
            "must be SNS topic ARNs (arn:aws:sns:<region>:<account>:<topic>) separated by commas",
        ),
        pubsub_audience=_text(env, "PUBSUB_AUDIENCE"),
        pubsub_service_accounts=frozenset(
            email.lower()
            for email in _list(
                env, "PUBSUB_SERVICE_ACCOUNTS", SERVICE_ACCOUNT, "must be service-account emails separated by commas"
            )
        ),
        webhook_secrets=_webhook_secrets(env),
        status_callback_secret=_secret(env, "STATUS_CALLBACK_SECRET"),
        status_callback_secret_name=_secret_name(
            env, "STATUS_CALLBACK_SECRET_NAME", None, vault=key_vault_url is not None
        ),
        managed_identity=bool(_text(env, "IDENTITY_ENDPOINT") and _text(env, "IDENTITY_HEADER")),
        azure_client_id=_client_id(env, "AZURE_CLIENT_ID"),
        storage=_durable_storage(env),
        in_azure=in_azure,
        idempotency_table=_table_name(env, "IDEMPOTENCY_TABLE", "callidempotency"),
        duplicate_window_seconds=_seconds(env, "DUPLICATE_WINDOW_SECONDS", 60.0),
        idempotency_retention_seconds=_seconds(
            env, "IDEMPOTENCY_RETENTION_SECONDS", MIN_RETENTION_SECONDS, minimum=MIN_RETENTION_SECONDS
        ),
        # At most 100: Power Automate gives up on an action after 120 s, and a waiting request holds a thread
        idempotency_wait_seconds=_seconds(env, "IDEMPOTENCY_WAIT_SECONDS", 25.0, maximum=100),
        async_retry_after_seconds=max(
            1, int(_seconds(env, "ASYNC_RETRY_AFTER_SECONDS", 2, maximum=MAX_RETRY_AFTER_SECONDS))
        ),
        # One whole create (the deadline) plus the store's own retries: only then is the owner presumed dead.
        stale_claim_seconds=_seconds(env, "IDEMPOTENCY_STALE_SECONDS", call_deadline + 30.0, minimum=1),
        webhook_require_timestamp=_flag(env, "WEBHOOK_REQUIRE_TIMESTAMP", False),
        max_events_per_delivery=_positive_int(env, "MAX_EVENTS_PER_DELIVERY", 50),
        allowed_countries=_countries(env),
        calling_hours=_calling_hours(env),
        do_not_call_table=_table_name(env, "DO_NOT_CALL_TABLE", DEFAULT_DO_NOT_CALL_TABLE),
        calls_per_number_limit=_cap(env),
        calls_per_number_window_seconds=3600 * _hours(env, "CALLS_PER_NUMBER_WINDOW_HOURS", 24.0),
        status_callback_allowed_hosts=_hosts(env, "STATUS_CALLBACK_ALLOWED_HOSTS"),
        allow_insecure_http=allow_http,
        allow_loopback_callbacks=allow_http and not in_azure,
        status_poll_seconds=_seconds(env, "STATUS_POLL_SECONDS", 5.0, minimum=1),
        status_poll_max_seconds=_seconds(env, "STATUS_POLL_MAX_SECONDS", 60.0, minimum=1),
        status_watch_max_seconds=_seconds(env, "STATUS_WATCH_MAX_SECONDS", 7200.0, minimum=1),
        status_callback_retry_seconds=_seconds(env, "STATUS_CALLBACK_RETRY_SECONDS", 5.0, minimum=1),
    )
