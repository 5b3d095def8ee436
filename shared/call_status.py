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


def _participants(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """The participants that are objects, as Genesys documents them; anything else in the list is skipped."""
    participants = conversation.get("participants")
    return [p for p in participants if isinstance(p, dict)] if isinstance(participants, list) else []


def _text(fields: dict[str, Any], name: str) -> str | None:
    """A field Genesys documents as a string; any other value is read as absent."""
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _customer(conversation: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in _participants(conversation) if p.get("purpose") in _CUSTOMER_PURPOSES), None)


def placed_for(conversation: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The users and queues the call was placed for (lowercase): the `user` of its participants of purpose
    `agent` (a queue's) or `user` (a user's own call), and the `queue` of those and of `acd` participants (a call
    waiting in a queue: an untaken callback, a call to a queue)."""
    users: set[str] = set()
    queues: set[str] = set()
    for participant in _participants(conversation):
        purpose = participant.get("purpose")
        if purpose in _PLACING_PURPOSES:
            _add_id(users, participant.get("user"))
        if purpose in _PLACING_PURPOSES or purpose == "acd":
            _add_id(queues, participant.get("queue"))
    return users, queues


def _add_id(found: set[str], reference: Any) -> None:
    if isinstance(reference, dict) and isinstance(reference.get("id"), str):
        found.add(reference["id"].lower())


def failure_code(error_info: dict[str, Any] | None, disconnect_type: str | None) -> str:
    """The catalog code of a failed call: from the words of `errorInfo.code`, else from how it was disconnected
    (a call flagged as spam was declined, not cut by a passing fault: retrying it at once would ring again)."""
    text = str((error_info or {}).get("code", "")).lower().replace("_", "")
    for words, code in _FAILURE_WORDS:
        if any(word in text for word in words):
            return code
    return "destination_rejected" if disconnect_type == "spam" else "call_failed"


def describe(conversation: dict[str, Any]) -> dict[str, Any]:
    """Our status document for one Genesys CallConversation."""
    customer = _customer(conversation) or {}
    state = (_text(customer, "state") or "").lower()
    disconnect_type = _text(customer, "disconnectType")
    error_info = customer.get("errorInfo")
    error_info = error_info if isinstance(error_info, dict) else None
    if state in _ENDED:  # a call that was answered ended, however it was cut: a flow retrying "failed" rings again
        never_answered = _text(customer, "connectedTime") is None
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
        "to": _number(_text(customer, "address") or _text(customer, "dnis")),
        "from": _number(_text(customer, "ani")),
        "genesysState": _text(customer, "state"),
        "disconnectType": disconnect_type,
        "connectedTime": _text(customer, "connectedTime"),
        "endTime": _text(customer, "endTime"),
    }
    if status == "failed":
        code = failure_code(error_info, disconnect_type)
        entry = CATALOG[code]
        document["failure"] = {
            "code": code,
            "title": entry.title,
            "hint": entry.hint,
            "retryable": entry.retryable,
            "upstream": {"code": _text(error_info or {}, "code"), "message": _text(error_info or {}, "message")},
        }
    return document


_ADDRESS_SCHEMES = ("tel:", "sips:", "sip:")


def _number(address: str | None) -> str | None:
    """`tel:+12125550199` or `sip:+12125550199@10.0.0.5;user=phone` -> `+12125550199`: the number, never the host
    of a SIP address (an edge's or a carrier's internal address is no caller's business)."""
    if not address:
        return None
    scheme = next((s for s in _ADDRESS_SCHEMES if address.lower().startswith(s)), "")
    return address[len(scheme) :].split(";")[0].split("@")[0] or None
