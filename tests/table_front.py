"""A loopback front before Azurite's table service, for storage faults at an exact moment.

It relays every request; `hold_next_query()` holds the next query's answer until `release` is set (the query
has run: the answer is what the table held then), and while `failing_writes` is set every entity write is
refused by closing the connection before it reaches Azurite, as a storage outage does (`failing_deletes`: only
deletes; `failing_reads`: only reads, `failing_reads_of`: only those of one table; `failing_write_when`: the
writes whose body it holds true). `refused` counts the requests refused. `lost_insert_answers` lets inserts
reach Azurite and answers them 503, as a gateway that lost the answer does (each once `lost_answer_gate` is set,
if given; only those whose body `lost_answers_only_for` holds true, if given); `lost_update_answers` does the
same to entity updates (PUT, MERGE), under the same filter. Under that filter too, `dropped_insert_answers` lets
inserts reach Azurite and ends the connection with no answer, and `cut_insert_answers` ends it halfway through
the answer's body. `update_delay` holds every entity update (not an insert) that long before relaying it: a slow
storage write (`delete_delay`: every delete). `being_deleted` answers every request 409 `TableBeingDeleted`, as
the service does for about 40 s after a table was deleted; `forbidden` answers everything 403, as to an identity
without a data role.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

from emulators.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from shared.storage import StorageAccount
from tests.loopback_relay import RelayHandler, answer, forward, read_request_body, serving

WAIT_SECONDS = 10.0


class TableFront(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, table_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.table_port = table_port
        self.failing_writes = False
        self.failing_deletes = False
        self.failing_reads = False
        self.failing_reads_of: str | None = None  # a table whose reads alone fail
        self.failing_write_when: Callable[[bytes], bool] | None = None
        self.refused = 0
        self.lost_insert_answers = 0  # this many inserts reach Azurite and are answered 503 instead of its answer
        self.lost_answer_gate: threading.Event | None = None
        self.lost_answers_only_for: Callable[[bytes], bool] | None = None  # the writes whose body it holds true
        self.lost_update_answers = 0  # likewise for entity updates: written, answered 503
        self.dropped_insert_answers = 0  # written, and the connection ends with no answer
        self.cut_insert_answers = 0  # written, and the connection ends halfway through the answer's body
        self.update_delay = 0.0
        self.delete_delay = 0.0
        self.being_deleted = False
        self.forbidden = False
        self.forbidden_code = "AuthorizationPermissionMismatch"
        self.on_refusal: Callable[[], None] = lambda: None  # runs as each request is refused
        self._counting = threading.Lock()
        self.holding = threading.Event()
        self.release = threading.Event()
        self._hold_next = False

    def hold_next_query(self) -> None:
        self._hold_next = True

    def storage(self) -> StorageAccount:
        """Table clients whose requests go through this front."""
        return _storage(self.server_address[1])

    def direct_storage(self) -> StorageAccount:
        """Table clients on Azurite itself."""
        return _storage(self.table_port)

    def count_refusal(self) -> None:
        with self._counting:
            self.refused += 1
        self.on_refusal()

    def _take_hold(self) -> bool:
        held, self._hold_next = self._hold_next, False
        return held


def table_connection_string(port: int) -> str:
    """A connection string whose table service is on `port` (it names no other service)."""
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};TableEndpoint={endpoint};"


def _storage(port: int) -> StorageAccount:
    return StorageAccount(connection_string=table_connection_string(port))


class _Relay(RelayHandler):
    server: TableFront

    def _relay(self) -> None:
        entity_write = self.command in ("PUT", "MERGE", "PATCH", "POST", "DELETE") and not self.path.endswith("Tables")
        server = self.server
        body = read_request_body(self) if entity_write else None
        if (
            (server.failing_writes and entity_write)
            or (entity_write and server.failing_write_when is not None and server.failing_write_when(body or b""))
            or (server.failing_deletes and self.command == "DELETE")
            or (server.failing_reads and self.command == "GET")
            or (
                server.failing_reads_of is not None
                and self.command == "GET"
                and f"/{server.failing_reads_of}(" in self.path
            )
        ):
            server.count_refusal()
            self.close_connection = True  # no answer: the client sees the connection drop
            return
        if server.forbidden:  # the identity has no data role on the account (or the firewall refuses it, ...)
            code = server.forbidden_code
            body = b'{"odata.error":{"code":"%s","message":{"value":"Not permitted."}}}' % code.encode()
            if not entity_write:
                read_request_body(self)
            answer(self, 403, [("Content-Type", "application/json"), ("x-ms-error-code", code)], body)
            return
        if server.being_deleted:  # the table's creation and every operation on its entities
            if not entity_write:
                read_request_body(self)
            body = b'{"odata.error":{"code":"TableBeingDeleted","message":{"value":"The table is being deleted."}}}'
            answer(self, 409, [("Content-Type", "application/json"), ("x-ms-error-code", "TableBeingDeleted")], body)
            return
        if server.update_delay and self.command in ("PUT", "MERGE", "PATCH") and entity_write:
            time.sleep(server.update_delay)
        if server.delete_delay and self.command == "DELETE":
            time.sleep(server.delete_delay)
        relayed = forward(self, "127.0.0.1", self.server.table_port, self.path, body)
        only_for = server.lost_answers_only_for
        chosen = entity_write and (only_for is None or only_for(body or b""))
        if chosen and self.command in ("PUT", "MERGE") and server.lost_update_answers > 0:
            server.lost_update_answers -= 1  # written, but the client hears a 503: azure-core sends it again
            relayed = (503, [("Content-Type", "application/json")], b'{"odata.error":{"code":"ServerBusy"}}')
        if chosen and self.command == "POST" and server.dropped_insert_answers > 0:
            server.dropped_insert_answers -= 1
            self.close_connection = True
            return
        if chosen and self.command == "POST" and server.cut_insert_answers > 0:
            server.cut_insert_answers -= 1
            answer(self, *relayed, cut_at=len(relayed[2]) // 2)
            self.close_connection = True
            return
        if chosen and self.command == "POST" and server.lost_insert_answers > 0:
            server.lost_insert_answers -= 1  # likewise
            if server.lost_answer_gate is not None:
                server.lost_answer_gate.wait(WAIT_SECONDS)
            relayed = (503, [("Content-Type", "application/json")], b'{"odata.error":{"code":"ServerBusy"}}')
        if self.command == "GET" and "()" in self.path and self.server._take_hold():
            self.server.holding.set()
            self.server.release.wait(WAIT_SECONDS)
        answer(self, *relayed)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _relay


def through_front(azurite: Azurite, front: TableFront) -> str:
    """Azurite's connection string with its table service behind `front` (blobs and queues stay on Azurite)."""
    table = f"TableEndpoint=http://127.0.0.1:{azurite.ports['Table']}/"
    assert table in azurite.connection_string
    return azurite.connection_string.replace(table, f"TableEndpoint=http://127.0.0.1:{front.server_address[1]}/")


@contextmanager
def table_front(table_port: int) -> Iterator[TableFront]:
    with serving(TableFront(table_port)) as front:
        try:
            yield front
        finally:
            front.release.set()  # a held answer goes out before the front stops
