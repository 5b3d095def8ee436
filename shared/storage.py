"""The storage account behind `AzureWebJobsStorage`: table and queue clients for the app's own data.

Two ways in, as the Functions host itself connects: a connection string (Azurite, local runs), or
identity-based service URIs (`AzureWebJobsStorage__tableServiceUri`, `__queueServiceUri`) with a managed
identity (`__credential=managedidentity`, `__clientId` for a user-assigned one), as the azd template
deploys with shared keys turned off. The Azure SDKs are imported on first use: each costs cold-start time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared import outbound
from shared.errors import Problem
from shared.identity import BOUNDED_RETRIES, default_credential, managed_identity_credential
from shared.logs import get_logger
from shared.waiting import FailureForWaiters

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

log = get_logger(__name__)
T = TypeVar("T")

# Bounded waits: a storage outage must answer 503 quickly, not hold a request for the SDK's default minutes.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5


def _connection_options() -> tuple[dict[str, Any], requests.Session]:
    """Client options with a transport of our own (`shared.outbound`: a connection per worker thread, the
    environment read once), and its session, whose proxies are set once the client knows its URL.

    A transport of our own takes the connection options itself: the client hands them only to one it builds.
    """
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    # Retries are the pipeline's (retry_total), never urllib3's, as azure-core's own session sets it.
    pooled = outbound.session(retries=Retry(total=False, redirect=False, raise_on_status=False))
    transport = RequestsTransport(
        session=pooled,
        session_owner=True,
        connection_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        connection_verify=pooled.verify,  # the pipeline passes it on every request, over the session's
    )
    return {**BOUNDED_RETRIES, "transport": transport}, pooled


@dataclass(frozen=True)
class StorageAccount:
    """Where the app's tables and queues live, and how it authenticates there."""

    connection_string: str | None = field(default=None, repr=False)  # may hold an account key: never in a repr
    table_uri: str | None = None
    queue_uri: str | None = None
    managed_identity: bool = False  # `__credential=managedidentity`; otherwise DefaultAzureCredential
    client_id: str | None = None  # `__clientId`: the user-assigned identity to use
    resource_id: str | None = None  # or `__managedIdentityResourceId`, with `managed_identity`
    setting: str = "AzureWebJobsStorage"  # the connection's name, for errors

    @property
    def mode(self) -> str:
        """How readiness describes the connection (never the connection string itself)."""
        if self.connection_string:
            return "connection string"
        return "managed identity" if self.managed_identity else "identity (DefaultAzureCredential)"

    @functools.cached_property
    def _credential(self) -> TokenCredential:
        if self.managed_identity:
            return managed_identity_credential(
                self.client_id,
                resource_id=self.resource_id,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
            )
        # `__clientId` without `__credential`, as the host reads it: its managed identity's
        return default_credential(managed_identity_client_id=self.client_id)

    @contextlib.contextmanager
    def _readable_connection_string(self) -> Iterator[None]:
        """The SDKs refuse a malformed connection string with ValueError: name the setting, never its value."""
        try:
            yield
        except ValueError:
            raise Problem(
                "configuration_error", f"Setting {self.setting} is not a storage connection string."
            ) from None

    def table(self, name: str) -> TableClient:
        from azure.data.tables import TableClient

        options, pooled = _connection_options()
        if self.connection_string:
            with self._readable_connection_string():
                client = TableClient.from_connection_string(self.connection_string, name, **options)
        else:
            assert self.table_uri is not None  # shared.config.storage_account requires both URIs
            client = TableClient(self.table_uri, name, credential=self._credential, **options)
        pooled.proxies = outbound.proxies_for(client.url)
        return client

    def queue(self, name: str, *, as_stored: bool = False) -> QueueClient:
        """A queue (created if missing) in the Functions host's base64 message encoding; `as_stored`: messages
        as the queue holds them, neither encoded nor decoded (the host decodes each message itself)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import LinearRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        connection, pooled = _connection_options()
        options: dict[str, Any] = {
            # The queue SDK's own retry waits 15 s, then 18 s: an outage would hold a request half a minute.
            "retry_policy": LinearRetry(backoff=1, retry_total=2, random_jitter_range=1),
            **connection,
        }
        if not as_stored:
            options.update(
                message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
            )
        if self.connection_string:
            with self._readable_connection_string():
                client = QueueClient.from_connection_string(self.connection_string, name, **options)
        else:
            assert self.queue_uri is not None
            client = QueueClient(self.queue_uri, name, credential=self._credential, **options)
        pooled.proxies = outbound.proxies_for(client.url)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client


class MadeOnce(Generic[T]):
    """What `make` makes, made on first use under a lock; requests that waited while making it failed get that
    failure at once (`FailureForWaiters`: each tried again in turn, about 15 s apiece in a storage outage)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None
        self._failure = FailureForWaiters()
        self._lock = threading.Lock()

    def get(self) -> T:
        made = self._made
        if made is not None:
            return made
        asked_at = self._failure.asked()
        with self._lock:
            if self._made is None:
                self._made = self._failure.attempt(asked_at, self._make)
            return self._made

    def forget(self) -> None:
        """Make it again on the next use (it is gone)."""
        self._made = None


