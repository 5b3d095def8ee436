"""GET /api/calls/{conversationId}: Genesys's conversation mapped to five statuses and catalog failures."""

from __future__ import annotations

import uuid

import pytest
import requests

from emulators.azurite import Azurite
from emulators.genesys import DEMO_QUEUE_ID, DEMO_USER_ID, NO_CLI_QUEUE_ID, Fault
from shared.call_status import describe
from tests.conftest import HTTP_TIMEOUT, Stack
from tests.table_front import table_front, through_front


def place(stack: Stack, to: str) -> str:
    response = stack.post("/api/calls", {"to": to})
    assert response.status_code == 201, response.text
    return response.json()["conversationId"]


def test_a_new_call_is_initiated_with_its_numbers(stack: Stack) -> None:
    conversation_id = place(stack, "+12125550199")

    status = stack.get(f"/api/calls/{conversation_id}").json()

    assert status["conversationId"] == conversation_id
    assert status["status"] == "initiated"
    assert (status["to"], status["from"]) == ("+12125550199", "+13175550100")
    assert "failure" not in status


@pytest.mark.parametrize(
    ("state", "disconnect_type", "error_info", "expected"),
    [
        ("alerting", None, None, "ringing"),
        ("connected", None, None, "connected"),
        ("disconnected", "peer", None, "ended"),
        ("disconnected", "client", None, "ended"),
        ("terminated", "endpoint", None, "ended"),
    ],
)
def test_genesys_states_map_to_our_statuses(
    stack: Stack, state: str, disconnect_type: str | None, error_info: dict | None, expected: str
) -> None:
    conversation_id = place(stack, "+12125550199")
    stack.genesys.set_call_state(conversation_id, state, disconnect_type=disconnect_type, error_info=error_info)

    assert stack.get(f"/api/calls/{conversation_id}").json()["status"] == expected


def test_an_answered_call_cut_by_a_failure_ended_and_did_not_fail(stack: Stack) -> None:
    """A failed call is one that never reached the person: a flow that calls again on "failed" would ring someone
    who had answered. How it was cut is in disconnectType."""
    conversation_id = place(stack, "+12125550199")
    stack.genesys.set_call_state(conversation_id, "connected")
    stack.genesys.set_call_state(conversation_id, "disconnected", disconnect_type="transport.failure")

    status = stack.get(f"/api/calls/{conversation_id}").json()

    assert (status["status"], status["disconnectType"]) == ("ended", "transport.failure")
    assert status["connectedTime"] and "failure" not in status


def test_unreachable_number_is_failed_with_the_catalog_code(stack: Stack) -> None:
    conversation_id = place(stack, "+12125550100")  # unreachable in the emulated org
    stack.genesys.set_call_state(
        conversation_id,
        "disconnected",
        disconnect_type="error",
        error_info={"code": "error.ininedgecontrol.connection.dialplan.notReachable", "message": "not reachable"},
    )

    status = stack.get(f"/api/calls/{conversation_id}").json()

    assert status["status"] == "failed"
    assert status["failure"]["code"] == "destination_unreachable"
    assert status["failure"]["retryable"] is False
    assert status["failure"]["upstream"]["code"] == "error.ininedgecontrol.connection.dialplan.notReachable"


@pytest.mark.parametrize(
    ("error_code", "disconnect_type", "expected"),
    [
        ("error.ininedgecontrol.connection.dialplan.notReachable", "error", "destination_unreachable"),
        ("error.ininedgecontrol.session.busy", "peer", "destination_busy"),
        ("error.ininedgecontrol.remote.noAnswer", "peer", "destination_no_answer"),
        ("error.ininedgecontrol.session.rejected", "peer", "destination_rejected"),
        ("error.ininedgecontrol.something.new", "error", "call_failed"),
        (None, "transport.failure", "call_failed"),
        # Flagged as spam: not a passing fault, and a flow that retries `retryable` failures must not redial it
        (None, "spam", "destination_rejected"),
        ("error.ininedgecontrol.session.busy", "spam", "destination_busy"),  # errorInfo, when given, says more
    ],
)
def test_error_info_codes_map_through_the_catalog(error_code: str | None, disconnect_type: str, expected: str) -> None:
    error_info = {"code": error_code, "message": "from Genesys"} if error_code else None
    conversation = {
        "id": "c",
        "participants": [
            {"purpose": "agent", "state": "connected"},
            {
                "purpose": "customer",
                "state": "disconnected",
                "disconnectType": disconnect_type,
                "errorInfo": error_info,
            },
        ],
    }

    assert describe(conversation)["failure"]["code"] == expected


