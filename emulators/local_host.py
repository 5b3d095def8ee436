"""A small stand-in for the Functions host: serves a FunctionApp's HTTP routes over real HTTP and feeds
its storage-queue triggers.

Core Tools cannot be installed on our build machines, so tests and the local demo use this. It reads
the same metadata the real host reads (`app.get_functions()`), and builds `func.HttpRequest` the way
the worker does. Like Core Tools it does not enforce function keys unless given one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from emulators.one_write import OneWriteHandler
from shared.config import storage_account
from shared.storage import StorageAccount

MAX_REQUEST_BYTES = 4 * 1024 * 1024
_PARAMETER = re.compile(r"\{(\w+)(?::[^}?]*)?(\?)?\}")


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default listen backlog of 5 resets bursts of concurrent deliveries
    daemon_threads = True


@dataclass(frozen=True)
class HttpFunction:
    name: str
    methods: frozenset[str]
    anonymous: bool
    pattern: re.Pattern[str]
    literal_segments: int
    handler: Any

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
            methods=frozenset(m.upper() for m in trigger.get("methods") or ["GET", "POST"]),
            anonymous=str(trigger.get("authLevel", "FUNCTION")).upper() == "ANONYMOUS",
            pattern=re.compile(f"^/api{regex}/?$", re.IGNORECASE),
            literal_segments=sum(1 for s in route.split("/") if not _PARAMETER.fullmatch(s)),
            handler=function.get_user_function(),
        )


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue_name: str
    connection_setting: str
    handler: Any

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
        )


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str
    handler: Any

    @classmethod
    def from_function(cls, function: Any) -> TimerFunction | None:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "timerTrigger"), None)
        if trigger is None:
            return None
        return cls(function.get_function_name(), trigger["schedule"], function.get_user_function())

    def fire(self) -> None:
        """One run, as the host starts it when the schedule is due."""
        import azure.functions.timer

        self.handler(azure.functions.timer.TimerRequest(past_due=False))


class QueueRunner:
    """Delivers storage-queue messages to queue-triggered functions the way the host does: base64 bodies,
    a redelivery after each failure, and the `<queue>-poison` queue after `MAX_DEQUEUE_COUNT` tries.

    A received message stays invisible for `lease_seconds` (the host holds it 10 minutes and renews the
    lease while the function runs): if the worker dies, or the storage is gone when the function fails, the
    message comes back only when the lease ends."""

    MAX_DEQUEUE_COUNT = 5
    POLL_SECONDS = 0.2

    def __init__(self, functions: list[QueueFunction], lease_seconds: int = 60) -> None:
        self.functions = functions
        self.lease_seconds = lease_seconds
        self.deliveries: list[tuple[str, bool]] = []  # (function, succeeded): tests await these, never sleep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-runner", daemon=True)
        self._clients: dict[tuple[StorageAccount, str], Any] = {}

    def start(self) -> None:
        if self.functions:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _client(self, storage: StorageAccount, queue_name: str) -> Any:
        key = (storage, queue_name)
        if key not in self._clients:
            self._clients[key] = storage.queue(queue_name)
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
                    logging.getLogger(__name__).warning("Queue poll of %s failed", function.queue_name)

    def _poll(self, function: QueueFunction, storage: StorageAccount) -> None:
        import azure.functions.queue

        client = self._client(storage, function.queue_name)
        for message in client.receive_messages(messages_per_page=16, visibility_timeout=self.lease_seconds):
            delivered = azure.functions.queue.QueueMessage(
                id=message.id,
                body=message.content.encode(),
                dequeue_count=message.dequeue_count,
                pop_receipt=message.pop_receipt,
            )
            try:
                function.handler(delivered)
            except Exception:  # noqa: BLE001 - as the host: log, then redeliver or poison
                self.deliveries.append((function.name, False))
                logging.getLogger(__name__).warning(
                    "%s failed on try %s of %s", function.name, message.dequeue_count, self.MAX_DEQUEUE_COUNT
                )
                if message.dequeue_count >= self.MAX_DEQUEUE_COUNT:
                    self._client(storage, f"{function.queue_name}-poison").send_message(message.content)
                    client.delete_message(message)
                else:
                    client.update_message(message, visibility_timeout=0)
            else:
                self.deliveries.append((function.name, True))
                client.delete_message(message)


class LocalFunctionHost:
    """Serve `app` on 127.0.0.1; `base_url` is known once started."""

    def __init__(self, app: func.FunctionApp, *, port: int = 0, function_key: str | None = None) -> None:
        every = app.get_functions()  # it may be called once per app: it validates as it builds
        functions = [HttpFunction.from_function(f) for f in every]
        # Literal routes win over parameterised ones (`calls/validate` before `calls/{id}`), as in the host.
        self.functions = sorted((f for f in functions if f), key=lambda f: -f.literal_segments)
        self.function_key = function_key
        self.queues = QueueRunner([q for q in map(QueueFunction.from_function, every) if q])
        self.timers = {t.name: t for t in map(TimerFunction.from_function, every) if t}
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

    def __enter__(self) -> LocalFunctionHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route one request the way the Functions host would; answers (status, headers, body)."""
        url = urlsplit(target)
        for function in self.functions:
            match = function.pattern.match(url.path)
            if not match or method not in function.methods:
                continue
            params = dict(parse_qsl(url.query))
            if not function.anonymous and self.function_key is not None:
                given = headers.get("x-functions-key") or params.get("code")
                if given != self.function_key:
                    return 401, {}, b""
            request = func.HttpRequest(
                method,
                f"http://127.0.0.1{target}",
                headers=headers,
                params=params,
                # The host hands functions decoded route values (`%2B1%20212` is `+1 212`).
                route_params={k: unquote(v) for k, v in match.groupdict().items() if v is not None},
                body=body,
            )
            response = function.handler(request)
            response_headers = dict(response.headers)
            if response.mimetype:
                charset = f"; charset={response.charset}" if response.charset else ""
                response_headers["Content-Type"] = response.mimetype + charset
            return response.status_code, response_headers, response.get_body() or b""
        return 404, {}, b""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(OneWriteHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the app logs what matters."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._answer(413, {}, b"")
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, response_headers, response_body = host.dispatch(self.command, self.path, headers, body)
                self._answer(status, response_headers, response_body)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
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
