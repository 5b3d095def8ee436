"""What a benchmark child calls: the app in-process, and the floors it is compared with.

The floors are the least any implementation must do against the same emulators: one create with a cached
token whose answer is read for the conversation id (no store), and that create plus two Table inserts through
the same Azure SDK and client options the app uses (the claim before dialing and the answer after: the least a
never-twice call can write). A third floor adds one point read, the do-not-call lookup the calling policy makes
before every call: the least a never-twice call that honours the list can do.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from typing import Any

import requests

from emulators.genesys import DEMO_USER_ID
from emulators.stack import CLIENT_SECRET
from shared.storage import StorageAccount

CALLER_ID = "+13175550100"  # the demo org's first DID, the stack's DEFAULT_CALLER_ID
# New York area codes: 100,000 distinct valid numbers, so no call is a duplicate of another inside the
# duplicate window (a duplicate would be replayed, not dialed, and measure a different path).
_AREAS = ("212", "646", "718", "917", "332", "347", "929", "516", "631", "914")
# Each measurement dials its own range: children share Azurite, and so the duplicate window.
RANGES = {"overhead_no_store": 0, "overhead_table": 10_000, "cold_start": 20_000, "throughput": 30_000}
MEMORY_RANGE = 70_000
HTTP_TIMEOUT = 30


def number(index: int) -> str:
    """The index-th benchmark number, +1 <area> 555 <4 digits>."""
    area, line = divmod(index, 10_000)
    return f"+1{_AREAS[area]}555{line:04d}"


def call_body(index: int) -> bytes:
    return json.dumps({"to": number(index)}).encode()


class InProcessApp:
    """The app's `POST /api/calls` through the local host's dispatch: the whole route, no HTTP server."""

    def __init__(self) -> None:
        import function_app
        from emulators.local_host import LocalFunctionHost

        self.host = LocalFunctionHost(function_app.app)  # indexes the app once, as the Functions host does

    def call(self, index: int) -> None:
        headers = {"content-type": "application/json"}
        status, _, body = self.host.dispatch("POST", "/api/calls", headers, call_body(index))
        if status != 201:
            raise RuntimeError(f"the app answered {status}: {body[:300]!r}")


class RawGenesys:
    """A bare create against the Genesys emulator with a token fetched once: the no-store floor."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # as the app's own session: no proxy or netrc lookups per request
        base = os.environ["GENESYS_API_BASE_URL"]
        self.url = f"{base}/api/v2/conversations/calls/user/{DEMO_USER_ID}"
        basic = base64.b64encode(f"{os.environ['GENESYS_CLIENT_ID']}:{CLIENT_SECRET}".encode()).decode()
        answer = self.session.post(
            f"{os.environ['GENESYS_LOGIN_BASE_URL']}/oauth/token",
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials"},
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def create(self, index: int) -> None:
        body: dict[str, Any] = {"phoneNumber": number(index), "callerId": CALLER_ID}
        answer = self.session.post(self.url, json=body, headers=self.headers, timeout=HTTP_TIMEOUT)
        if answer.status_code != 200 or not answer.json().get("id"):  # the conversation id is the point
            raise RuntimeError(f"raw create answered {answer.status_code}: {answer.text[:300]}")


class RawTable:
    """Two bare inserts into a table of their own, through the app's own client factory and options."""

    def __init__(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        from bench.stack import FLOOR_TABLE

        self.table = StorageAccount(connection_string=os.environ["AzureWebJobsStorage"]).table(FLOOR_TABLE)
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    def insert_two(self) -> None:
        for state in ("claimed", "done"):
            self.table.create_entity({"PartitionKey": "floor", "RowKey": str(uuid.uuid4()), "State": state})

    def read_missing(self) -> None:
        """A point read of a row that is not there: what the do-not-call lookup of an unlisted number costs."""
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.table.get_entity("dnc", uuid.uuid4().hex)
