"""The local host follows the real Functions host where the app can observe it (docs/runtime.md).

Each test pins one row of docs/runtime.md: route precedence, HEAD, the worker's Content-Type rule, an
unhandled exception, the request values the host hands over, and the queue listener's batch, retry and
poison rules read from host.json.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest
import requests

from emulators.azurite import Azurite
from emulators.local_host import (
    ROOT,
    HttpFunction,
    LocalFunctionHost,
    QueueFunction,
    QueueOptions,
    QueueRunner,
    poison_queue_name,
    timespan_seconds,
    worker_threads,
)
from shared.async_requests import MAX_DEQUEUE_COUNT, POISON_QUEUE_NAME, QUEUE_NAME
from shared.config import storage_account
from shared.storage import StorageAccount
from tests.conftest import eventually

WAIT_SECONDS = 20


def host_for(*routes: tuple[str, str, list[str]]) -> LocalFunctionHost:
    """A host for a throwaway app: each route is (function name, template, methods); each answers its name."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, template, methods in routes:
        app.route(route=template, methods=methods)(answering(name))
    return LocalFunctionHost(app)


def answering(name: str) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """A handler named `name` that answers its name and route values."""
    return answering_with(name, None)


def answering_with(name: str, answer: func.HttpResponse | None) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """A handler named `name` that gives `answer`, or its name and route values; its one parameter is its binding's,
    as the worker requires."""

    def handler(req: func.HttpRequest) -> func.HttpResponse:
        if answer is not None:
            return answer
        return func.HttpResponse(json.dumps({"function": name, **req.route_params}), mimetype="application/json")

    handler.__name__ = name
    return handler


def answered_by(host: LocalFunctionHost, method: str, path: str) -> Any:
    status, _, body = host.dispatch(method, path, {}, b"")
    return json.loads(body) if status == 200 else status


def test_routes_are_tried_in_function_name_order_not_literal_first() -> None:
    """WebScriptHostHttpRoutesManager maps routes in FunctionMetadataManager's order (names, ordinal ignoring
    case) and the first matching route wins: a parameter route whose function sorts first shadows a literal."""
    with (
        host_for(("a_item", "items/{id}", ["GET"]), ("b_recent", "items/recent", ["GET"])) as shadowed,
        host_for(("b_item", "items/{id}", ["GET"]), ("A_recent", "items/recent", ["GET"])) as literal_first,
    ):
        assert answered_by(shadowed, "GET", "/api/items/recent") == {"function": "a_item", "id": "recent"}
        assert answered_by(literal_first, "GET", "/api/items/recent") == {"function": "A_recent"}
        # A route whose method does not match is passed over (HttpMethodRouteConstraint), not a 405.
        assert answered_by(shadowed, "POST", "/api/items/recent") == 404


def _sample_paths(functions: list[HttpFunction], templates: dict[str, str]) -> set[str]:
    """Concrete paths for every route: each parameter filled with an ordinary value and with every literal
    another route has at that position, so any two templates that can overlap are tried on the same path."""
    literals: dict[int, set[str]] = {}
    for template in templates.values():
        for position, segment in enumerate(template.split("/")):
            if not segment.startswith("{"):
                literals.setdefault(position, set()).add(segment)
    paths = set()
    for function in functions:
        choices = [
            sorted({"x1", *literals.get(i, set())}) if segment.startswith("{") else [segment]
            for i, segment in enumerate(templates[function.name].split("/"))
        ]
        paths.update("/api/" + "/".join(combination) for combination in itertools.product(*choices))
    return paths


def test_every_route_of_the_app_resolves_the_same_in_name_order_and_literal_first(emulators: Any) -> None:
    """The app must not depend on route order: for every path any two of its routes could both match
    (`calls/validate` and `calls/{conversationId}`, `calls/requests/{requestId}`, `do-not-call/{number}`, ...)
    and every method, the host's name order and literal-first order choose the same function."""
    host: LocalFunctionHost = emulators[3]
    templates = {f.name: f.route.strip("/") for f in host.functions}

    def literal_count(function: HttpFunction) -> int:
        return -sum(not s.startswith("{") for s in templates[function.name].split("/"))

    orders = {"name": host.functions, "literal-first": sorted(host.functions, key=literal_count)}
    methods = {m for f in host.functions for m in f.methods} | {"HEAD"}
    checked = 0
    for path, method in itertools.product(_sample_paths(host.functions, templates), methods):
        winners = {
            order: next((f.name for f in functions if f.pattern.match(path) and f.accepts(method)), None)
            for order, functions in orders.items()
        }
        assert winners["name"] == winners["literal-first"], (method, path, winners)
        checked += winners["name"] is not None
    assert checked > len(host.functions)


