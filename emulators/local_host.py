"""A small stand-in for the Functions host: serves a FunctionApp's HTTP routes over real HTTP and feeds
its storage-queue triggers.

Core Tools cannot be installed on our build machines, so tests and the local demo use this. It reads
the same metadata the real host reads (`app.get_functions()`) and host.json's `extensions.queues`, and
follows the host's rules where they are observable: routes tried in function-name order, the worker's
`Content-Type` rule (azure-functions' own converter), a 500 with an empty body for an unhandled exception,
and the queue listener's batch, retry and poison rules. docs/runtime.md lists each rule with its source and
test. Like Core Tools it does not enforce function keys unless given one.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.http import HttpResponseConverter

from emulators.one_write import OneWriteHandler
from shared.config import storage_account
from shared.storage import StorageAccount

ROOT = Path(__file__).resolve().parent.parent
# The host's HttpRequestBodySizeMiddleware only sets Kestrel's limit for a body over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
# (default 100 MB); Kestrel's "Request body too large" is thrown when the host reads the body to bind `req`, and its
# ExceptionMiddleware answers that 500 with no body, before any function runs (azure-functions-host#10519, open).
# The template sets 4 MiB (infra/app/api.bicep), and so does the emulated stack.
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_SIZE_LIMIT = 104_857_600
MAX_DRAINED_BYTES = 16 * 1024 * 1024  # of a refused body, read and dropped before the 500 (then the connection closes)
_PARAMETER = re.compile(r"\{(\w+)(?::[^}?]*)?(\?)?\}")
_ENCODED_SLASH = re.compile("%2F", re.IGNORECASE)
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")
_log = logging.getLogger(__name__)


def worker_threads(environ: Mapping[str, str] | None = None) -> int:
    """How many synchronous functions run at once, as the Python worker sizes its pool:
    `PYTHON_THREADPOOL_THREAD_COUNT`, else ThreadPoolExecutor's default, min(32, cores + 4)."""
    value = (os.environ if environ is None else environ).get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(value) if value.isdigit() and int(value) > 0 else min(32, (os.cpu_count() or 1) + 4)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default listen backlog of 5 resets bursts of concurrent deliveries
    daemon_threads = True


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: frozenset[str]
    anonymous: bool
    pattern: re.Pattern[str]
    handler: Any
    argument: str  # the trigger's binding name: the handler's parameter, passed by name as the worker does

    def accepts(self, method: str) -> bool:
        """The host adds HEAD to every route that takes GET (WebScriptHostHttpRoutesManager)."""
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    @classmethod
    def from_function(cls, function: Any) -> HttpFunction | None:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "httpTrigger"), None)
        if trigger is None:
            return None
        route = trigger.get("route") or function.get_function_name()
        regex = ""
        for segment in route.strip("/").split("/"):
            match = _PARAMETER.fullmatch(segment)
            if match:
                optional = "?" if match.group(2) else ""
                regex += f"(?:/(?P<{match.group(1)}>[^/]+)){optional}"
            else:
                regex += "/" + re.escape(segment)
        return cls(
            name=function.get_function_name(),
            route=route,
            methods=frozenset(m.upper() for m in trigger.get("methods") or ["GET", "POST"]),
            anonymous=str(trigger.get("authLevel", "FUNCTION")).upper() == "ANONYMOUS",
            pattern=re.compile(f"^/api{regex}/?$", re.IGNORECASE),
            handler=function.get_user_function(),
            argument=trigger["name"],
        )


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue_name: str
    connection_setting: str
    handler: Any
    argument: str

    @classmethod
    def from_function(cls, function: Any) -> QueueFunction | None:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "queueTrigger"), None)
        if trigger is None:
            return None
        return cls(
            function.get_function_name(),
            trigger["queueName"],
            trigger.get("connection") or "AzureWebJobsStorage",
            function.get_user_function(),
            trigger["name"],
        )


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str
    handler: Any
    argument: str

    @classmethod
    def from_function(cls, function: Any) -> TimerFunction | None:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "timerTrigger"), None)
        if trigger is None:
            return None
        return cls(function.get_function_name(), trigger["schedule"], function.get_user_function(), trigger["name"])

    def fire(self) -> None:
        """One run, as the host starts it when the schedule is due."""
        import azure.functions.timer

        self.handler(**{self.argument: azure.functions.timer.TimerRequest(past_due=False)})


