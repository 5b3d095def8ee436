"""ALLOWED_USER_IDS and ALLOWED_QUEUE_IDS: a function key does not let its holder dial as anyone in the org."""

from __future__ import annotations

import pytest

from emulators.genesys import DEMO_QUEUE_ID, DEMO_USER_ID, NO_CLI_QUEUE_ID, NO_STATION_USER_ID
from shared.config import load_settings
from shared.errors import Problem
from tests.conftest import Stack
from tests.test_configuration import MINIMAL

CALL = {"to": "+12125550199"}
UNSET = {"ALLOWED_USER_IDS": None, "ALLOWED_QUEUE_IDS": None}


def refused(response, code: str, field: str) -> None:
    assert response.status_code == 403, response.text
    problem = response.json()
    assert (problem["code"], problem["field"], problem["retryable"]) == (code, field, False)


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
def test_unset_allows_only_the_configured_user(stack: Stack, configure, route: str) -> None:
    configure(**UNSET)

    other = stack.post(route, {**CALL, "userId": NO_STATION_USER_ID})
    configured = stack.post(route, {**CALL, "userId": DEMO_USER_ID})

    refused(other, "user_not_allowed", "userId")
    assert configured.status_code in (200, 201), configured.text
    assert all(c.path.endswith(DEMO_USER_ID) for c in stack.creates())


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
@pytest.mark.parametrize("mode", ["call", "callback"])
def test_unset_allows_no_queue_and_asks_genesys_nothing(stack: Stack, configure, route: str, mode: str) -> None:
    configure(**UNSET)

    response = stack.post(route, {**CALL, "queueId": DEMO_QUEUE_ID, "mode": mode})

    refused(response, "queue_not_allowed", "queueId")
    assert stack.genesys.requests() == []  # not even the queue's caller-ID lookup


def test_listed_ids_are_allowed_and_others_refused(stack: Stack, configure) -> None:
    configure(ALLOWED_USER_IDS=NO_STATION_USER_ID, ALLOWED_QUEUE_IDS=f" {DEMO_QUEUE_ID} ,")

    listed_queue = stack.post("/api/calls/validate", {**CALL, "queueId": DEMO_QUEUE_ID})
    other_queue = stack.post("/api/calls/validate", {**CALL, "queueId": NO_CLI_QUEUE_ID})
    other_user = stack.post("/api/calls/validate", {**CALL, "userId": "11111111-2222-4333-8444-555555555555"})
    default_user = stack.post("/api/calls/validate", CALL)  # GENESYS_CALL_USER_ID is always allowed

    assert listed_queue.status_code == 200, listed_queue.text
    refused(other_queue, "queue_not_allowed", "queueId")
    refused(other_user, "user_not_allowed", "userId")
    assert default_user.json()["userId"] == DEMO_USER_ID


def test_star_allows_any_id(stack: Stack, configure) -> None:
    configure(ALLOWED_USER_IDS="*", ALLOWED_QUEUE_IDS="*")

    response = stack.post("/api/calls", {**CALL, "userId": NO_STATION_USER_ID, "queueId": NO_CLI_QUEUE_ID})

    assert response.json()["code"] == "genesys_no_station"  # Genesys, not the allow-list, refused it


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_USER_IDS", "dana"),
        ("ALLOWED_USER_IDS", f"{DEMO_USER_ID},*"),
        ("ALLOWED_QUEUE_IDS", f"{DEMO_QUEUE_ID};{NO_CLI_QUEUE_ID}"),
    ],
)
def test_bad_allow_list_is_a_configuration_error_without_its_value(name: str, value: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, name: value})

    assert raised.value.code == "configuration_error"
    assert name in raised.value.detail
    assert value not in raised.value.detail
