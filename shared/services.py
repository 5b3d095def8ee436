"""The composition root: builds the settings and clients once per worker process.

Built lazily on the first request, so a bad setting becomes a `configuration_error` answer instead of a
worker that fails to start, and is cached so a warm instance reuses its pooled connections and tokens.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from shared.async_requests import QUEUE_NAME as REQUEST_QUEUE
from shared.async_requests import AsyncRequests
from shared.caller_ids import CallerIds, RefreshingValue
from shared.calls import CallService
from shared.config import Settings, load_settings
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import GenesysClient
from shared.idempotency import Idempotency, MemoryStore, Store, TableStore
from shared.logs import get_logger
from shared.policy import CallPolicy
from shared.policy.call_cap import CallCap
from shared.policy.do_not_call import DoNotCallList, DoNotCallRegistry, MemoryDoNotCallList, TableDoNotCallList
from shared.secrets import KeyVaultSecrets, SecretSource, StaticSecrets
from shared.status_callbacks import QUEUE_NAME as STATUS_QUEUE
from shared.status_callbacks import (
    MemorySubscriptionRows,
    Poster,
    StatusWatcher,
    Subscriptions,
    TableSubscriptionRows,
    WatchSettings,
)
from shared.storage import QueueSender
from shared.webhooks import GoogleKeys, PubSubVerifier, Senders, SignatureVerifier, SnsVerifier
from shared.webhooks.shared_secrets import SharedSecrets
from shared.webhooks.signed import DELIVERY_PREFIXES

log = get_logger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    secrets: SecretSource
    genesys: GenesysClient
    caller_ids: CallerIds
    calls: CallService
    webhooks: Senders
    async_requests: AsyncRequests
    idempotency: Idempotency
    do_not_call: DoNotCallRegistry
    status_watcher: StatusWatcher
    subscriptions: Subscriptions
    call_user_state: RefreshingValue[Any] | None  # GENESYS_CALL_USER_ID's `state`, cached for readiness
    queues: tuple[QueueSender, ...]  # the status-watch and call-request queues (none without storage)

    @property
    def idempotency_store(self) -> Store:
        return self.idempotency.store


_BUILDING = threading.Lock()


def services() -> Services:
    """The services, built by the first request; requests that arrive meanwhile wait for that build.

    A cold instance is sent many requests at once (`perInstanceConcurrency`): built by each of them, every build
    fetched its own Genesys token and read Key Vault, and their first imports of the Azure SDK raced (a thread
    can be handed a module another is still importing).
    """
    with _BUILDING:
        return _build()


def forget_services() -> None:
    """Build anew on the next request, as after a restart (tests change settings this way)."""
    with _BUILDING:
        if _build.cache_info().currsize:
            _build().idempotency.late_writes.close()
        _build.cache_clear()


@functools.cache
def _build() -> Services:
    settings = load_settings()
    secrets: SecretSource
    if settings.key_vault_url:
        secrets = KeyVaultSecrets(
            settings.key_vault_url,
            verify_challenge_resource=settings.key_vault_verify_challenge_resource,
            read_timeout=settings.key_vault_read_timeout_seconds,
            managed_identity=settings.managed_identity,
            client_id=settings.azure_client_id,
        )
    else:
        secrets = StaticSecrets({settings.client_secret_name: settings.client_secret})
    genesys = GenesysClient(
        api_base_url=settings.api_base_url,
        login_base_url=settings.login_base_url,
        client_id=settings.client_id,
        client_secret=lambda refresh: secrets.get(settings.client_secret_name, refresh=refresh),
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
    )
    caller_ids = CallerIds(settings, genesys)
    store = _idempotency_store(settings)
    idempotency = Idempotency(
        store,
        wait_seconds=settings.idempotency_wait_seconds,
        stale_seconds=settings.stale_claim_seconds,
        retention_seconds=settings.idempotency_retention_seconds,
        duplicate_window_seconds=settings.duplicate_window_seconds,
        # A signed delivery's answer outlasts its sender's redeliveries: GitHub's Redeliver (3 days; Enterprise
        # Server: 7) under an untimed signature, Svix's Resend with the same message id, a Pub/Sub seek
        long_kept_keys=DELIVERY_PREFIXES,
    )
    policy = _call_policy(settings, store)
    subscriptions = Subscriptions(
        TableSubscriptionRows(settings.storage.table(settings.idempotency_table))
        if settings.storage
        else MemorySubscriptionRows(),
        settings.status_callback_allowed_hosts,
        allow_insecure_loopback=settings.allow_loopback_callbacks,
    )
    status_queue, request_queue = (
        (QueueSender(settings.storage, STATUS_QUEUE), QueueSender(settings.storage, REQUEST_QUEUE))
        if settings.storage
        else (None, None)
    )
    # What senders sign with is checked with the webhook secrets; our status callbacks are signed with their own
    # secret where one is set (so no callback receiver holds a key that signs webhooks to us), else the webhook's.
    webhook_secrets = SharedSecrets(lambda refresh: _webhook_secrets(settings, secrets, refresh))
    callback_secrets = (
        SharedSecrets(lambda refresh: [status_callback_secret(settings, secrets, refresh)])
        if settings.status_callback_secret or settings.status_callback_secret_name
        else webhook_secrets
    )
    watcher = StatusWatcher(
        store,
        status_queue,
        genesys,
        Poster(callback_secrets.current, loopback_allowed=settings.allow_loopback_callbacks),
        subscriptions,
        _watch_settings(settings),
    )
    calls = CallService(settings, caller_ids, genesys, idempotency, policy, watcher)
    signatures = Senders(
        SignatureVerifier(
            webhook_secrets,
            require_timestamp=settings.webhook_require_timestamp,
        ),
        SnsVerifier(settings.sns_topic_arns, retention_seconds=settings.idempotency_retention_seconds),
        PubSubVerifier(settings.pubsub_audience, settings.pubsub_service_accounts, GoogleKeys()),
    )
    async_requests = AsyncRequests(
        store,
        request_queue,
        retention_seconds=settings.idempotency_retention_seconds,
        retry_after_seconds=settings.async_retry_after_seconds,
        stale_seconds=settings.stale_claim_seconds,
        wait_seconds=settings.idempotency_wait_seconds,
        duplicate_window_seconds=settings.duplicate_window_seconds,
        watch_recovered=calls.watch_recovered,
    )
    call_user_state = None
    if settings.call_user_id is not None:
        user_id, deadline = settings.call_user_id, settings.call_deadline_seconds
        call_user_state = RefreshingValue(
            lambda: genesys.get_user(user_id, Deadline(deadline)).get("state"), settings.caller_id_cache_seconds
        )
    return Services(
        settings,
        secrets,
        genesys,
        caller_ids,
        calls,
        signatures,
        async_requests,
        idempotency,
        DoNotCallRegistry(policy.do_not_call, settings.default_phone_region),
        watcher,
        subscriptions,
        call_user_state,
        tuple(queue for queue in (status_queue, request_queue) if queue is not None),
    )


WEBHOOK_REMEDIATION = (
    "Set WEBHOOK_SECRET, or create the Key Vault secret named by WEBHOOK_SECRET_NAME (default webhook-secret) "
    "with a non-blank value, readable by the function's identity."
)


def status_callback_secret(settings: Settings, secrets: SecretSource, refresh: bool = False) -> str:
    """STATUS_CALLBACK_SECRET, else the Key Vault secret STATUS_CALLBACK_SECRET_NAME names."""
    if settings.status_callback_secret:
        return settings.status_callback_secret
    if not settings.key_vault_url:
        raise Problem(
            "configuration_error",
            "Setting STATUS_CALLBACK_SECRET_NAME names a Key Vault secret, but KEY_VAULT_URL is not set.",
            hint="Set KEY_VAULT_URL, or STATUS_CALLBACK_SECRET itself.",
        )
    try:
        return secrets.get(settings.status_callback_secret_name or "", refresh=refresh)
    except Problem as problem:
        if problem.code == "secret_not_found":  # the catalog's hint names the Genesys secret's setting
            problem.hint = "Create the Key Vault secret STATUS_CALLBACK_SECRET_NAME names, or correct the setting."
        raise


def _webhook_secrets(settings: Settings, secrets: SecretSource, refresh: bool) -> list[str]:
    """WEBHOOK_SECRET (and _PREVIOUS), else the vault's secret and its `-previous` twin during a rotation."""
    if settings.webhook_secrets:
        return list(settings.webhook_secrets)
    if not settings.key_vault_url:
        raise Problem(
            "configuration_error", "Setting WEBHOOK_SECRET (or KEY_VAULT_URL with a webhook secret) is required."
        )
    name = settings.webhook_secret_name
    try:
        current = secrets.get(name, refresh=refresh)
    except Problem as problem:
        if problem.code == "secret_not_found":
            problem.hint = WEBHOOK_REMEDIATION  # the catalog's hint names the Genesys secret's setting
        raise
    previous = _previous_webhook_secret(secrets, f"{name}-previous", refresh)
    return [current, previous] if previous else [current]