def check_parameters(function: Any) -> None:
    """A handler's parameters are its bindings' names (`context` aside), as the Python worker checks when it loads
    a function (`Registry.add_function`): a mismatch is a FunctionLoadError, and in Azure no function of the app
    loads. Handlers are called with their bindings by name, as the worker calls them."""
    bindings = json.loads(function.get_function_json())["bindings"]
    bound = {binding["name"] for binding in bindings if binding["name"] != "$return"}
    declared = set(inspect.signature(function.get_user_function()).parameters)
    if "context" not in bound:
        declared.discard("context")
    if declared != bound:
        raise ValueError(
            f"cannot load the {function.get_function_name()} function: its parameters {sorted(declared)} are not "
            f"its bindings {sorted(bound)}"
        )


def timespan_seconds(value: str) -> float:
    """A .NET TimeSpan as host.json writes it (`00:00:02`, `1.00:00:00`, `00:00:00.500`), in seconds."""
    match = _TIMESPAN.fullmatch(value)
    if match is None:
        raise ValueError(f"not a TimeSpan: {value!r}")
    days, hours, minutes, seconds = match.groups()
    span = timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    return span.total_seconds()


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the queue extension's defaults for what it leaves out (QueuesOptions)."""

    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # how long a failed message stays invisible before its next try
    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2 per processor, as the host computes it
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, path: Path = ROOT / "host.json") -> QueueOptions:
        queues = json.loads(path.read_text())["extensions"].get("queues", {})
        default = cls()
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", default.max_dequeue_count)),
            visibility_timeout=timespan_seconds(queues.get("visibilityTimeout", "00:00:00")),
            batch_size=int(queues.get("batchSize", default.batch_size)),
            new_batch_threshold=queues.get("newBatchThreshold"),
            message_encoding=str(queues.get("messageEncoding", default.message_encoding)).lower(),
        )

    @property
    def fetch_below(self) -> int:
        """A new batch is fetched when no more than this many messages of the function are running."""
        if self.new_batch_threshold is not None:
            return int(self.new_batch_threshold)
        return self.batch_size // 2 * (os.cpu_count() or 1)


def poison_queue_name(queue_name: str) -> str | None:
    """`<queue>-poison`, except for a queue that is itself a poison queue (or whose poison name would be too
    long): the host gives those none, and leaves a failed message invisible instead (QueueListenerFactory)."""
    if queue_name.endswith("-poison") or len(queue_name) + len("-poison") > 63:
        return None
    return f"{queue_name}-poison"


