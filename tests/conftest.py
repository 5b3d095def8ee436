"""The emulated stack for tests: Genesys emulator, managed identity, HTTPS Key Vault and the local host.

Emulators start once per session; every test gets fresh settings (`services` cache cleared), a clean
request log and no queued faults, so tests never see each other's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ahocorasick
import pytest
import requests

import function_app
from emulators.azure import KeyVaultEmulator, ManagedIdentityEmulator
from emulators.azurite import Azurite
from emulators.genesys import GenesysEmulator
from emulators.local_host import LocalFunctionHost
from emulators.one_write import OneWriteHandler
from emulators.stack import CLIENT_ID, CLIENT_SECRET, settings_for
from shared.async_requests import QUEUE_NAME
from shared.config import AZURE_HOST_VARIABLES, STORAGE_PROPERTIES
from shared.idempotency import Store
from shared.services import forget_services, services
from shared.storage import StorageAccount
from tests.loopback_relay import serving

HTTP_TIMEOUT = 30
EVENTUALLY_SECONDS = 30.0


def eventually(predicate: Callable[[], Any], what: str, timeout: float = EVENTUALLY_SECONDS) -> Any:
    """Poll `predicate` until it holds (its value) or the deadline passes."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def app_store() -> Store:
    """The app's own idempotency store, as configured (the local host runs the app in this process)."""
    return services().idempotency_store


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    """Whether `condition` came true within `seconds` (looked at every 0.2 s): for what happens on another
    thread or process, where no event can be awaited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def backdate(store_key: str, seconds: float) -> None:
    """Rewrite a stored record as if it had been written `seconds` earlier: a day passes in no time."""
    store = app_store()
    record = store.read(store_key)
    assert record is not None, f"no record {store_key}"
    older = dataclasses.replace(record, claimed_at=record.claimed_at - seconds, expires_at=record.expires_at - seconds)
    assert store.replace(older) is not None


def app_table(name: str) -> Any:
    """A table of the storage the app is configured with (the test's own DO_NOT_CALL_TABLE, say)."""
    storage = services().settings.storage
    assert storage is not None, "no AzureWebJobsStorage configured"
    return storage.table(name)


def app_queue() -> Any:
    """The app's own request queue (asynchronous jobs), through the storage it is configured with."""
    storage = services().settings.storage
    assert storage is not None, "no AzureWebJobsStorage configured"
    return storage.queue(QUEUE_NAME)


@contextlib.contextmanager
def answering_identity_endpoint(status: int, content_type: str, body: bytes) -> Iterator[dict[str, str]]:
    """A managed identity endpoint on loopback that answers every token request with this failure; yields the
    IDENTITY_ENDPOINT and IDENTITY_HEADER settings that point at it."""

    class Failing(OneWriteHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{server.server_port}/msi/token", "IDENTITY_HEADER": "h"}
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    """A clock a test moves by hand (`clock.now += 60`): rules about time passing, tested without sleeping."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    genesys: GenesysEmulator
    identity: ManagedIdentityEmulator
    vault: KeyVaultEmulator
    host: LocalFunctionHost
    session: requests.Session

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.host.base_url + path, json=body, timeout=HTTP_TIMEOUT, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.host.base_url + path, timeout=HTTP_TIMEOUT, **kwargs)

    def creates(self) -> list[Any]:
        return self.genesys.requests("create_call")


@dataclass
class Tally:
    """Counts for docs/reliability.md, printed at the end of the run."""

    hostile_inputs: int = 0
    hostile_5xx: int = 0
    fault_scenarios: int = 0
    duplicate_creates: int = 0
    hostile_answers: Counter[str] = dataclasses.field(default_factory=Counter)

    def as_plain_data(self) -> dict[str, Any]:
        """The counts as pytest-xdist carries them from a worker (plain dicts: a Counter does not cross)."""
        return {**dataclasses.asdict(self), "hostile_answers": dict(self.hostile_answers)}

    def add(self, counts: dict[str, Any]) -> None:
        """Add another worker's counts (`as_plain_data`), field by field."""
        for count in dataclasses.fields(self):
            mine = getattr(self, count.name)
            if isinstance(mine, Counter):
                mine.update(counts[count.name])
            else:
                setattr(self, count.name, mine + counts[count.name])

    def hostile(self, response: requests.Response) -> None:
        self.hostile_inputs += 1
        self.hostile_5xx += response.status_code >= 500
        code = response.json().get("code") if response.status_code >= 400 else None
        self.hostile_answers[f"{response.status_code} {code}" if code else str(response.status_code)] += 1


TALLY = Tally()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker (scripts/test.sh runs two): hand this worker's counts to the controller."""
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["tally"] = TALLY.as_plain_data()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the pytest-xdist controller: add a finished worker's counts to the run's."""
    counts = getattr(node, "workeroutput", {}).get("tally")
    if counts is not None:
        TALLY.add(counts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.hostile_inputs or TALLY.fault_scenarios:
        terminalreporter.write_line(
            f"reliability: hostile inputs tried={TALLY.hostile_inputs}, 5xx seen={TALLY.hostile_5xx}, "
            f"fault scenarios={TALLY.fault_scenarios}, duplicate creates={TALLY.duplicate_creates}"
        )
        answers = ", ".join(f"{answer}: {n}" for answer, n in TALLY.hostile_answers.most_common())
        terminalreporter.write_line(f"reliability: hostile answers: {answers}")


class LogAudit(logging.Handler):
    """Keeps every log line of the whole run; the session ends by checking none holds a secret or number."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.secrets: set[str] = {CLIENT_SECRET}
        self.numbers: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def remember(self, genesys: GenesysEmulator, identity: ManagedIdentityEmulator) -> None:
        """Collect what must never be logged: tokens issued and every number sent to Genesys."""
        self.secrets.update(genesys.issued_tokens(), identity.issued_tokens(), [genesys.client_secret])
        for create in genesys.requests("create_call"):
            for number_field in ("phoneNumber", "callerId"):
                number = (create.json or {}).get(number_field)
                if isinstance(number, str) and number.startswith("+"):
                    self.numbers.update({number, number[1:]})

    def leaks(self) -> list[str]:
        """The needles found in any line, by one pass over the lines for all of them (Aho-Corasick): a search of
        the whole run's text per needle took about 50 s at the end of a full run."""
        needles = ahocorasick.Automaton()
        for needle in self.secrets | self.numbers:
            if needle:
                needles.add_word(needle, needle)
        if not len(needles):
            return []
        needles.make_automaton()
        found = {needle for line in self.lines for _, needle in needles.iter(line)}
        return [s[:6] + "..." for s in found]


@pytest.fixture(scope="session")
def log_audit() -> Iterator[LogAudit]:
    audit = LogAudit()
    audit.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(audit)
    root.setLevel(logging.DEBUG)
    # The app keeps the Azure SDK at WARNING; the audit listens to everything it would say if turned up.
    sdk = logging.getLogger("azure")
    sdk_level = sdk.level
    sdk.setLevel(logging.DEBUG)
    yield audit
    root.removeHandler(audit)
    root.setLevel(previous_level)
    sdk.setLevel(sdk_level)
    assert audit.leaks() == [], "secrets, tokens or full phone numbers reached the logs"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as running:
        yield running


@pytest.fixture(scope="session")
def emulators() -> Iterator[tuple[GenesysEmulator, ManagedIdentityEmulator, KeyVaultEmulator, LocalFunctionHost]]:
    with (
        GenesysEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as genesys,
        ManagedIdentityEmulator() as identity,
        KeyVaultEmulator(identity, {"genesys-client-secret": CLIENT_SECRET}) as vault,
        LocalFunctionHost(function_app.app) as host,
    ):
        yield genesys, identity, vault, host


# The local run's settings (emulators/stack.py), with tighter timeouts so fault tests stay short.
# Calling hours off: no test may depend on the time of day (tests/test_calling_policy.py sets windows
# relative to now).
TEST_SETTINGS = {"CALL_DEADLINE_SECONDS": "8", "GENESYS_READ_TIMEOUT_SECONDS": "2", "CALLING_HOURS": "off"}


SETTING_NAMES = (
    "GENESYS_REGION",
    "GENESYS_CLIENT_SECRET",
    "GENESYS_CLIENT_SECRET_NAME",
    "ALLOWED_CALLER_IDS",
    "ALLOW_PREMIUM_RATE",
    "AZURE_CLIENT_ID",
    "CALLER_ID_CACHE_SECONDS",
    "DUPLICATE_WINDOW_SECONDS",
    "IDEMPOTENCY_WAIT_SECONDS",
    "KEY_VAULT_READ_TIMEOUT_SECONDS",
    *(f"AzureWebJobsStorage__{name}" for name in STORAGE_PROPERTIES),
    *AZURE_HOST_VARIABLES,  # a test runs as off Azure unless it says otherwise (a dev container sets CONTAINER_NAME)
    "ALLOWED_COUNTRIES",
    "CALLING_HOURS_BY_COUNTRY",
    "CALLS_PER_NUMBER_LIMIT",
    "CALLS_PER_NUMBER_WINDOW_HOURS",
)


@pytest.fixture
def configure(emulators: tuple[Any, ...], azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Apply settings (None removes one) and rebuild the app's services, as a restart would.

    Each test gets its own idempotency table, so no test can replay another test's calls.
    """
    genesys, identity, vault, _ = emulators
    environment = {
        **settings_for(genesys, identity, vault, azurite),
        **TEST_SETTINGS,
        "IDEMPOTENCY_TABLE": f"t{uuid.uuid4().hex}",
        "DO_NOT_CALL_TABLE": f"d{uuid.uuid4().hex}",
    }
    # A table a setting names must exist (a mistyped name refuses every call): made as an operator makes theirs
    StorageAccount(connection_string=environment["AzureWebJobsStorage"]).table(
        environment["DO_NOT_CALL_TABLE"]
    ).create_table()

    def apply(**settings: str | None) -> None:
        for name in SETTING_NAMES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**environment, **settings}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        forget_services()

    return apply


@pytest.fixture
def stack(emulators: tuple[Any, ...], configure: Callable[..., None], log_audit: LogAudit) -> Iterator[Stack]:
    genesys, identity, vault, host = emulators
    genesys.reset()
    genesys.client_secret = CLIENT_SECRET
    genesys.revoke_tokens()
    vault.set_secret("genesys-client-secret", CLIENT_SECRET)
    vault.reset()
    configure()
    with requests.Session() as session:
        yield Stack(genesys, identity, vault, host, session)
    log_audit.remember(genesys, identity)
    forget_services()


HELD_ANSWER_SECONDS = 60.0  # a raw answer's connection is held at most this long


@dataclass
class Receiver:
    """A loopback HTTP endpoint: answers each POST with the next of `answers` (then 200), keeps what came. An
    answer given as bytes is written as it is, and the connection then held open until the test ends (a body that
    never ends, never ends)."""

    answers: list[int | bytes] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()
    ended = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = state.answers.pop(0) if state.answers else 200
            if isinstance(status, bytes):
                self.wfile.write(status)
                ended.wait(HELD_ANSWER_SECONDS)
            else:  # the whole answer in one write: no Nagle stall between the headers and an empty body
                self.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/calls"
    with serving(server):
        try:
            yield state
        finally:
            ended.set()
