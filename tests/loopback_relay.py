"""Relaying one HTTP request to another loopback server, for the test fronts that stand before an emulator
(a forward proxy, a TLS front that breaks answers, a front before Azurite's tables), and serving a loopback
server for the length of a `with` block."""

from __future__ import annotations

import http.client
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import TypeVar

from emulators.one_write import OneWriteHandler

Server = TypeVar("Server", bound=socketserver.BaseServer)

HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "content-length"}


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else None


def forward(
    handler: BaseHTTPRequestHandler, host: str, port: int | None, path: str, body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send the handler's request (method, end-to-end headers, body) to host:port and read the whole answer;
    `body` when the front has read it already."""
    body = body if body is not None else read_request_body(handler)
    upstream = http.client.HTTPConnection(host, port, timeout=20)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream.request(handler.command, path, body=body, headers=headers)
        answer = upstream.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        upstream.close()


def answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    cut_at: int | None = None,
) -> None:
    """Answer the handler's client with what `forward` got (one write when the handler is a OneWriteHandler); with
    `cut_at`, only that much of the body, as a connection that breaks mid-answer."""
    handler.send_response(status)
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[:cut_at])


class RelayHandler(OneWriteHandler):
    """A front's handler: keep-alive HTTP/1.1, answers in one write, no access log."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Serve on a thread of its own until the block ends, then stop and close the socket."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
