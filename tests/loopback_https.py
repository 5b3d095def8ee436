"""A small HTTPS server on 127.0.0.1 with its own trustme CA: stands in for AWS's certificate and
subscription hosts and Google's key endpoint in the webhook tests."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import trustme

from emulators.one_write import OneWriteHandler


class LoopbackHttps:
    """Serves `routes` (path without query -> body); every request's path and query is kept in `requests`.
    A status queued in `failures[path]` answers the next request for that path instead (empty body); a delay
    queued in `delays[path]` holds the next answer for that path that long (a slow server)."""

    def __init__(self, ca_dir: Path) -> None:
        self.routes: dict[str, bytes] = {}
        self.failures: dict[str, list[int]] = {}
        self.delays: dict[str, list[float]] = {}
        self.requests: list[str] = []
        self._ca = trustme.CA()
        self.ca_bundle = str(ca_dir / "loopback-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_bundle)
        server = self

        class Handler(OneWriteHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                path = self.path.split("?")[0]
                failures = server.failures.get(path)
                delays = server.delays.get(path)
                if delays:
                    time.sleep(delays.pop(0))  # the slowness is the fault being modelled
                body = None if failures else server.routes.get(path)
                self.send_response(failures.pop(0) if failures else 200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.netloc = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.base_url = f"https://{self.netloc}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def hits(self, path: str) -> list[str]:
        return [request for request in self.requests if request.split("?")[0] == path]


@contextmanager
def loopback_https(ca_dir: Path) -> Iterator[LoopbackHttps]:
    server = LoopbackHttps(ca_dir)
    server._thread.start()
    try:
        yield server
    finally:
        server._httpd.shutdown()
        server._httpd.server_close()
