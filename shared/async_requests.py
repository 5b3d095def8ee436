"""Asynchronous mode (Power Automate's asynchronous pattern): accept now, place the call from a queue.

`Prefer: respond-async` gets `202` with `Location: /api/calls/requests/{requestId}` at once; a
queue-triggered function places the call and records the answer; polling the location answers `202`
while pending, then the final `201` or problem. A message that keeps failing ends as a stored failure.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.errors import Problem
from shared.idempotency import DONE, Record, Reply, Store
from shared.logs import get_logger

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from shared.calls import CallService

log = get_logger(__name__)

QUEUE_NAME = "call-requests"
POISON_QUEUE_NAME = f"{QUEUE_NAME}-poison"  # where the Functions host moves a message after 5 failed tries
MAX_DEQUEUE_COUNT = 5  # the host's default maxDequeueCount (host.json extensions.queues)
PENDING = "pending"
_RETRY_LATER = (429, 503)


class RetryLater(Exception):
    """Raised from the queue trigger so the host delivers the message again (nothing was dialed)."""


def open_queue(connection: str, queue_name: str) -> QueueClient:
    """A client for a storage queue (created if missing) in the host's base64 message encoding, with bounded
    timeouts. Shared by the sender here and the local host that plays the Functions runtime."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    client = QueueClient.from_connection_string(
        connection,
        queue_name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
        connection_timeout=2,
        read_timeout=5,
        retry_total=2,
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


class QueueSender:
    """Sends jobs to the storage queue the trigger reads (base64, the host's default message encoding)."""

    def __init__(self, connection: str, queue_name: str = QUEUE_NAME) -> None:
        self._connection = connection
        self._queue_name = queue_name
        self._client: QueueClient | None = None
        self._lock = threading.Lock()

    def _queue(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                self._client = open_queue(self._connection, self._queue_name)
            return self._client

    def send(self, message: str) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._queue().send_message(message)
        except AzureError as error:
            log.warning("Could not queue an asynchronous request: %s", type(error).__name__)
            raise Problem(
                "idempotency_store_unavailable",
                "The request queue could not be reached; nothing was dialed.",
                retry_after=5,
            ) from None


class AsyncRequests:
    def __init__(
        self,
        store: Store,
        queue: QueueSender | None,
        *,
        retention_seconds: float,
        retry_after_seconds: int,
    ) -> None:
        self._store = store
        self._queue = queue
        self._retention = retention_seconds
        self._retry_after = retry_after_seconds

    def _pending(self, request_id: str) -> Reply:
        return Reply(
            202,
            {"requestId": request_id, "status": PENDING},
            {"Location": f"/api/calls/requests/{request_id}", "Retry-After": str(self._retry_after)},
        )

    def accept(self, body: dict[str, Any], idempotency_key: str | None) -> Reply:
        """Record the request as pending and queue it; the body was already validated by the caller."""
        if self._queue is None:
            raise Problem(
                "configuration_error",
                "Asynchronous mode (Prefer: respond-async) needs a storage queue: set AzureWebJobsStorage.",
            )
        request_id = str(uuid.uuid4())
        now = time.time()
        self._store.create(Record(f"req:{request_id}", "", PENDING, request_id, now, now + self._retention))
        job = {"requestId": request_id, "body": body, "idempotencyKey": idempotency_key}
        self._queue.send(json.dumps(job))
        log.info("Accepted asynchronous request %s", request_id)
        return self._pending(request_id)

    def result(self, request_id: str) -> Reply:
        """202 while pending, then the stored final answer."""
        record = self._store.read(f"req:{request_id}")
        if record is None:
            raise Problem(
                "request_not_found",
                f"There is no asynchronous request {request_id!r} (or it expired).",
                field="requestId",
            )
        if record.state == DONE and record.reply is not None:
            return record.reply
        return self._pending(request_id)

    def process(self, message: str, dequeue_count: int, calls: CallService) -> None:
        """Place the queued call and record its answer; transient failures go back to the queue."""
        job = json.loads(message)
        request_id = str(job["requestId"])
        reply, _ = calls.answer(job.get("body"), job.get("idempotencyKey"), request_id)
        if reply.status in _RETRY_LATER and dequeue_count < MAX_DEQUEUE_COUNT:
            raise RetryLater(f"{reply.status} {reply.body.get('code')}, try {dequeue_count} of {MAX_DEQUEUE_COUNT}")
        self.complete(request_id, reply)

    def fail(self, message: str) -> None:
        """A poison message: the caller polling for it gets a failure, never silence."""
        try:
            request_id = str(json.loads(message)["requestId"])
        except (ValueError, KeyError, TypeError):
            log.error("Dropped an unreadable poison message")
            return
        problem = Problem(
            "internal_error",
            f"The asynchronous request could not be processed after {MAX_DEQUEUE_COUNT} attempts.",
            outcome_unknown=True,
        )
        self.complete(request_id, Reply(problem.status, problem.to_json(request_id), problem.headers()))

    def complete(self, request_id: str, reply: Reply) -> None:
        record = self._store.read(f"req:{request_id}")
        if record is None:
            log.error("Asynchronous request %s has no record; its answer is lost", request_id)
            return
        if record.state != DONE:
            self._store.replace(replace(record, state=DONE, reply=reply))
        log.info("Asynchronous request %s finished with %s", request_id, reply.status)