class ManagedTable:
    """A Table client that creates its table on first use and answers an outage as a 503 problem.

    A lost race (409 exists, 404 gone, 412 changed) is re-raised for the caller to read as such. With `missing`, the
    table is not created but must exist: its absence raises `missing()` (a table named by a setting, which a typo
    would otherwise make anew, empty).
    """

    def __init__(self, client: TableClient, what: str, missing: Callable[[], Problem] | None = None) -> None:
        self.client = client
        self._what = what  # "The idempotency store", for the outage's problem
        self._missing = missing
        self._table = MadeOnce(self._create_table if missing is None else self._find_table)

    def call(self, operation: Callable[[], Any], *, remake_if_gone: bool = False) -> Any:
        """`operation` on the table; with `remake_if_gone`, a write, a table deleted meanwhile is made again (or, with
        `missing`, looked for again) and the write tried once more."""
        from azure.core.exceptions import AzureError

        try:
            self._table.get()
            return operation()
        except Exception as raised:
            error = storage_failure(raised)
            if error is None:
                raise
            if is_table_gone(error):
                # Deleted under a running instance: its entities' 404s say nothing about them (a do-not-call
                # lookup would read "not listed"). An outage now; the next call makes the table again.
                self._table.forget()
                if remake_if_gone:
                    return self.call(operation)
            elif isinstance(error, AzureError) and is_lost_race(error):
                raise error from None
            log.warning("%s unreachable: %s", self._what, type(error).__name__)
            raise _unreachable(self._what, error) from None

    def _find_table(self) -> bool:
        assert self._missing is not None
        try:
            next(iter(self.client.query_entities("PartitionKey eq ''", results_per_page=1)), None)
        except Exception as raised:
            error = storage_failure(raised)
            if error is None:
                raise
            if is_table_gone(error) and getattr(error, "status_code", None) == 404:  # not 409: still being deleted
                raise self._missing() from None
            log.warning("%s could not be read: %s", self._what, type(error).__name__)
            raise _unreachable(self._what, error) from None
        return True

    def _create_table(self) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.client.create_table()
        except ResourceExistsError:
            pass
        except Exception as raised:  # a 409 TableBeingDeleted (40 s after a delete) too
            error = storage_failure(raised)
            if error is None:
                raise
            log.warning("%s could not be made: %s", self._what, type(error).__name__)
            raise _unreachable(self._what, error) from None
        return True


def storage_failure(raised: Exception) -> Exception | None:
    """The storage failure `raised` stands for, None when it is none: an Azure SDK error, an identity endpoint's HTML
    error page (JSONDecodeError), or the AttributeError the Tables SDK raises while reading one (it decodes the
    error of an answer cut off mid-body from a response it does not have). Any other error is a bug, not an outage."""
    from azure.core.exceptions import AzureError

    if isinstance(raised, AzureError | json.JSONDecodeError):
        return raised
    tripped_over = raised.__context__ if not raised.__suppress_context__ else None  # raised while handling it
    return tripped_over if isinstance(raised, AttributeError) and isinstance(tripped_over, AzureError) else None


