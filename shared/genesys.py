"""A small Genesys Cloud REST client: token cache, pooled session, and the retry rules.

Reads (token, DIDs, queues, users, call status) retry transient faults with backoff. Creating a call is
retried only when Genesys provably did not act (429, 401 with a stale token, or a connection that
failed before the request was sent): a second POST after a 5xx or a read timeout could ring twice.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import re
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import requests

from shared import outbound
from shared.deadline import Deadline
from shared.errors import Problem, problem_from_genesys
from shared.logs import get_logger
from shared.waiting import FailureForWaiters

log = get_logger(__name__)

# The only body fields Genesys's CreateCallRequest has (reference/genesys-cloud-api.md).
CREATE_CALL_FIELDS = frozenset(
    {
        "phoneNumber",
        "callerId",
        "callerIdName",
        "callFromQueueId",
        "callQueueId",
        "callUserId",
        "priority",
        "languageId",
        "routingSkillsIds",
        "routingSkillExpression",
        "attributes",
        "conversationIds",
        "participants",
        "uuiData",
        "externalContactId",
        "label",
    }
)
RETRYABLE_READ_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_AFTER_SECONDS = 3  # what the official SDKs assume when a 429 has no Retry-After
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600  # a longer one is a broken header; it is passed on as the caller's wait
# A create refused 429 is sent again (after its Retry-After) at most this many times: an org held at its rate limit
# is not sent a stream of creates, nor the calling policy's storage reads that precede each.
MAX_RATE_LIMITED_RESENDS = 3
CREATE_ANSWER_SECONDS = 5.0  # the most time a create must have left to be sent (see GenesysClient._answer_time)
READ_ATTEMPTS = 3
TOKEN_SAFETY_MARGIN_SECONDS = 60.0
# A token lives at most 48 hours (5 minutes to 48 hours, set per OAuth client); a longer lifetime, or no number, is
# not believed
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600.0
MAX_TOKEN_LIFETIME_SECONDS = 48 * 3600.0
# What an Authorization header can carry (RFC 6750's b64token, an HTTP token for the scheme): any other token answer
# (a proxy's, a broken one) would fail each request as it is built or sent, and be kept for its whole lifetime
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
# Token failures not handed to the requests that waited on its fetch: what the fetching request's own time may have
# shaped (a Genesys timeout or connection, a 5xx it stopped retrying, a 429 it could not wait out). Any other is
# every waiter's: a refusal, a Key Vault that failed (each waiter read the vault again in turn, the sixth of six on a
# cold start 31 s on).
_NOT_HANDED_ON = frozenset({"genesys_timeout", "genesys_unavailable", "genesys_rate_limited"})
RENEWAL_RETRY_SECONDS = 5.0  # after a failed renewal, requests go on with the old token this long before the next try
# A client secret Genesys refused (invalid_client) twice, around a re-read, is not sent again, nor Key Vault read again
# for it, sooner: a wrong secret in the vault cost every request a vault read and two refused logins.
REFUSED_SECRET_SECONDS = 10.0
LISTING_PAGE_SIZE = 100
CORRELATION_HEADER = "ININ-Correlation-Id"
_E164 = re.compile(r"\+[1-9]\d{6,14}")


@dataclass(frozen=True)
class CreatedCall:
    conversation_id: str
    correlation_id: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any
    correlation_id: str | None
    retry_after: int | None


@dataclass(frozen=True)
class _Token:
    value: str  # as sent in Authorization: "bearer <token>"
    renew_at: float  # a safety margin before it expires: renewed from here
    expires_at: float


@dataclass(frozen=True)
class _RefusedSecret:
    secret: str
    answer: _Answer  # Genesys's refusal, handed to the requests that come until `until`
    until: float


class _SentAndLost(Exception):
    """The request may have reached Genesys but no answer came back (read timeout, dropped connection)."""


class _NotSent(Exception):
    """The connection failed before the request went out: safe to send again."""


def _retry_after(response: requests.Response) -> int | None:
    """Genesys's Retry-After in whole seconds, rounded up and at least 1: a 0 or a fraction would re-send a create
    at once, as fast as the loop turns. Unreadable (a date, infinity) is the SDKs' default."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = math.ceil(float(value))
    except (ValueError, OverflowError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(1, seconds), MAX_RETRY_AFTER_SECONDS)