@pytest.mark.parametrize(
    ("address", "number"),
    [
        ("tel:+12125550199", "+12125550199"),
        ("sip:+12125550199@10.0.0.5;user=phone", "+12125550199"),
        ("SIPS:+442071838750@edge.internal", "+442071838750"),
        ("+12125550199", "+12125550199"),
    ],
)
def test_the_status_shows_the_number_of_an_address_and_never_a_sip_host(address: str, number: str) -> None:
    conversation = {"id": "c", "participants": [{"purpose": "customer", "state": "alerting", "address": address}]}

    assert describe(conversation)["to"] == number


def test_unknown_conversation_is_genesys_not_found(stack: Stack) -> None:
    response = stack.get(f"/api/calls/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["code"] == "genesys_not_found"
    assert response.json()["upstream"]["code"] == "conversation.error.conversation.not.found"


@pytest.mark.parametrize("conversation_id", ["not-a-uuid", f"{uuid.uuid4()}%0A"], ids=["word", "uuid-newline"])
def test_malformed_conversation_id_is_validation_failed(stack: Stack, conversation_id: str) -> None:
    """A trailing newline is no part of an id (a `$` anchor lets one through `re.match`)."""
    response = stack.get(f"/api/calls/{conversation_id}")

    assert response.status_code == 400
    assert response.json()["field"] == "conversationId"
    assert stack.genesys.requests() == []


def test_status_read_is_retried_on_503(stack: Stack) -> None:
    conversation_id = place(stack, "+12125550199")
    stack.genesys.inject("get_call", Fault(status=503))

    assert stack.get(f"/api/calls/{conversation_id}").status_code == 200
    assert len(stack.genesys.requests("get_call")) == 2


def test_a_call_waiting_in_a_queue_it_may_not_use_is_not_shown(stack: Stack, configure) -> None:
    """A conversation whose queue shows only on its `acd` participant (a call to a queue, an untaken callback) was
    shown to a key that may use no queue, numbers and all: only agent and user participants' queues were read."""
    token = requests.post(
        f"{stack.genesys.base_url}/oauth/token",
        auth=(stack.genesys.client_id, stack.genesys.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=HTTP_TIMEOUT,
    ).json()["access_token"]
    to_the_queue = requests.post(  # placed by another system of the org, for the default user, to the queue
        f"{stack.genesys.base_url}/api/v2/conversations/calls/user/{DEMO_USER_ID}",
        json={"callQueueId": DEMO_QUEUE_ID, "callerId": "+13175550100"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert to_the_queue.status_code in (200, 201), to_the_queue.text
    configure(ALLOWED_USER_IDS="*", ALLOWED_QUEUE_IDS=None)

    refused = stack.get(f"/api/calls/{to_the_queue.json()['id']}")

    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "queue_not_allowed"


def test_the_allow_lists_apply_to_reading_a_calls_status(stack: Stack, configure) -> None:
    """A key restricted to other users and queues cannot read a call's status, nor the numbers it carries."""
    placed_by_default_user = place(stack, "+12125550199")
    from_queue = stack.post("/api/calls", {"to": "+12125550142", "queueId": DEMO_QUEUE_ID})
    assert from_queue.status_code == 201, from_queue.text
    placed_from_queue = from_queue.json()["conversationId"]
    other_user = "11111111-2222-4333-8444-555555555555"

    configure(GENESYS_CALL_USER_ID=other_user, ALLOWED_USER_IDS=other_user)
    other_users_key = stack.get(f"/api/calls/{placed_by_default_user}")
    configure(ALLOWED_QUEUE_IDS=NO_CLI_QUEUE_ID)
    other_queues_key = stack.get(f"/api/calls/{placed_from_queue}")
    own_users_call = stack.get(f"/api/calls/{placed_by_default_user}")  # no queue: the queue list is moot
    configure(ALLOWED_QUEUE_IDS=DEMO_QUEUE_ID)
    own_queues_call = stack.get(f"/api/calls/{placed_from_queue}")

    for refused, code in ((other_users_key, "user_not_allowed"), (other_queues_key, "queue_not_allowed")):
        assert refused.status_code == 403, refused.text
        assert (refused.json()["code"], refused.json()["field"]) == (code, "conversationId")
        assert "+1212555" not in refused.text
    assert own_users_call.json()["to"] == "+12125550199"
    assert own_queues_call.json()["to"] == "+12125550142"


def test_a_storage_outage_does_not_hide_the_status_genesys_gave(stack: Stack, configure, azurite: Azurite) -> None:
    """The read of the call's callback deliveries failed, and the whole status answered 503 "nothing was dialed",
    though Genesys had answered: only the deliveries are unknown."""
    conversation_id = place(stack, "+12125550199")
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front))
        front.failing_reads = True

        response = stack.get(f"/api/calls/{conversation_id}")

        assert front.refused > 0  # the deliveries were looked for
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "initiated"
    assert "statusCallbacks" not in response.json()
