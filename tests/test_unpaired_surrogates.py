"""A lone UTF-16 surrogate escape is valid JSON but not valid Unicode: refused by path, never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import Stack

LONE = "\\ud800"  # as it appears in the JSON text: json.loads turns it into an unencodable str

BODIES = {
    "value": ('{"to": "+1212555' + LONE + '"}', "to"),
    "field-name": ('{"to": "+12125550199", "' + LONE + '": "x"}', LONE),
    "attribute-key": ('{"to": "+12125550199", "attributes": {"' + LONE + '": "x"}}', f"attributes.{LONE}"),
    "attribute-value": ('{"to": "+12125550199", "attributes": {"a": "' + LONE + '"}}', "attributes.a"),
}


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
@pytest.mark.parametrize(("body", "field"), BODIES.values(), ids=BODIES.keys())
def test_call_routes_answer_400_naming_the_field(stack: Stack, route: str, body: str, field: str) -> None:
    response = stack.session.post(
        stack.host.base_url + route,
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["field"] == field
    assert stack.creates() == []


@pytest.mark.parametrize(("body", "field"), BODIES.values(), ids=BODIES.keys())
def test_events_route_answers_400_so_the_sender_stops(stack: Stack, body: str, field: str) -> None:
    event = '{"specversion": "1.0", "id": "s-1", "source": "/crm", "type": "acme.call", "data": ' + body + "}"

    response = stack.session.post(
        stack.host.base_url + "/api/events/calls",
        data=event.encode(),
        headers={"Content-Type": "application/cloudevents+json"},
        timeout=30,
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["field"] == f"data.{field}"
    assert stack.creates() == []