_FREE_TEXT = ("message", "error_description")  # what a problem quotes of an answer; codes are read as sent


def _is_header_text(value: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _without_credentials(body: Any, authorization: str) -> Any:
    """The answer without the credentials its request carried (the token; the client secret, alone or as Basic) in
    its free text, which goes into problems and the readiness answer: a proxy or gateway may echo the request. The
    codes (`code`, OAuth's `error`) are left as sent: `invalid_client` asks for the secret to be read again."""
    if not isinstance(body, dict) or not authorization or not any(name in body for name in _FREE_TEXT):
        return body
    scheme, _, credential = authorization.partition(" ")
    withheld = {credential}
    if scheme.lower() == "basic":
        with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            withheld.add(base64.b64decode(credential, validate=True).decode().partition(":")[2])
    # ... and as JSON writes them (an echo written as an object, or quoted in a message): quotes and backslashes
    # escaped, other characters as they are or as \u escapes
    withheld |= {json.dumps(value, ensure_ascii=escaped)[1:-1] for value in withheld for escaped in (True, False)}
    cleaned = dict(body)
    for name in _FREE_TEXT:
        if body.get(name) is None:
            continue
        text = body[name] if isinstance(body[name], str) else json.dumps(body[name])  # an echo written as an object
        for value in sorted(withheld - {""}, key=len, reverse=True):  # the longest first: one may hold another
            text = text.replace(value, "[withheld]")
        cleaned[name] = text
    return cleaned


def _is_invalid_client(answer: _Answer) -> bool:
    return isinstance(answer.body, dict) and answer.body.get("error") == "invalid_client"


def _refusal(answer: _Answer, *, creating_call: bool) -> Problem:
    """Genesys's refusal as our problem; a 429 carries Genesys's own Retry-After where it sent one."""
    problem = problem_from_genesys(answer.status, answer.body, answer.correlation_id, creating_call=creating_call)
    if answer.status == 429 and answer.retry_after is not None:
        problem.retry_after = answer.retry_after
    return problem


def _token_lifetime(expires_in: Any) -> float:
    """The token's lifetime in seconds as its answer gives it, within what Genesys can issue; the default where it
    gives none that can be true (a word, a negative or an endless number)."""
    believable = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
    return (
        float(expires_in)
        if believable and 0 < expires_in <= MAX_TOKEN_LIFETIME_SECONDS
        else DEFAULT_TOKEN_LIFETIME_SECONDS
    )


def _backoff(attempt: int) -> float:
    return min(2.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2)


class GenesysClient:
    def __init__(
        self,
        *,
        api_base_url: str,
        login_base_url: str,
        client_id: str,
        client_secret: Callable[[bool], str],
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`client_secret(refresh)` returns the OAuth secret; `refresh=True` asks for a fresh read (rotation);
        `clock` times the token's life."""
        self._api = api_base_url
        self._login = login_base_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session = outbound.session(api_base_url, login_base_url)  # retries are ours (below)
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._token_failure = FailureForWaiters(clock, handed_on=lambda problem: problem.code not in _NOT_HANDED_ON)
        self._refused_secret: _RefusedSecret | None = None

    # ---- transport -------------------------------------------------------------------------------

    def _send(self, method: str, url: str, deadline: Deadline, **kwargs: Any) -> _Answer:
        """One request, no redirect followed (Genesys sends none; following one would send a create again).

        Built first: what requests refuses while building it (a header with a line break from a broken token
        answer, an invalid URL) was never sent, and its message, which quotes the header, is dropped. Anything
        raised once it may have left is "sent and lost".
        """
        read_timeout = min(self._read_timeout, max(0.1, deadline.remaining()))
        started = time.monotonic()
        try:
            prepared = self._session.prepare_request(requests.Request(method, url, **kwargs))
            settings = self._session.merge_environment_settings(prepared.url or url, {}, None, None, None)
        except (requests.RequestException, ValueError) as error:
            raise _NotSent(type(error).__name__) from None
        try:
            response = self._session.send(
                prepared,
                timeout=(min(self._connect_timeout, read_timeout), read_timeout),
                allow_redirects=False,
                **settings,
            )
        except requests.ConnectTimeout as error:
            raise _NotSent(type(error).__name__) from None
        except (requests.ConnectionError, requests.Timeout) as error:  # SSLError and ProxyError among them
            if _failed_before_sending(error):
                raise _NotSent(type(error).__name__) from None
            raise _SentAndLost(type(error).__name__) from None
        except Exception as error:  # noqa: BLE001 - an answer broken off or malformed: sent
            raise _SentAndLost(type(error).__name__) from None
        correlation_id = response.headers.get(CORRELATION_HEADER)
        log.info(
            "Genesys %s %s -> %s in %.0f ms (correlation %s)",
            method,
            url.split("?")[0].removeprefix(self._api).removeprefix(self._login),
            response.status_code,
            (time.monotonic() - started) * 1000,
            correlation_id,
        )
        try:
            body: Any = response.json()
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser reads
            body = None
        body = _without_credentials(body, str(kwargs.get("headers", {}).get("Authorization", "")))
        return _Answer(response.status_code, body, correlation_id, _retry_after(response))

    def _read(self, method: str, url: str, deadline: Deadline, **kwargs: Any) -> _Answer:
        """Send an idempotent request, retrying 429/502/503/504 and connection faults inside the deadline."""
        attempt = 0
        while True:
            try:
                answer: _Answer | None = self._send(method, url, deadline, **kwargs)
            except (_NotSent, _SentAndLost) as error:
                answer, failure = None, error
            out_of_attempts = attempt == READ_ATTEMPTS - 1
            if answer is not None and (answer.status not in RETRYABLE_READ_STATUSES or out_of_attempts):
                return answer
            wait = answer.retry_after if answer is not None and answer.retry_after is not None else _backoff(attempt)
            if out_of_attempts or not deadline.allows(wait + 0.5):
                if answer is None:
                    raise _transport_problem(failure, creating_call=False) from None
                return answer
            time.sleep(wait)
            attempt += 1

    # ---- token -----------------------------------------------------------------------------------

    def token(self, deadline: Deadline, *, stale: str | None = None) -> str:
        """A cached client-credentials token; one refresh in flight across threads, while the others go on with
        the token being renewed until it expires.

        `stale` is a token Genesys just refused: it is dropped, unless another thread already replaced it.
        Requests that waited while a fetch was refused for good (a wrong secret: two refused token requests and a
        vault read apiece) get its refusal at once rather than each asking again in turn; a request after it asks
        again. A failure that may pass (a timeout within the fetching request's own, maybe shorter, time) is not
        handed on.
        """
        asked_at = self._clock()  # the clock the failure for waiters keeps too
        cached = self._token
        if (
            stale is None
            and cached is not None
            and (asked_at < cached.renew_at or (asked_at < cached.expires_at and self._token_lock.locked()))
        ):
            return cached.value  # fresh; or being renewed by another request, and still good till then
        with self._token_lock:
            if stale is not None and self._token is not None and stale == self._token.value:
                self._token = None
            if self._token is None or self._clock() >= self._token.renew_at:
                try:
                    value, lifetime = self._token_failure.attempt(asked_at, lambda: self._request_token(deadline))
                except Problem as problem:
                    return self._still_good(problem)
                issued_at = self._clock()
                margin = min(TOKEN_SAFETY_MARGIN_SECONDS, lifetime / 10)
                self._token = _Token(value, issued_at + lifetime - margin, issued_at + lifetime)
            return self._token.value

    def _still_good(self, renewal_failure: Problem) -> str:
        """The token whose renewal failed, while it has not expired: Genesys still takes it, so the failure (a login
        host down for a minute, a secret rotated and revoked) fails no request before it must. Renewal is tried
        again RENEWAL_RETRY_SECONDS later, not by every request meanwhile. Raises the failure when there is none."""
        renewing, now = self._token, self._clock()
        if renewing is None or now >= renewing.expires_at:
            raise renewal_failure
        log.warning(
            "Renewing the Genesys token failed (%s); the current one is good for %.0f s more",
            renewal_failure.code,
            renewing.expires_at - now,
        )
        self._token = replace(renewing, renew_at=min(renewing.expires_at, now + RENEWAL_RETRY_SECONDS))
        return renewing.value

    def _request_token(self, deadline: Deadline) -> tuple[str, float]:
        """A token for the client secret; refused `invalid_client`, the secret is read again once (it may have
        rotated) and sent once more. A secret refused both times less than REFUSED_SECRET_SECONDS ago is not sent:
        its refusal is the answer (a secret put right in the vault is read within that time)."""
        secret = self._client_secret(False)
        refused = self._refused_secret
        if refused is not None and refused.secret == secret and self._clock() < refused.until:
            raise _refusal(refused.answer, creating_call=False)
        answer = self._token_request(secret, deadline)
        if _is_invalid_client(answer):
            log.warning("Genesys refused the cached client secret; re-reading it once (it may have rotated)")
            secret = self._client_secret(True)  # the same value too: Genesys may have refused it for a moment
            answer = self._token_request(secret, deadline)
        body = answer.body if isinstance(answer.body, dict) else {}
        access_token, scheme = body.get("access_token"), body.get("token_type") or "bearer"
        if answer.status == 200 and _is_header_text(access_token, _TOKEN) and _is_header_text(scheme, _TOKEN_TYPE):
            self._refused_secret = None
            return f"{scheme} {access_token}", _token_lifetime(body.get("expires_in"))
        if _is_invalid_client(answer):
            self._refused_secret = _RefusedSecret(secret, answer, self._clock() + REFUSED_SECRET_SECONDS)
        raise _refusal(answer, creating_call=False)

    def _token_request(self, secret: str, deadline: Deadline) -> _Answer:
        basic = base64.b64encode(f"{self._client_id}:{secret}".encode()).decode()
        return self._read(
            "POST",
            f"{self._login}/oauth/token",
            deadline,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            data={"grant_type": "client_credentials"},
        )

    # ---- API -------------------------------------------------------------------------------------

    def _api_call(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        *,
        before_create: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> _Answer:
        """One API request with the bearer token; a 401 refreshes the token and tries once more.

        `before_create` marks a create: it is called right before each send of it (a re-send after a 429 or a
        connection never made, or after a token refresh, too), where the first byte could reach Genesys.
        """
        creating_call = before_create is not None
        token = self.token(deadline)
        for refreshed in (False, True):
            headers = {"Authorization": token, "Accept": "application/json"}
            url = f"{self._api}{path}"
            if before_create is not None:
                answer = self._send_create(method, url, deadline, before_create, headers=headers, **kwargs)
            else:
                answer = self._read(method, url, deadline, headers=headers, **kwargs)
            if answer.status != 401 or refreshed:
                break
            token = self.token(deadline, stale=token)
        # Every answer of the API is a JSON object; a redirect is no answer either
        if not 200 <= answer.status < 300 or not isinstance(answer.body, dict):
            if 200 <= answer.status < 300:
                raise Problem(
                    "genesys_unavailable",
                    f"Genesys Cloud answered {answer.status} without a JSON object.",
                    outcome_unknown=creating_call,
                )
            raise _refusal(answer, creating_call=creating_call)
        return answer

    def _send_create(
        self, method: str, url: str, deadline: Deadline, before_send: Callable[[], None], **kwargs: Any
    ) -> _Answer:
        """Send a create, re-sending only after a 429 (waiting Retry-After) or a connection never made;
        `before_send` runs right before each send (it may refuse it by raising).

        Only with time left to hear the answer (`_answer_time`): a stall before the send (a slow storage write, a
        secret re-read after a rotation, a Retry-After) would otherwise send it too late to learn what Genesys
        did, and the caller would be told "it may have been placed" of a call that rang, or may retry and dial.
        """
        answer_time = self._answer_time(deadline)
        connect_failures = rate_limited = 0
        while True:
            before_send()  # storage writes and reads: the deadline is looked at after them
            if not deadline.allows(answer_time):
                raise Problem(
                    "genesys_unavailable",
                    "The call was not sent: too little of the request's time (CALL_DEADLINE_SECONDS) was left to "
                    "hear Genesys Cloud's answer.",
                    retry_after=5,
                )
            try:
                answer = self._send(method, url, deadline, **kwargs)
            except _NotSent as error:
                connect_failures += 1
                wait = _backoff(connect_failures)
                if connect_failures >= READ_ATTEMPTS or not deadline.allows(wait + answer_time):
                    raise _transport_problem(error, creating_call=True) from None
                time.sleep(wait)
                continue
            except _SentAndLost as error:
                raise _transport_problem(error, creating_call=True) from None
            if answer.status != 429:
                return answer
            rate_limited += 1
            wait = answer.retry_after if answer.retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS
            if rate_limited > MAX_RATE_LIMITED_RESENDS or not deadline.allows(wait + answer_time):
                raise _refusal(answer, creating_call=True)
            log.info("Genesys rate limit on create; waiting %s s as Retry-After asks", wait)
            time.sleep(wait)

    def _answer_time(self, deadline: Deadline) -> float:
        """How much time a create is sent with at the least: its read timeout, at most 5 s (a create's answer
        comes in about one), and at most half the request's budget (a short CALL_DEADLINE_SECONDS still sends)."""
        return min(self._read_timeout, CREATE_ANSWER_SECONDS, deadline.seconds / 2)

    def create_call(
        self, user_id: str, body: dict[str, Any], deadline: Deadline, before_send: Callable[[], None] = lambda: None
    ) -> CreatedCall:
        """Create a call on behalf of `user_id`; `before_send` runs right before each send that can reach Genesys."""
        unknown = set(body) - CREATE_CALL_FIELDS
        if unknown:
            raise ValueError(f"not CreateCallRequest fields: {sorted(unknown)}")
        path = f"/api/v2/conversations/calls/user/{_segment(user_id)}"
        answer = self._api_call("POST", path, deadline, before_create=before_send, json=body)
        return _created(answer, answer.body.get("id") if isinstance(answer.body, dict) else None)

    def create_callback(
        self, body: dict[str, Any], deadline: Deadline, before_send: Callable[[], None] = lambda: None
    ) -> CreatedCall:
        """Create a callback (`CreateCallbackCommand`): it waits in the queue until an agent takes it."""
        answer = self._api_call(
            "POST", "/api/v2/conversations/callbacks", deadline, before_create=before_send, json=body
        )
        conversation = answer.body.get("conversation") if isinstance(answer.body, dict) else None
        return _created(answer, conversation.get("id") if isinstance(conversation, dict) else None)

    def get_call(self, conversation_id: str, deadline: Deadline) -> dict[str, Any]:
        return self._api_call("GET", f"/api/v2/conversations/calls/{_segment(conversation_id)}", deadline).body

    def get_user(self, user_id: str, deadline: Deadline) -> dict[str, Any]:
        """The user (`state` is active, inactive or deleted); needs no permission beyond a valid token."""
        return self._api_call("GET", f"/api/v2/users/{_segment(user_id)}", deadline).body

    def get_queue(self, queue_id: str, deadline: Deadline) -> dict[str, Any]:
        return self._api_call("GET", f"/api/v2/routing/queues/{_segment(queue_id)}", deadline).body

    def list_did_numbers(self, deadline: Deadline) -> list[str]:
        """Every active DID of the organization: the numbers assigned to a user, a phone, an IVR or a group (an
        inactive or deleted one is the org's no longer)."""
        dids = self._all_pages("/api/v2/telephony/providers/edges/dids", deadline)
        return [
            did["phoneNumber"]
            for did in dids
            if isinstance(did.get("phoneNumber"), str) and did.get("state", "active") == "active"
        ]

    def list_did_pool_ranges(self, deadline: Deadline) -> list[tuple[str, str]]:
        """The organization's active DID pools as (first, last) E.164 numbers of one length: its numbers, assigned
        or not (a number kept for outbound caller ID only is in a pool, and no DID). A pool that is no such range
        is left out and logged."""
        ranges = []
        for pool in self._all_pages("/api/v2/telephony/providers/edges/didpools", deadline):
            first, last = pool.get("startPhoneNumber"), pool.get("endPhoneNumber")
            if pool.get("state", "active") != "active":
                continue
            if isinstance(first, str) and isinstance(last, str) and _is_range(first, last):
                ranges.append((first, last))
            else:
                log.warning("DID pool %s is no range of E.164 numbers of one length; left out", pool.get("id"))
        return ranges

    def _all_pages(self, path: str, deadline: Deadline) -> list[dict[str, Any]]:
        """Every entity of a paged listing (`entities`, `pageCount`)."""
        entities: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._api_call(
                "GET", path, deadline, params={"pageSize": LISTING_PAGE_SIZE, "pageNumber": page}
            ).body
            entities += [entity for entity in body.get("entities", []) if isinstance(entity, dict)]
            if page >= int(body.get("pageCount") or 1):
                return entities
            page += 1


def _is_range(first: str, last: str) -> bool:
    return bool(_E164.fullmatch(first) and _E164.fullmatch(last)) and len(first) == len(last) and first <= last


def _created(answer: _Answer, conversation_id: Any) -> CreatedCall:
    """The conversation Genesys created; an accepted create without an id leaves the outcome unknown."""
    if not conversation_id:
        raise Problem(
            "genesys_unavailable", "Genesys Cloud accepted the request without a conversation id.", outcome_unknown=True
        )
    return CreatedCall(str(conversation_id), answer.correlation_id)


def _segment(value: str) -> str:
    """Quote an id for a URL path segment, so input can never address another route."""
    return requests.utils.quote(value, safe="")


def _failed_before_sending(error: requests.RequestException) -> bool:
    """Whether no byte of the request can have left: no connection was made (refused, DNS; to Genesys or to
    the proxy), the proxy refused the tunnel (its CONNECT answered other than 200: the request goes only through
    an open tunnel), or the TLS handshake failed or stalled (the request is sent only once it is done).

    Any other failure may come after the request went out: a TLS error in the answer (a corrupt record from a
    failing TLS-inspecting firewall), a read timeout, or a proxy that drops the connection after relaying the
    request (requests reports that as "Unable to connect to proxy" too). A create must then count as sent:
    sending it again could ring the callee twice.
    """
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    reason = getattr(error.args[0], "reason", error.args[0]) if error.args else None
    reason = getattr(reason, "original_error", reason)  # a ProxyError names what it met
    if isinstance(reason, (NewConnectionError, NameResolutionError)):
        return True
    if isinstance(reason, OSError) and str(reason).startswith(_TUNNEL_REFUSED):
        return True
    return any(
        isinstance(cause, ssl.SSLCertVerificationError) or _raised_in_handshake(cause) for cause in _causes(reason)
    )


# http.client's words when a proxy answers CONNECT with anything but 200 (HTTPConnection._tunnel)
_TUNNEL_REFUSED = "Tunnel connection failed"


def _raised_in_handshake(error: object) -> bool:
    """Whether `error` came out of the TLS handshake of a new connection (urllib3 reports a handshake that times
    out as a read timeout): a reused connection has done its handshake, so this is never the answer's read."""
    trace = error.__traceback__ if isinstance(error, BaseException) else None
    return any(frame.f_code.co_name == "do_handshake" for frame, _ in traceback.walk_tb(trace))


def _causes(error: object) -> Iterator[object]:
    """The error and what it wraps (urllib3 passes the original as its first argument), a few levels deep."""
    for _ in range(5):
        if not isinstance(error, BaseException):
            return
        yield error
        error = error.__cause__ or error.__context__ or (error.args[0] if error.args else None)


def _transport_problem(error: Exception, *, creating_call: bool) -> Problem:
    if isinstance(error, _SentAndLost):
        return Problem(
            "genesys_timeout",
            f"Genesys Cloud did not answer in time ({error}).",
            outcome_unknown=creating_call,
            retry_after=5,
        )
    return Problem("genesys_unavailable", f"Genesys Cloud could not be reached ({error}).", retry_after=5)