def _base64_body(text: str) -> bytes | None:
    """A message's body as the host reads it under messageEncoding base64; None when it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class QueueRunner:
    """Delivers storage-queue messages to queue-triggered functions the way the host's queue listener does.

    Up to `batch_size` messages are received at a time and run in parallel; the next batch is fetched when
    no more than `new_batch_threshold` are still running. A failure makes the message visible again after
    `visibility_timeout`, until its `max_dequeue_count`-th try, which copies it to `<queue>-poison`; a message
    that arrives already past the limit goes there without running. A queue that is itself a poison queue has
    no poison queue: its failed message stays invisible until its lease ends. A received message stays
    invisible for `lease_seconds` (the host holds it 10 minutes and renews the lease while the function runs):
    if the worker dies, or the storage is gone when the function fails, it comes back only when the lease ends.
    """

    POLL_SECONDS = 0.2  # the host backs off up to maxPollingInterval (1 min) on an idle queue: docs/runtime.md

    def __init__(
        self, functions: list[QueueFunction], options: QueueOptions | None = None, lease_seconds: int = 60
    ) -> None:
        self.functions = functions
        self.options = options or QueueOptions.from_host_json()
        if self.options.message_encoding != "base64":
            raise ValueError("host.json messageEncoding must be base64: the app's queue client writes base64")
        self.lease_seconds = lease_seconds
        self.deliveries: list[tuple[str, bool]] = []  # (function, succeeded): tests await these, never sleep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-runner", daemon=True)
        self._clients: dict[tuple[StorageAccount, str], Any] = {}
        self._running: dict[str, int] = {f.name: 0 for f in functions}
        self._lock = threading.Lock()
        workers = (self.options.batch_size + self.options.fetch_below) * max(1, len(functions))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="queue-function")

    def start(self) -> None:
        if self.functions:
            # Imported here, before the thread: its first import of the Azure SDK, beside a request thread's first
            # one, could be handed a module still being imported (ImportError from a partly initialized module).
            import azure.storage.queue  # noqa: F401

            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _client(self, storage: StorageAccount, queue_name: str) -> Any:
        key = (storage, queue_name)
        with self._lock:
            if key not in self._clients:  # as stored: each message is decoded on its own, as the host does
                self._clients[key] = storage.queue(queue_name, as_stored=True)
            return self._clients[key]

    def _run(self) -> None:
        while not self._stop.wait(self.POLL_SECONDS):
            for function in self.functions:
                try:
                    # The host reads the connection setting as a connection string or identity-based URIs.
                    storage = storage_account(os.environ, function.connection_setting)
                    if storage is not None:
                        self._poll(function, storage)
                except Exception:  # noqa: BLE001 - a storage hiccup must not end the runner
                    _log.warning("Queue poll of %s failed", function.queue_name)

    def _poll(self, function: QueueFunction, storage: StorageAccount) -> None:
        with self._lock:
            if self._running[function.name] > self.options.fetch_below:
                return
        client = self._client(storage, function.queue_name)
        batch = self.options.batch_size
        received = client.receive_messages(
            messages_per_page=min(batch, 32), max_messages=batch, visibility_timeout=self.lease_seconds
        )
        for message in received:
            with self._lock:
                self._running[function.name] += 1
            self._pool.submit(self._deliver, function, storage, client, message)

    def _deliver(self, function: QueueFunction, storage: StorageAccount, client: Any, message: Any) -> None:
        import azure.functions.queue

        limit = self.options.max_dequeue_count
        try:
            body = _base64_body(message.content)
            if message.dequeue_count > limit or body is None:
                # As BeginProcessingMessageAsync (past the limit) and the extension's decoding (not base64):
                # poisoned without running, its batch-mates run
                self._poison(function, storage, client, message)
                return
            delivered = azure.functions.queue.QueueMessage(
                id=message.id,
                body=body,
                dequeue_count=message.dequeue_count,
                pop_receipt=message.pop_receipt,
            )
            try:
                function.handler(**{function.argument: delivered})
            except Exception:  # noqa: BLE001 - as the host: log, then redeliver or poison
                self.deliveries.append((function.name, False))
                _log.warning("%s failed on try %s of %s", function.name, message.dequeue_count, limit)
                if poison_queue_name(function.queue_name) is None:
                    return  # no poison queue: left invisible until the lease ends, as the host does
                if message.dequeue_count >= limit:
                    self._poison(function, storage, client, message)
                else:
                    client.update_message(message, visibility_timeout=int(self.options.visibility_timeout))
            else:
                self.deliveries.append((function.name, True))
                client.delete_message(message)
        except Exception:  # noqa: BLE001 - a storage failure leaves the message to its lease, as in the host
            _log.warning("Completing a message of %s failed", function.queue_name)
        finally:
            with self._lock:
                self._running[function.name] -= 1

    def _poison(self, function: QueueFunction, storage: StorageAccount, client: Any, message: Any) -> None:
        """Copied as stored to `<queue>-poison`, then deleted."""
        poison = poison_queue_name(function.queue_name)
        if poison is not None:
            self._client(storage, poison).send_message(message.content)
            client.delete_message(message)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Values by case-insensitive name, as ASP.NET Core keeps headers and queries: the first spelling names
    them, repeats are joined by commas."""
    joined: dict[str, str] = {}
    spelled: dict[str, str] = {}  # lower-case name -> its first spelling
    for name, value in pairs:
        key = spelled.setdefault(name.lower(), name)
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def header_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers as the host sends them to the worker: lower-case names, repeats joined by commas."""
    return _joined((name.lower(), value) for name, value in pairs)


def query_values(query: str) -> dict[str, str]:
    """Query parameters as the host sends them: names as the client first spelled them (`a` and `A` are one
    parameter), repeats joined by commas, empty values left out."""
    return {name: value for name, value in _joined(parse_qsl(query, keep_blank_values=True)).items() if value}


def route_value(raw: str) -> str:
    """A route value as the host hands it over: percent-decoded (`%2B1%20212` is `+1 212`), except `%2F`,
    which ASP.NET Core keeps encoded in the path."""
    return "%2F".join(unquote(part) for part in _ENCODED_SLASH.split(raw))


def worker_answer(response: func.HttpResponse) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body as the Python worker returns them to the host: through azure-functions' own
    converter, which adds `Content-Type` only when the function set none, with a charset only for `text/*`."""
    datum = HttpResponseConverter.encode(response, expected_type=None).value
    headers = {name: header.value for name, header in datum["headers"].items()}
    return int(datum["status_code"].value), headers, datum["body"].value or b""


