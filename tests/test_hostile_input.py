"""Property-based tests of the HTTP surface: whatever arrives, the answer is never a 5xx.

Every answer is either a success or a catalog problem; each input is counted for docs/reliability.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import CATALOG
from tests.conftest import TALLY, Stack

FIELDS = [
    "to",
    "from",
    "callerIdName",
    "queueId",
    "userId",
    "region",
    "attributes",
    "uuiData",
    "label",
    "externalContactId",
]
ROUTES = ["/api/calls", "/api/calls/validate", "/api/webhooks/calls", "/api/events/calls"]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same inputs on every run, so CI failures reproduce
)

# Control characters, emoji, and lone UTF-16 surrogates (valid JSON escapes such as "\ud800", never valid Unicode).
# (st.text leaves surrogates out whatever its alphabet, hence a list of characters joined.)
any_text = st.lists(st.characters(codec="utf-8") | st.characters(categories=["Cs"]), max_size=80).map("".join)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=30,
)
phone_like = st.text(alphabet="+0123456789 ()-.tel:;ext=x#*", max_size=70) | st.from_regex(
    r"\+\d{1,40}", fullmatch=True
)


@pytest.fixture
def stack(stack: Stack, configure) -> Stack:
    """The usual stack, with a webhook secret so that unsigned webhooks are refused as clients' faults."""
    configure(WEBHOOK_SECRET="fuzz-webhook-secret")
    return stack


def check(stack: Stack, response: Any) -> None:
    """The one property: no 5xx; errors are catalog problems."""
    TALLY.hostile(response)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        if "results" in body:  # an event batch: a document of each event's own answer, not one problem
            assert response.headers["Content-Type"].startswith("application/json")
            assert all(r["status"] < 400 or r["body"]["code"] in CATALOG for r in body["results"])
            return
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert body["code"] in CATALOG
        assert body["status"] == response.status_code


def send(stack: Stack, route: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return stack.session.post(
        stack.host.base_url + route,
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


@FUZZ
@given(body=st.binary(max_size=2048), route=st.sampled_from(ROUTES))
def test_random_bytes(stack: Stack, body: bytes, route: str) -> None:
    check(stack, send(stack, route, body))


@FUZZ
@given(value=json_values, route=st.sampled_from(ROUTES))
def test_random_json_documents(stack: Stack, value: Any, route: str) -> None:
    check(stack, send(stack, route, json.dumps(value).encode()))


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {"to": phone_like | json_values}, optional={f: json_values | any_text for f in FIELDS if f != "to"}
    ),
    route=st.sampled_from(ROUTES),
)
def test_wrong_types_and_odd_text_in_every_field(stack: Stack, body: dict[str, Any], route: str) -> None:
    check(stack, send(stack, route, json.dumps(body).encode()))


@FUZZ
@given(to=phone_like, region=st.sampled_from(["US", "GB", "DE", "IN", "BR", "JP", "us", "ZZ", ""]))
def test_number_like_strings(stack: Stack, to: str, region: str) -> None:
    check(stack, send(stack, "/api/calls/validate", json.dumps({"to": to, "region": region}).encode()))


@settings(FUZZ, max_examples=30)
@given(depth=st.integers(min_value=1, max_value=8000), entries=st.integers(min_value=0, max_value=2000))
def test_deep_and_huge_documents(stack: Stack, depth: int, entries: int) -> None:
    deep = b"[" * depth + b"]" * depth
    huge = json.dumps({"to": "+12125550199", "attributes": {f"k{i}": "v" * 10 for i in range(entries)}}).encode()
    check(stack, send(stack, "/api/calls", deep))
    check(stack, send(stack, "/api/calls", huge))


# What an HTTP header can carry (requests refuses leading whitespace such as U+00A0 before sending).
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=255), max_size=300).filter(
    lambda value: value == value.strip()
)


@FUZZ
@given(content_type=header_text)
def test_odd_content_types(stack: Stack, content_type: str) -> None:
    check(stack, send(stack, "/api/calls", b'{"to": "+12125550199"}', {"Content-Type": content_type}))


@FUZZ
@given(key=header_text, to=st.sampled_from(["+12125550199", "+12125550198", "+442079460958"]))
def test_odd_idempotency_keys(stack: Stack, key: str, to: str) -> None:
    check(stack, send(stack, "/api/calls", json.dumps({"to": to}).encode(), {"Idempotency-Key": key}))
