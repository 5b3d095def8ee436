"""Placing calls through our HTTP route, asserting on what really reached the Genesys emulator."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from emulators.azure import VaultFault
from emulators.genesys import DEMO_QUEUE_ID, DEMO_USER_ID, NO_CLI_QUEUE_ID, Did, DidPool, Fault
from tests.conftest import Stack

CREATE_PATH = f"/api/v2/conversations/calls/user/{DEMO_USER_ID}"
DEFAULT_CALLER = "+13175550100"

# (request fields, the E.164 Genesys must receive as phoneNumber)
SPELLINGS = [
    ({"to": "+1 212-555-0199"}, "+12125550199"),
    ({"to": "(212) 555-0199"}, "+12125550199"),
    ({"to": "212.555.0199"}, "+12125550199"),
    ({"to": "212-555-0199"}, "+12125550199"),
    ({"to": "2125550199"}, "+12125550199"),
    ({"to": "1 (212) 555-0199"}, "+12125550199"),
    ({"to": "+12125550199"}, "+12125550199"),
    ({"to": "12125550199"}, "+12125550199"),
    ({"to": "tel:+12125550199"}, "+12125550199"),
    ({"to": "tel:+1-212-555-0199"}, "+12125550199"),
    ({"to": "011 44 20 7946 0958"}, "+442079460958"),
    ({"to": "0044 20 7946 0958"}, "+442079460958"),
    ({"to": "+44 (0)20 7946 0958"}, "+442079460958"),
    ({"to": "020 7946 0958", "region": "GB"}, "+442079460958"),
    ({"to": "07911 123 456", "region": "gb"}, "+447911123456"),
    ({"to": "030 901820", "region": "DE"}, "+4930901820"),
    ({"to": "00 49 30 901820"}, "+4930901820"),
    ({"to": "  +61 2 9876 5432  "}, "+61298765432"),
    ({"to": "+33 1 23 45 67 89"}, "+33123456789"),
    ({"to": "0044 20 7946 0958", "region": "JP"}, "+442079460958"),  # 00 where the region dials out with 010
    ({"to": "00 1 212 555 0199", "region": "AU"}, "+12125550199"),
    ({"to": "tel:7946-0958;phone-context=+44-20", "region": "GB"}, "+442079460958"),
    ({"to": "011 15-2345-6789 (m)", "region": "AR"}, "+5491123456789"),  # a national form libphonenumber rewrites
    ({"to": "1-800-GOT-JUNK"}, "+18004685865"),
    ({"to": "00 1 800 FLOWERS", "region": "GB"}, "+18003569377"),  # a vanity number dialed out of GB
    # Mexico's prefixes of before its 2019 plan, ten digits after them: the mobile 1 (WhatsApp ids still carry it),
    # 044 and 045 (mobiles), 01 (long distance)
    ({"to": "+52 1 55 1234 5678"}, "+525512345678"),
    ({"to": "5215512345678", "region": "MX"}, "+525512345678"),
    ({"to": "044 55 1234 5678", "region": "MX"}, "+525512345678"),
    ({"to": "045 33 1234 5678", "region": "MX"}, "+523312345678"),
    ({"to": "01 81 1234 5678", "region": "MX"}, "+528112345678"),
    # the region's own international prefix set apart, then the country code: read through it, as written
    ({"to": "009 1 212 555 0199", "region": "NG"}, "+12125550199"),
    ({"to": "001 82 2 1234 5678", "region": "KR"}, "+82212345678"),
]


@pytest.mark.parametrize(("fields", "e164"), SPELLINGS, ids=[s[0]["to"].strip() for s in SPELLINGS])
def test_each_spelling_reaches_genesys_as_e164(stack: Stack, fields: dict[str, str], e164: str) -> None:
    response = stack.post("/api/calls", fields)

    assert response.status_code == 201, response.text
    [create] = stack.creates()
    assert create.path == CREATE_PATH
    assert create.json == {"phoneNumber": e164, "callerId": DEFAULT_CALLER}
    body = response.json()
    assert body["to"] == e164
    assert body["from"] == DEFAULT_CALLER
    assert body["status"] == "initiated"
    assert response.headers["Location"] == f"/api/calls/{body['conversationId']}"
    assert body["conversationId"] in stack.genesys.org.conversations


def test_all_optional_fields_map_to_create_call_request_fields_only(stack: Stack) -> None:
    response = stack.post(
        "/api/calls",
        {
            "to": "(212) 555-0199",
            "from": "317.555.0107",
            "callerIdName": "Acme Billing",
            "queueId": DEMO_QUEUE_ID,
            "attributes": {"invoice": "A-17", "lang": "en"},
            "uuiData": "04A1",
            "label": "collections",
            "externalContactId": "c-42",
        },
    )

    assert response.status_code == 201, response.text
    [create] = stack.creates()
    assert create.json == {
        "phoneNumber": "+12125550199",
        "callerId": "+13175550107",
        "callerIdName": "Acme Billing",
        "callFromQueueId": DEMO_QUEUE_ID,
        "attributes": {"invoice": "A-17", "lang": "en"},
        "uuiData": "04A1",
        "label": "collections",
        "externalContactId": "c-42",
    }
    assert response.json()["queueId"] == DEMO_QUEUE_ID


def test_queue_caller_id_is_used_when_no_from(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": "+12125550199", "queueId": DEMO_QUEUE_ID})

    assert response.status_code == 201, response.text
    assert stack.creates()[0].json["callerId"] == "+13175550101"


def test_from_equal_to_the_queues_own_caller_id_is_allowed_on_that_queues_calls(stack: Stack, configure) -> None:
    """Without `from` the queue's call presents the queue's caller ID, so naming that same number is no less
    allowed, though it is not in ALLOWED_CALLER_IDS; on another queue's call, or with no queue, it still is not."""
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS=DEFAULT_CALLER)
    queue_number = {"to": "+12125550199", "from": "(317) 555-0101"}  # the demo queue's callingPartyNumber

    own_queue = stack.post("/api/calls", {**queue_number, "queueId": DEMO_QUEUE_ID})
    other_queue = stack.post("/api/calls/validate", {**queue_number, "queueId": NO_CLI_QUEUE_ID})
    no_queue = stack.post("/api/calls/validate", queue_number)

    assert own_queue.status_code == 201, own_queue.text
    assert [create.json["callerId"] for create in stack.creates()] == ["+13175550101"]
    for refused in (other_queue, no_queue):
        assert refused.status_code == 422, refused.text
        assert (refused.json()["code"], refused.json()["field"]) == ("caller_id_not_allowed", "from")