class LocalFunctionHost:
    """Serve `app` on 127.0.0.1; `base_url` is known once started."""

    def __init__(self, app: func.FunctionApp, *, port: int = 0, function_key: str | None = None) -> None:
        every = app.get_functions()  # it may be called once per app: it validates as it builds
        for function in every:
            check_parameters(function)
        functions = [HttpFunction.from_function(f) for f in every]
        # The host registers routes in function-name order (ordinal, ignoring case) and takes the first whose
        # template and method match: not literal-first. docs/runtime.md, "Route precedence".
        self.functions = sorted((f for f in functions if f), key=lambda f: f.name.upper())
        self.function_key = function_key
        self.queues = QueueRunner([q for q in map(QueueFunction.from_function, every) if q])
        self.timers = {t.name: t for t in map(TimerFunction.from_function, every) if t}
        # Connections get a thread each, as the host accepts them; functions run on the worker's pool.
        self._workers = ThreadPoolExecutor(worker_threads(), thread_name_prefix="worker")
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve_forever(self) -> None:
        """Serve HTTP on this thread and queue triggers on another (settings from the environment)."""
        self.queues.start()
        self._server.serve_forever()

    def start(self) -> LocalFunctionHost:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="local-host", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.queues.stop()
        self._server.shutdown()
        self._server.server_close()
        self._workers.shutdown(wait=False)  # a request already waiting for a thread still gets its answer

    def __enter__(self) -> LocalFunctionHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route one request the way the Functions host would; answers (status, headers, body).

        `headers` as the host hands them to the worker: lower-case names, repeated ones joined with commas."""
        url = urlsplit(target)
        matches = [(f, m) for f in self.functions if (m := f.pattern.match(url.path))]
        chosen = next(((f, m) for f, m in matches if f.accepts(method)), None)
        if chosen is None:
            # The host answers HEAD on a route without GET or HEAD 405, any other unmatched request 404.
            return (405 if method == "HEAD" and matches else 404), {}, b""
        function, match = chosen
        params = query_values(url.query)
        if not function.anonymous and self.function_key is not None:
            code = next((value for name, value in params.items() if name.lower() == "code"), None)
            given = headers.get("x-functions-key") or code  # the host reads ?code= by any spelling too
            if given != self.function_key:
                return 401, {}, b""
        request = func.HttpRequest(
            method,
            f"http://127.0.0.1{target}",
            headers=headers,
            params=params,
            route_params={k: route_value(v) for k, v in match.groupdict().items() if v is not None},
            body=body,
        )
        try:
            response = function.handler(**{function.argument: request})
        except Exception:  # noqa: BLE001 - as the host's ExceptionMiddleware: 500, no body
            _log.exception("Function %s failed", function.name)
            return 500, {}, b""
        return worker_answer(response)

    def dispatch_on_worker(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """`dispatch` on the worker's thread pool: past its size, requests wait for a thread, as in Azure."""
        return self._workers.submit(self.dispatch, method, target, headers, body).result()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(OneWriteHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the app logs what matters."""

            def _serve(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:  # Kestrel refuses a Content-Length that is no number with 400, no function runs
                    self.close_connection = True
                    self._answer(400, {}, b"")
                    return
                if length > int(os.environ.get(BODY_SIZE_LIMIT_SETTING) or DEFAULT_BODY_SIZE_LIMIT):
                    # Read (and drop) what the client is still sending, up to a bound: closing on unread bytes
                    # resets the connection, and the client may never see the 500.
                    unread = min(length, MAX_DRAINED_BYTES)
                    while unread > 0:
                        chunk = self.rfile.read(min(65536, unread))
                        if not chunk:
                            break
                        unread -= len(chunk)
                    self.close_connection = True
                    self._answer(500, {}, b"")
                    return
                body = self.rfile.read(length) if length else b""
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    # The host hands the worker a body only with a Content-Length (ToRpcHttp): the chunks are read
                    # and dropped (answered and closed on unread ones, the connection was reset under a client
                    # still sending them: EPIPE), and this answer ends the connection.
                    self._drop_chunks()
                    self.close_connection = True
                headers = header_values(self.headers.items())
                status, response_headers, response_body = host.dispatch_on_worker(
                    self.command, self.path, headers, body
                )
                self._answer(status, response_headers, response_body)

            def _drop_chunks(self) -> None:
                """Read a chunked body to its last chunk, up to MAX_DRAINED_BYTES; stop at anything malformed."""
                dropped = 0
                while dropped <= MAX_DRAINED_BYTES:
                    try:
                        size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
                    except ValueError:
                        return
                    if size == 0:  # the last chunk, then trailers up to an empty line
                        while self.rfile.readline(1024).strip():
                            pass
                        return
                    self.rfile.read(size + 2)  # the chunk and its CRLF
                    dropped += size

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:  # said, so the client does not send its next request on it
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

        return Handler


def main() -> None:
    """Serve `function_app.app` with the settings in the environment: `python -m emulators.local_host [port]`."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import function_app

    host = LocalFunctionHost(function_app.app, port=int(sys.argv[1]) if len(sys.argv) > 1 else 7071)
    print(f"listening {host.base_url}", flush=True)
    host.serve_forever()


if __name__ == "__main__":
    main()