def test_head_is_served_by_get_routes_and_refused_405_elsewhere() -> None:
    with host_for(("status", "things/{id}", ["GET"]), ("create", "things", ["POST"])) as host:
        assert host.dispatch("HEAD", "/api/things/1", {}, b"")[0] == 200
        assert host.dispatch("HEAD", "/api/things", {}, b"")[0] == 405
        assert host.dispatch("HEAD", "/api/nothing", {}, b"")[0] == 404


def test_the_function_key_is_taken_from_its_header_or_a_code_parameter_of_any_spelling() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="things", methods=["GET"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    host = LocalFunctionHost(app, function_key="k3y")
    assert host.dispatch("GET", "/api/things", {"x-functions-key": "k3y"}, b"")[0] == 200
    assert host.dispatch("GET", "/api/things?Code=k3y", {}, b"")[0] == 200  # ASP.NET reads a query by any case
    assert host.dispatch("GET", "/api/things?code=wrong", {}, b"")[0] == 401
    assert host.dispatch("GET", "/api/things", {}, b"")[0] == 401


def test_content_type_is_the_workers_no_charset_on_json() -> None:
    """azure-functions' HttpResponseConverter: a charset only for text/*, and a function's own header kept."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    answers = {
        "json": func.HttpResponse("{}", mimetype="application/json"),
        "problem": func.HttpResponse("{}", mimetype="application/problem+json"),
        "text": func.HttpResponse("hi"),
        "own": func.HttpResponse("{}", headers={"Content-Type": "application/json; charset=utf-8"}),
    }
    for kind, answer in answers.items():
        app.route(route=kind, methods=["GET"])(answering_with(kind, answer))
    with LocalFunctionHost(app) as host:
        answered = {kind: requests.get(f"{host.base_url}/api/{kind}", timeout=10) for kind in answers}
    content_types = {kind: response.headers["Content-Type"] for kind, response in answered.items()}
    assert content_types == {
        "json": "application/json",
        "problem": "application/problem+json",
        "text": "text/plain; charset=utf-8",
        "own": "application/json; charset=utf-8",
    }


def test_the_apps_answers_carry_no_charset(stack: Any) -> None:
    assert stack.get("/api/health").headers["Content-Type"] == "application/json"
    refused = stack.post("/api/calls", {"to": "not a number"})
    assert refused.headers["Content-Type"] == "application/problem+json"


def test_a_handler_whose_parameters_are_not_its_bindings_does_not_load() -> None:
    """The Python worker refuses such a function (FunctionLoadError) and, in Azure, the whole app with it; the
    local host called handlers by position, so it served one."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="mismatch", methods=["GET"])  # binds `req`
    def mismatch(request: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("served")

    with pytest.raises(ValueError, match=r"cannot load the mismatch function: its parameters \['request'\]"):
        LocalFunctionHost(app)


def test_an_unhandled_exception_is_a_500_with_no_body_and_the_host_keeps_serving() -> None:
    """The host's ExceptionMiddleware sets 500 and writes nothing (the app's own `endpoint` never lets one out)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("a bug")

    with LocalFunctionHost(app) as host, requests.Session() as session:
        first = session.get(f"{host.base_url}/api/boom", timeout=10)
        second = session.get(f"{host.base_url}/api/boom", timeout=10)
    assert (first.status_code, first.content, "Content-Type" in first.headers) == (500, b"", False)
    assert second.status_code == 500


def test_a_body_over_the_hosts_size_limit_is_a_bare_500_and_one_under_it_reaches_the_routes_413(stack: Any) -> None:
    """As the deployment: over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (4 MiB in the template) the host answers 500 with
    no body before any function runs; an event delivery under it but over its route's 1 MiB reaches the route,
    whose problem senders do not retry."""
    events, json_type = stack.host.base_url + "/api/events/calls", {"Content-Type": "application/json"}
    over = stack.session.post(events, data=b"[" + b" " * 4 * 1024 * 1024 + b"]", headers=json_type, timeout=30)
    under = stack.session.post(events, data=b"[" + b" " * 1100 * 1024 + b"]", headers=json_type, timeout=30)

    assert (over.status_code, over.content) == (500, b"")
    assert under.status_code == 413, under.text
    assert under.json()["code"] == "payload_too_large"


def test_a_chunked_body_reaches_no_function_and_ends_its_connection(stack: Any) -> None:
    """As the host, a body without a Content-Length is not handed to the function; its unread chunks were left on
    the connection, where the next request read them as its own start."""
    port = int(stack.host.base_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        "POST",
        "/api/calls/validate",
        body=iter([b'{"to": "+12125550199"}']),
        headers={"Content-Type": "application/json"},
    )  # an iterable body is sent chunked
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()

    assert (answer.status, body["code"]) == (400, "invalid_json")  # the function saw no body
    assert answer.getheader("Connection") == "close"


@pytest.mark.parametrize("length", ["ten", "-5"])
def test_a_content_length_that_is_no_length_is_400_before_any_function(stack: Any, length: str) -> None:
    """It raised in the handler: the connection dropped with a traceback instead of Kestrel's 400."""
    port = int(stack.host.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
        answer = connection.makefile("rb").readline()

    assert answer.startswith(b"HTTP/1.1 400"), answer


def test_request_values_are_handed_over_as_the_host_does() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{value}", methods=["GET"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen = {"value": req.route_params["value"], "params": dict(req.params), "tag": req.headers.get("x-tag")}
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    with LocalFunctionHost(app) as host:
        connection = http.client.HTTPConnection("127.0.0.1", int(host.base_url.rsplit(":", 1)[1]), timeout=10)
        connection.putrequest("GET", "/api/echo/%2B1%20212%2Fx?a=1&A=2&empty=&Region=GB")
        for tag in ("one", "two"):  # one header sent twice
            connection.putheader("X-Tag", tag)
        connection.endheaders()
        answer = json.loads(connection.getresponse().read())
        connection.close()
    assert answer == {"value": "+1 212%2Fx", "params": {"a": "1,2", "Region": "GB"}, "tag": "one,two"}


def test_queue_options_come_from_host_json_and_the_app_agrees_with_them() -> None:
    options = QueueOptions.from_host_json()
    assert (options.max_dequeue_count, options.visibility_timeout) == (5, 2.0)
    assert (options.batch_size, options.fetch_below) == (4, 2)
    assert options.message_encoding == "base64"
    # The app counts deliveries itself (its last try stores the failure): it must count as the host does.
    host_json = json.loads((ROOT / "host.json").read_text())
    assert host_json["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT
    assert poison_queue_name(QUEUE_NAME) == POISON_QUEUE_NAME
    assert poison_queue_name(POISON_QUEUE_NAME) is None  # a poison queue has no poison queue of its own
    assert QueueOptions().fetch_below >= 8  # the default: half a batch of 16 per processor


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00:02", 2.0), ("00:10:00", 600.0), ("1.02:00:00", 93600.0), ("00:00:00.500", 0.5)]
)
def test_timespans_read_as_dotnet_writes_them(text: str, seconds: float) -> None:
    assert timespan_seconds(text) == seconds


SETTING = "LocalHostTestStorage"


@pytest.fixture
def queue_app(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """A throwaway app with one queue trigger on a fresh queue, and a runner for it with the given options."""
    monkeypatch.setenv(SETTING, azurite.connection_string)
    storage = storage_account({SETTING: azurite.connection_string}, SETTING)
    assert storage is not None
    runners: list[QueueRunner] = []

    def make(handler: Callable[[func.QueueMessage], None], queue: str, options: QueueOptions) -> Any:
        app = func.FunctionApp()
        app.queue_trigger(arg_name="msg", queue_name=queue, connection=SETTING)(handler)
        functions = [q for q in map(QueueFunction.from_function, app.get_functions()) if q]
        runner = QueueRunner(functions, options, lease_seconds=30)
        runners.append(runner)
        runner.start()
        return runner, storage

    yield make
    for runner in runners:
        runner.stop()


def fresh_queue() -> str:
    return f"q{uuid.uuid4().hex[:20]}"


def test_a_failing_message_is_retried_after_the_visibility_timeout_then_poisoned(queue_app: Any) -> None:
    tries: list[tuple[int, float]] = []

    def fails(msg: func.QueueMessage) -> None:
        tries.append((msg.dequeue_count or 0, time.monotonic()))
        raise RuntimeError("always")

    fails.__name__ = "fails"
    queue = fresh_queue()
    options = QueueOptions(max_dequeue_count=3, visibility_timeout=1, batch_size=4, new_batch_threshold=2)
    _, storage = queue_app(fails, queue, options)
    storage.queue(queue).send_message("job")

    poison: StorageAccount = storage
    eventually(
        lambda: poison.queue(f"{queue}-poison").get_queue_properties().approximate_message_count == 1,
        "the message in the poison queue",
        timeout=WAIT_SECONDS,
    )
    assert [count for count, _ in tries] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(tries)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # the storage service counts whole seconds
    [moved] = poison.queue(f"{queue}-poison").receive_messages()
    assert moved.content == "job"


def test_a_message_that_is_not_base64_is_poisoned_at_once_and_its_batch_mates_run(queue_app: Any) -> None:
    """The host decodes each message itself: one it cannot read goes to the poison queue without running. Read
    through the app's own client, the whole page failed to decode and every message in it waited out its lease."""
    bodies: list[bytes] = []

    def records(msg: func.QueueMessage) -> None:
        bodies.append(msg.get_body())

    records.__name__ = "records"
    queue = fresh_queue()
    runner, storage = queue_app(records, queue, QueueOptions(max_dequeue_count=5, visibility_timeout=0))
    storage.queue(queue, as_stored=True).send_message("not base64: a plain text message")
    for n in range(3):
        storage.queue(queue).send_message(f"job {n}")

    eventually(lambda: len(runner.deliveries) == 3, "the three good messages", timeout=WAIT_SECONDS)
    assert sorted(bodies) == [b"job 0", b"job 1", b"job 2"]
    poison = storage.queue(f"{queue}-poison", as_stored=True)
    eventually(
        lambda: poison.get_queue_properties().approximate_message_count == 1, "the poisoned one", timeout=WAIT_SECONDS
    )
    [moved] = poison.receive_messages()
    assert moved.content == "not base64: a plain text message"


def test_a_failure_on_a_poison_queue_is_not_retried_until_its_lease_ends(queue_app: Any) -> None:
    tries: list[int] = []

    def fails(msg: func.QueueMessage) -> None:
        tries.append(msg.dequeue_count or 0)
        raise RuntimeError("always")

    fails.__name__ = "fails_on_poison"
    queue = f"{fresh_queue()}-poison"
    runner, storage = queue_app(fails, queue, QueueOptions(max_dequeue_count=2, visibility_timeout=0))
    storage.queue(queue).send_message("job")

    eventually(lambda: runner.deliveries == [("fails_on_poison", False)], "the poison delivery", timeout=WAIT_SECONDS)
    runner.stop()
    # Not released: still invisible under its 30 s lease (a released one would be visible at once), and
    # not copied to a `-poison-poison` queue.
    assert list(storage.queue(queue).peek_messages()) == []
    assert tries == [1]


def test_a_batch_runs_in_parallel(queue_app: Any, azurite: Azurite) -> None:
    all_in = threading.Barrier(4, timeout=WAIT_SECONDS)

    def meets(msg: func.QueueMessage) -> None:
        all_in.wait()

    meets.__name__ = "meets"
    queue = fresh_queue()
    # All four are there at the runner's first poll, so they are one batch. Sent while it polled, a poll could take
    # three, and the fourth waited, as in the host, until fewer than the threshold ran: never, at the barrier.
    waiting = storage_account({SETTING: azurite.connection_string}, SETTING)
    assert waiting is not None
    for n in range(4):
        waiting.queue(queue).send_message(f"job {n}")
    runner, _ = queue_app(meets, queue, QueueOptions(batch_size=4, new_batch_threshold=2))

    eventually(lambda: runner.deliveries.count(("meets", True)) == 4, "four deliveries", timeout=WAIT_SECONDS)


def test_functions_run_on_the_workers_pool_of_python_threadpool_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections get a thread each, but at most PYTHON_THREADPOOL_THREAD_COUNT functions run at once, on the
    pool's threads, as the Python worker runs synchronous functions (docs/runtime.md, worker threads)."""
    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "2")
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    arrived, release, lock = threading.Semaphore(0), threading.Event(), threading.Lock()
    running, peak, threads = [0], [0], set()

    @app.route(route="hold", methods=["GET"])
    def hold(req: func.HttpRequest) -> func.HttpResponse:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.current_thread().name)
        arrived.release()
        release.wait(WAIT_SECONDS)
        with lock:
            running[0] -= 1
        return func.HttpResponse("held")

    with LocalFunctionHost(app) as host:
        answers: list[int] = []
        clients = [
            threading.Thread(
                target=lambda: answers.append(requests.get(f"{host.base_url}/api/hold", timeout=30).status_code)
            )
            for _ in range(5)
        ]
        for client in clients:
            client.start()
        assert arrived.acquire(timeout=WAIT_SECONDS) and arrived.acquire(timeout=WAIT_SECONDS)
        release.set()
        for client in clients:
            client.join(timeout=WAIT_SECONDS)
    assert answers == [200] * 5
    assert peak[0] == 2
    assert len(threads) <= 2 and all(name.startswith("worker") for name in threads)


def test_the_pool_is_sized_as_the_python_worker_sizes_it() -> None:
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "32"}) == 32
    assert worker_threads({}) == min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "none"}) == min(32, (os.cpu_count() or 1) + 4)