def _previous_webhook_secret(secrets: SecretSource, name: str, refresh: bool) -> str | None:
    """A rotation's previous secret, None once retired: deleted, or disabled or blanked (Key Vault refuses a
    disabled secret's read 403). Only an outage is the vault's failure; the current secret's refusal, not this
    one's, is a revocation that stops the route."""
    try:
        return secrets.get_optional(name, refresh=refresh)
    except Problem as problem:
        if problem.code == "key_vault_unavailable":
            raise
        log.warning("The previous webhook secret cannot be read (%s): only the current one is accepted", problem.code)
        return None


def _watch_settings(settings: Settings) -> WatchSettings:
    return WatchSettings(
        allowed_hosts=settings.status_callback_allowed_hosts,
        allow_insecure_loopback=settings.allow_loopback_callbacks,
        poll_seconds=settings.status_poll_seconds,
        max_poll_interval_seconds=settings.status_poll_max_seconds,
        max_age_seconds=settings.status_watch_max_seconds,
        retry_seconds=settings.status_callback_retry_seconds,
        retention_seconds=settings.idempotency_retention_seconds,
    )


def _call_policy(settings: Settings, store: Store) -> CallPolicy:
    do_not_call: DoNotCallList = (
        TableDoNotCallList(settings.storage.table(settings.do_not_call_table), settings.do_not_call_table_named)
        if settings.storage
        else MemoryDoNotCallList()
    )
    cap = None
    if settings.calls_per_number_limit is not None:
        cap = CallCap(store, settings.calls_per_number_limit, settings.calls_per_number_window_seconds)
    return CallPolicy(settings.allowed_countries, do_not_call, settings.calling_hours, cap)


def _idempotency_store(settings: Settings) -> Store:
    if settings.storage:
        return TableStore(settings.storage.table(settings.idempotency_table))
    log.warning("AzureWebJobsStorage is not set: duplicate protection is in memory and covers this instance only")
    return MemoryStore()