def _unreachable(what: str, error: Exception | None = None) -> Problem:
    """A storage outage (503, `idempotency_store_unavailable`): `what` ("The do-not-call list") could not be
    reached, and nothing was dialed by the caller yet. Refused credentials (`error` a 401 or 403) say what to
    grant: still a 503, as a role assigned minutes ago may still be on its way."""
    status = getattr(error, "status_code", None)
    if status in (401, 403):
        code = _service_error_code(error)
        return Problem(
            "idempotency_store_unavailable",
            f"{what} refused the app's request ({status} {code or 'without a code'}); nothing was dialed.",
            retry_after=5,
            hint=_REFUSAL_HINTS.get(code or "", _REFUSAL_HINTS["AuthorizationPermissionMismatch"]),
        )
    return Problem("idempotency_store_unavailable", f"{what} could not be reached; nothing was dialed.", retry_after=5)


# What each refusal of the storage account (x-ms-error-code) asks of the operator
_REFUSAL_HINTS = {
    "AuthorizationPermissionMismatch": "Give the app's identity Storage Table Data Contributor and Storage Queue "
    "Data Contributor on the account AzureWebJobsStorage names; a role assigned minutes ago may still be on its way.",
    "AuthorizationFailure": "The account's firewall refused the app: allow its network (with VNET_ENABLED, its "
    "subnet or private endpoints) on the account AzureWebJobsStorage names.",
    "AuthenticationFailed": "The account refused the app's credentials: check the AccountKey or SAS in "
    "AzureWebJobsStorage, or the identity AzureWebJobsStorage__clientId names.",
}


def _service_error_code(error: Exception | None) -> str | None:
    """The storage service's error code (x-ms-error-code) of a failed request.

    The SDKs set `error_code` from the answer on most operations (their known codes as enums), not on an insert's
    error: then the answer's header says it."""
    code = getattr(error, "error_code", None) or getattr(getattr(error, "response", None), "headers", {}).get(
        "x-ms-error-code"
    )
    code = getattr(code, "value", code)
    return None if code is None else str(code)


def is_table_gone(error: Exception) -> bool:
    """The table itself is missing (404 TableNotFound) or still being deleted (409 TableBeingDeleted, which the
    service answers every operation on it for about 40 s after a delete), not an entity of it."""
    status, code = getattr(error, "status_code", None), _service_error_code(error)
    return (status, code) in ((404, "TableNotFound"), (409, "TableBeingDeleted"))


def is_lost_race(error: Exception) -> bool:
    """Someone else wrote first (409, 412) or the entity is gone (404): not an outage, nor a table gone."""
    from azure.core.exceptions import HttpResponseError

    return isinstance(error, HttpResponseError) and error.status_code in (404, 409, 412) and not is_table_gone(error)


class RetryLater(Exception):
    """Raised from a queue trigger so the host delivers the message again later (nothing was dialed by it)."""


MAX_QUEUE_DELAY_SECONDS = 6 * 24 * 3600  # a message's delay must stay under its time to live (7 days by default)


class QueueSender:
    """Sends messages to one storage queue (base64, the host's default encoding), the client made on first use.

    An outage answers 503 (`idempotency_store_unavailable`): nothing was dialed by the caller yet.
    """

    def __init__(self, storage: StorageAccount, queue_name: str) -> None:
        self._storage = storage
        self._queue_name = queue_name
        self._client = MadeOnce(self._make_client)

    @property
    def name(self) -> str:
        return self._queue_name

    def send(self, message: str, delay_seconds: int = 0) -> None:
        """Queue `message`, visible to the trigger after `delay_seconds`."""
        self._call(lambda client: client.send_message(message, visibility_timeout=delay_seconds or None))

    def check_reachable(self) -> None:
        """Read the queue's properties, as readiness does: an identity without a queue role, or a firewall, refuses
        every asynchronous request and status callback while the tables answer."""
        self._call(lambda client: client.get_queue_properties())

    def _call(self, operation: Callable[[QueueClient], object]) -> None:
        client = self._client.get()
        with self._outages():
            operation(client)

    def _make_client(self) -> QueueClient:
        """The queue's client, the queue made if missing (a request to the service)."""
        with self._outages():
            return self._storage.queue(self._queue_name)

    @contextlib.contextmanager
    def _outages(self) -> Iterator[None]:
        """A storage failure (`storage_failure`, as the tables read one: an identity endpoint's error page among
        them) as the queue's outage; any other error is a bug and goes on."""
        try:
            yield
        except Exception as raised:
            error = storage_failure(raised)
            if error is None:
                raise
            log.warning("Could not reach the %s queue: %s", self._queue_name, type(error).__name__)
            raise _unreachable(f"The {self._queue_name} queue", error) from None
