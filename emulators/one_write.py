"""One socket write per HTTP answer, for the loopback servers the project runs.

`BaseHTTPRequestHandler` sends the status line and headers, then the body, as separate writes (unbuffered
by default; `wbufsize = -1` still splits an answer larger than its 8 KiB buffer). On loopback, Nagle's
algorithm holds the body's small segment until the headers' segment is acknowledged, and the client delays
that acknowledgement by about 40 ms: every answer stalls, and a benchmark measures the stall, not the code.
`OneWriteHandler` holds the whole answer and sends it at the flush `handle_one_request` already does after
each request (and `finish` does after an early error): one write, whatever its size. An interim `100 Continue`
is the one answer that leaves on its own, before the body it asks for.
"""

from __future__ import annotations

import io
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any


class AnswerBuffer(io.BufferedIOBase):
    """A write-only file that keeps every byte until `flush`, then sends them in one `sendall`."""

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._pending += view
        return view.nbytes

    def flush(self) -> None:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            self._connection.sendall(data)


class OneWriteHandler(BaseHTTPRequestHandler):
    """A request handler whose every answer leaves in one write (see the module docstring)."""

    def setup(self) -> None:
        super().setup()  # wbufsize 0: the unbuffered writer it makes holds no buffer to lose
        self.wfile = AnswerBuffer(self.connection)

    def handle_expect_100(self) -> bool:
        """The interim 100 Continue leaves at once: the client sends the body, which the answer needs, after it."""
        continuing = super().handle_expect_100()
        self.wfile.flush()
        return continuing
