"""HTTP edges: reading a JSON request safely and answering JSON or problem+json.

Every handler goes through `endpoint`, so no route can leak a stack trace or answer a bare 500.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared.errors import Problem
from shared.idempotency import Reply
from shared.logs import get_logger, log_fields

log = get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_EVENTS_BYTES = 1024 * 1024  # an Event Grid or CloudEvents batch: Event Grid's largest is 1 MB (1024 KB)
MAX_JSON_DEPTH = 64  # arrays and objects inside each other: no request of any sender needs a tenth of it
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")  # also cloudevents(-batch)+json

Handler = Callable[[func.HttpRequest, str], func.HttpResponse]


def request_id_for(req: func.HttpRequest) -> str:
    """The caller's `X-Request-Id` when it is a sane token, else a fresh one: it ties logs to answers."""
    given = req.headers.get("x-request-id", "")
    return given if CLIENT_REQUEST_ID.fullmatch(given) else str(uuid.uuid4())


def json_response(status: int, body: Any, request_id: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers={"X-Request-Id": request_id, **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(problem: Problem, request_id: str) -> func.HttpResponse:
    headers = {"X-Request-Id": request_id, "Cache-Control": "no-store", **problem.headers()}
    return func.HttpResponse(
        json.dumps(problem.to_json(request_id), ensure_ascii=False),
        status_code=problem.status,
        headers=headers,
        mimetype="application/problem+json",
        charset="utf-8",
    )


def reply_response(reply: Reply, replayed: bool, request_id: str) -> func.HttpResponse:
    """A stored or fresh answer; a replay says so, as the Idempotency-Key draft asks.

    One request, one id: the header carries the id in the body, which on a replay (and for an asynchronous
    job) is the id of the request that did the work.
    """
    answered_by = reply.body.get("requestId")
    headers = {"X-Request-Id": answered_by if isinstance(answered_by, str) else request_id, **reply.headers}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    is_problem = reply.status >= 400 and "code" in reply.body  # a batch's results are not one problem
    if is_problem:
        headers["Cache-Control"] = "no-store"  # as every problem: a stored one replayed is no different
    return func.HttpResponse(
        json.dumps(reply.body, ensure_ascii=False),
        status_code=reply.status,
        headers=headers,
        mimetype="application/problem+json" if is_problem else "application/json",
        charset="utf-8",
    )


def refusal_for_sender(problem: Problem, request_id: str, for_sender: Callable[[Reply], Reply]) -> func.HttpResponse:
    """A refusal in the statuses a push sender acts on (`shared/webhooks/redelivery.py`), logged as every answer."""
    reply = for_sender(Reply.of_problem(problem, request_id))
    log.info("Answered %s %s", reply.status, problem.code)
    return reply_response(reply, False, request_id)


def endpoint(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Give a handler its request id and turn every failure into a problem answer."""

    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        request_id = request_id_for(req)
        with log_fields(request_id=request_id, idempotency_key=req.headers.get("Idempotency-Key")):
            try:
                return handler(req, request_id)
            except Problem as problem:
                log.info("Answered %s %s", problem.status, problem.code)
                return problem_response(problem, request_id)
            except Exception:
                log.exception("Failed unexpectedly")
                return problem_response(
                    Problem("internal_error", "An unexpected error occurred; nothing more is known."), request_id
                )

    # The Functions worker reads the signature to bind `req`: copy the name, not `__wrapped__`.
    wrapper.__name__ = wrapper.__qualname__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def public_url(req: func.HttpRequest, path: str) -> str:
    """An absolute URL on the host the caller used (Power Automate needs one to unsubscribe)."""
    url = urlsplit(req.url)
    return f"{url.scheme}://{req.headers.get('host') or url.netloc}{path}"


def media_type_of(headers: Mapping[str, str]) -> str:
    """The Content-Type's media type, lower case, without its parameters; empty when there is none."""
    return (headers.get("content-type") or "").split(";")[0].strip().lower()


def query_value(req: func.HttpRequest, name: str) -> str | None:
    """A query parameter by any spelling of its name (`?Region=GB`), as ASP.NET Core reads a query; the host hands
    the worker the names as the client spelled them, and `req.params` looks them up exactly."""
    return one_value(next((value for key, value in req.params.items() if key.lower() == name), None), name)


def header_value(req: func.HttpRequest, name: str) -> str | None:
    """A request header that holds one value."""
    return one_value(req.headers.get(name), name)


def one_value(joined: str | None, name: str) -> str | None:
    """The value of a header or query parameter the host may have joined with commas from several (`ToRpcHttp`):
    the same value given twice is that value (else `K,K` would be another idempotency key than a retry's `K`, and
    dial again); different values, or a comma in one, are refused."""
    if joined is None or "," not in joined:
        return joined
    values = {value.strip() for value in joined.split(",")}
    if len(values) != 1:
        raise Problem(
            "validation_failed",
            f"{name} was given more than once with different values, or holds a comma: give one value, without commas.",
            field=name,
        )
    return values.pop()


def route_value(req: func.HttpRequest, name: str) -> str:
    """A route parameter as sent: the host decodes every percent-escape of a route value but `%2F`, which decoded
    would have matched another route (`030%2F1234567`: the slash written in a phone number)."""
    return re.sub("%2[Ff]", "/", req.route_params.get(name, ""))


def wants_async(req: func.HttpRequest) -> bool:
    """RFC 7240 `Prefer: respond-async`: the caller would rather poll than wait. A preference's name is its token
    before any `=` value or `;` parameters (`respond-async; wait=5`)."""
    preferences = (req.headers.get("prefer") or "").lower().split(",")
    return any(re.split(r"[=;]", preference, maxsplit=1)[0].strip() == "respond-async" for preference in preferences)


def read_body(
    req: func.HttpRequest,
    max_bytes: int = MAX_BODY_BYTES,
    *,
    media_type_optional: bool = False,
    text_plain: bool = False,
) -> bytes:
    """The raw body (what signatures cover), refused past `max_bytes`; JSON media types only.

    `media_type_optional`: a sender that may leave Content-Type out (CloudEvents binary mode) sends JSON.
    `text_plain`: a sender that labels its JSON text/plain (AWS SNS)."""
    media_type = media_type_of(req.headers)
    if not media_type and media_type_optional:
        media_type = "application/json"
    if not _JSON_TYPES.match(media_type) and not (text_plain and media_type == "text/plain"):
        raise Problem(
            "unsupported_media_type",
            f"Content-Type is {media_type or 'missing'}; this endpoint reads application/json.",
        )
    body = req.get_body()
    if len(body) > max_bytes:
        raise Problem("payload_too_large", f"The body has {len(body)} bytes; the limit is {max_bytes}.")
    return body


def parse_json(body: bytes) -> Any:
    """UTF-8 JSON whose every string is valid Unicode, or the problem that says what is wrong with it. A byte order
    mark before it is ignored, as RFC 8259 allows (Notepad and PowerShell 5 write one).

    JSON may escape a lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8 encoder accepts: refused here, by
    path, so it never reaches a log line, a fingerprint or an answer.
    """
    if _nested_past_the_cap(body):
        raise _too_deep()
    try:
        value = json.loads(body.decode("utf-8-sig"), object_pairs_hook=_unique_names)
    except UnicodeDecodeError:
        raise Problem("invalid_json", "The body is not valid JSON: it is not UTF-8.") from None
    except ValueError as error:  # JSONDecodeError, a repeated name, or an integer past Python's digit limit
        detail = error.args[0] if isinstance(error, json.JSONDecodeError | DuplicateName) else "a number is too long"
        raise Problem("invalid_json", f"The body is not valid JSON: {detail}.") from None
    path = _unpaired_surrogate(value)
    if path is not None:
        raise Problem(
            "validation_failed",
            f"{path or 'The body'} holds an unpaired UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode text.",
            field=path or None,
        )
    return value


# A string runs to its closing quote, or, unclosed, to the end: required to close, a match tried from every quote
# of `[[...["\"\"\"...` would scan to the end each time (a 256 KiB delivery took minutes of CPU).
_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def _nested_past_the_cap(body: bytes) -> bool:
    """Whether arrays and objects nest past MAX_JSON_DEPTH, told before `json.loads`, which recurses once per level:
    parsing thousands of levels runs the thread to the interpreter's recursion limit, where anything else it does
    then (a finalizer's warning, a log line) fails too. A body with few brackets (any call request) is counted
    only; otherwise its strings go, then its innermost pairs, one level a pass."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _STRING_LITERAL.sub(b"", body).translate(None, _NOT_A_BRACKET)
    for _ in range(MAX_JSON_DEPTH):
        brackets, removed = _INNERMOST_PAIR.subn(b"", brackets)
        if not removed:  # none left, or unclosed ones: as deep as the openings that stand
            return brackets.count(b"[") + brackets.count(b"{") > MAX_JSON_DEPTH
    return bool(brackets)


def _too_deep() -> Problem:
    return Problem(
        "invalid_json", f"The body is not valid JSON: it is nested too deeply (over {MAX_JSON_DEPTH} levels)."
    )


class DuplicateName(ValueError):
    """An object names a member twice: JSON parsers disagree on which one counts (RFC 8259, 4)."""


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, refused when a name repeats: a proxy or a signer reading the first `to` while we read the
    last would check one call and let us place another."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateName(f"the name {json.dumps(name)[:60]} appears twice in one object")
            seen.add(name)
    return value


def _unpaired_surrogate(value: Any) -> str | None:
    """The path (names ASCII-escaped) of the first string or name that UTF-8 cannot encode, else None."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not (item.isascii() or _encodable(item)):
                return path
            continue
        if not isinstance(item, (dict, list)):
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(item, dict):
            for name, child in item.items():
                named = path + ("." if path else "") + json.dumps(name)[1:-1]
                if not _encodable(name):
                    return named
                children.append((named, child))
        else:
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
        pending.extend(reversed(children))  # the first child is looked at first, as the document reads
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_given(value: Any) -> bool:
    """Whether a request field holds a value: null and blank text are absent, as a flow's empty column sends ""."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def read_json_object(req: func.HttpRequest, body: bytes | None = None) -> dict[str, Any]:
    """The body (or `body`, already read) as a JSON object, or the problem that says what is wrong with it."""
    value = parse_json(read_body(req) if body is None else body)
    if not isinstance(value, dict):
        raise Problem("invalid_json", f"The body must be a JSON object, not {json_kind(value)}.")
    return value


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words: a problem's detail speaks to the sender, not to Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)