def test_a_from_not_allowed_on_a_queue_whose_number_cannot_be_read_is_caller_id_not_allowed(
    stack: Stack, configure
) -> None:
    """Without routing:queue:view the queue's own number cannot be compared: the answer stays what it was before
    queues' numbers counted, not a Genesys permission error about a lookup the request did not ask for."""
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS=DEFAULT_CALLER)
    stack.genesys.inject("queue", Fault(status=403, code="missing.permissions"))

    refused = stack.post("/api/calls", {"to": "+12125550199", "from": "+13175550107", "queueId": DEMO_QUEUE_ID})

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "caller_id_not_allowed"
    assert stack.creates() == []


def test_a_from_on_a_queue_whose_number_genesys_cannot_give_for_now_is_retryable(stack: Stack, configure) -> None:
    """A queue read Genesys answered 503 was taken for "no number": `from` equal to the queue's own number was
    refused 422 caller_id_not_allowed, which Power Automate never retries."""
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS=DEFAULT_CALLER)
    stack.genesys.inject("queue", *[Fault(status=503)] * 3)

    response = stack.post("/api/calls", {"to": "+12125550199", "from": "+13175550101", "queueId": DEMO_QUEUE_ID})

    assert response.status_code == 503, response.text
    assert (response.json()["code"], response.json()["retryable"]) == ("genesys_unavailable", True)
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("stored", "presented"),
    [("(317) 555-0101", "+13175550101"), ("+1 317-555-0101", "+13175550101"), ("55 1234 5678", DEFAULT_CALLER)],
    ids=["national-ours", "international", "national-not-ours"],
)
def test_a_queue_caller_id_is_presented_in_e164_and_a_national_one_only_if_ours(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stored: str, presented: str
) -> None:
    """The queue's callingPartyNumber was sent as Genesys stored it, which Genesys refuses when it is not E.164.
    Written nationally it is read in DEFAULT_PHONE_REGION, and used only when that reading is one of the org's
    numbers: a Mexican queue's "55 1234 5678" read in the US is +1 551 234 5678, a New Jersey number."""
    monkeypatch.setattr(stack.genesys.org.queues[DEMO_QUEUE_ID], "calling_party_number", stored)

    chosen = stack.post("/api/calls", {"to": "+12125550199", "queueId": DEMO_QUEUE_ID})

    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["from"] == stack.creates()[0].json["callerId"] == presented


