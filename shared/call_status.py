"""What happened to a placed call, from Genesys's conversation, in five words callers can branch on.

Genesys accepts a create before the carrier has tried the number, so "unreachable" or "busy" only shows up
later on the customer participant (`state`, `disconnectType`, `errorInfo`).
"""

from __future__ import annotations

from typing import Any

from shared.errors import CATALOG

STATUSES = ("initiated", "ringing", "connected", "ended", "failed")
_CUSTOMER_PURPOSES = ("customer", "external")
_PLACING_PURPOSES = ("agent", "user")
_RINGING = {"alerting"}
_CONNECTED = {"connected", "parked", "converting", "transmitting", "uploading"}
_ENDED = {"disconnected", "terminated"}
_FAILED_DISCONNECTS = {"error", "transport.failure", "system", "spam"}
# errorInfo codes are not documented by Genesys beyond examples such as
# error.ininedgecontrol.connection.dialplan.notReachable: match on the words they are built from.
_FAILURE_WORDS = (
    (("notreachable", "unreachable", "invalid", "unallocated", "notfound"), "destination_unreachable"),
    (("busy",), "destination_busy"),
    (("noanswer", "no.answer", "timeout", "ringtimeout"), "destination_no_answer"),
    (("reject", "declin", "refused", "forbidden"), "destination_rejected"),
)

OUTCOME_CODES = frozenset([code for _, code in _FAILURE_WORDS] + ["call_failed"])


def _customer(conversation: dict[str, Any]) -> dict[str, Any] | None:
    participants = conversation.get("participants") or []
    return next((p for p in participants if p.get("purpose") in _CUSTOMER_PURPOSES), None)


def placed_for(conversation: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The users and queues the call was placed for (lowercase): the `user` and `queue` of its participants of
    purpose `agent` (a queue's) or `user` (a user's own call)."""
    users: set[str] = set()
    queues: set[str] = set()
    for participant in conversation.get("participants") or []:
        if participant.get("purpose") not in _PLACING_PURPOSES:
            continue
        for found, field in ((users, "user"), (queues, "queue")):
            reference = participant.get(field)
            if isinstance(reference, dict) and isinstance(reference.get("id"), str):
                found.add(reference["id"].lower())
    return users, queues


def failure_code(error_info: dict[str, Any] | None, disconnect_type: str | None) -> str:
    text = str((error_info or {}).get("code", "")).lower().replace("_", "")
    for words, code in _FAILURE_WORDS:
        if any(word in text for word in words):
            return code
    return "call_failed"


def describe(conversation: dict[str, Any]) -> dict[str, Any]:
    """Our status document for one Genesys CallConversation."""
    customer = _customer(conversation) or {}
    state = str(customer.get("state") or "").lower()
    disconnect_type = customer.get("disconnectType")
    error_info = customer.get("errorInfo") or None
    if state in _ENDED:  # a call that was answered ended, however it was cut: a flow retrying "failed" rings again
        never_answered = not customer.get("connectedTime")
        status = "failed" if never_answered and (error_info or disconnect_type in _FAILED_DISCONNECTS) else "ended"
    elif state in _CONNECTED:
        status = "connected"
    elif state in _RINGING:
        status = "ringing"
    else:
        status = "initiated"

    document: dict[str, Any] = {
        "conversationId": conversation.get("id"),
        "status": status,
        "to": _number(customer.get("address") or customer.get("dnis")),
        "from": _number(customer.get("ani")),
        "genesysState": customer.get("state"),
        "disconnectType": disconnect_type,
        "connectedTime": customer.get("connectedTime"),
        "endTime": customer.get("endTime"),
    }
    if status == "failed":
        code = failure_code(error_info, disconnect_type)
        entry = CATALOG[code]
        document["failure"] = {
            "code": code,
            "title": entry.title,
            "hint": entry.hint,
            "retryable": entry.retryable,
            "upstream": {"code": (error_info or {}).get("code"), "message": (error_info or {}).get("message")},
        }
    return document


def _number(address: Any) -> str | None:
    """`tel:+12125550199` -> `+12125550199`."""
    if not isinstance(address, str) or not address:
        return None
    return address.removeprefix("tel:").split(";")[0]