def test_queue_without_caller_id_falls_back_to_default(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": "+12125550199", "queueId": NO_CLI_QUEUE_ID})

    assert response.status_code == 201, response.text
    assert stack.creates()[0].json["callerId"] == DEFAULT_CALLER


def test_no_caller_id_anywhere_is_caller_id_required(stack: Stack, configure) -> None:
    configure(DEFAULT_CALLER_ID=None)

    response = stack.post("/api/calls", {"to": "+12125550199", "queueId": NO_CLI_QUEUE_ID})

    assert response.status_code == 422
    assert response.json()["code"] == "caller_id_required"
    assert stack.creates() == []


def test_request_user_overrides_the_configured_user(stack: Stack, configure) -> None:
    configure(GENESYS_CALL_USER_ID=None)

    missing = stack.post("/api/calls", {"to": "+12125550199"})
    given = stack.post("/api/calls", {"to": "+12125550199", "userId": DEMO_USER_ID})

    assert missing.status_code == 400
    assert missing.json()["field"] == "userId"
    assert given.status_code == 201
    assert [c.path for c in stack.creates()] == [CREATE_PATH]


def test_validate_answers_the_decision_without_dialing(stack: Stack) -> None:
    response = stack.post("/api/calls/validate", {"to": "020 7946 0958", "region": "GB", "from": "+13175550120"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True
    assert body["to"] == "+442079460958"
    assert body["from"] == "+13175550120"
    assert body["understood"]["to"] == {"e164": "+442079460958", "region": "GB", "type": "fixed_line"}
    assert stack.creates() == []


def test_validate_answers_the_problem_dialing_would_meet(stack: Stack) -> None:
    response = stack.post("/api/calls/validate", {"to": "+12125550199", "from": "+12125550142"})

    assert response.status_code == 422
    assert response.json()["code"] == "caller_id_not_allowed"
    assert stack.creates() == []


def test_twenty_calls_cost_one_token_one_vault_read_and_twenty_creates(stack: Stack, configure) -> None:
    # The suite's 2 s read timeout would, on a loaded machine, send the token request again (a read is retried):
    # this test counts requests, so it waits as long as production does.
    configure(GENESYS_READ_TIMEOUT_SECONDS="10")
    answers = [stack.post("/api/calls", {"to": f"+1212555{100 + i:04d}"}) for i in range(20)]

    assert [a.status_code for a in answers] == [201] * 20
    assert len(stack.genesys.requests("token")) == 1
    assert stack.vault.secret_reads("genesys-client-secret") == 1
    assert len(stack.creates()) == 20
    assert len({a.json()["conversationId"] for a in answers}) == 20
    assert len(stack.genesys.requests("dids")) == 1  # the org's 30 DIDs fit one page of 100


def test_the_first_requests_of_a_cold_instance_share_one_build_one_token_and_one_vault_read(
    stack: Stack, configure
) -> None:
    """A cold instance is sent many requests at once: each built the services, and each build fetched its own
    token and read Key Vault."""
    configure(GENESYS_READ_TIMEOUT_SECONDS="10")  # no read retried on a loaded machine: requests are counted
    stack.vault.inject(VaultFault(status=None, delay=0.3))  # the first build's secret read takes a while

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: stack.post("/api/calls", {"to": f"+1212555{300 + i:04d}"}), range(8)))

    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len(stack.genesys.requests("token")) == 1
    assert stack.vault.secret_reads("genesys-client-secret") == 1
    assert len(stack.genesys.requests("dids")) == 1


def test_health_is_anonymous_and_touches_nothing(stack: Stack, configure) -> None:
    configure(GENESYS_CLIENT_ID=None)

    response = stack.get("/api/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert stack.genesys.requests() == []


def test_caller_ids_come_from_every_page_of_dids(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = [Did(f"+1317555{i:04d}") for i in range(200, 300)]
    monkeypatch.setattr(stack.genesys.org, "dids", stack.genesys.org.dids + extra)

    response = stack.post("/api/calls", {"to": "+12125550199", "from": "+13175550299"})

    assert response.status_code == 201, response.text
    pages = stack.genesys.requests("dids")
    assert [p.query["pageNumber"] for p in pages] == ["1", "2"]


def test_a_did_that_is_not_active_is_no_allowed_caller_id(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Genesys's DIDs carry a state (active, inactive, deleted), as its DID pools do: a number the org gave up
    was still presented as its caller ID."""
    extra = [Did("+13175550301", state="deleted"), Did("+13175550302", state="inactive"), Did("+13175550303")]
    monkeypatch.setattr(stack.genesys.org, "dids", stack.genesys.org.dids + extra)

    answers = [stack.post("/api/calls/validate", {"to": "+12125550199", "from": f"+1317555030{n}"}) for n in (1, 2, 3)]

    assert [a.json().get("code") for a in answers] == ["caller_id_not_allowed", "caller_id_not_allowed", None]
    assert answers[2].status_code == 200, answers[2].text


def test_a_number_of_the_orgs_did_pools_assigned_to_nobody_is_an_allowed_caller_id(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number kept for outbound caller ID only is in one of the organization's DID pools and is no DID: the DID
    listing has only assigned numbers."""
    pools = [
        DidPool("+13175550400", "+13175550499"),
        DidPool("+13175550600", "+13175550699", state="inactive"),
        DidPool("+4930123400", "+493012349"),  # no range: its ends differ in length
    ]
    monkeypatch.setattr(stack.genesys.org, "did_pools", pools)

    in_pool = stack.post("/api/calls", {"to": "+12125550199", "from": "+13175550450"})
    past_pool = stack.post("/api/calls/validate", {"to": "+12125550199", "from": "+13175550500"})
    inactive_pool = stack.post("/api/calls/validate", {"to": "+12125550199", "from": "+13175550650"})

    assert in_pool.status_code == 201, in_pool.text
    assert stack.creates()[0].json["callerId"] == "+13175550450"
    assert past_pool.json()["code"] == inactive_pool.json()["code"] == "caller_id_not_allowed"
    assert "130 allowed caller IDs" in past_pool.json()["detail"]  # 30 DIDs and the one active pool's 100
    assert len(stack.genesys.requests("didpools")) == 1  # cached with the DIDs
