"""Bad input always gets its 4xx problem, never a 500, and never reaches Genesys."""

from __future__ import annotations

import pytest

from shared.http import MAX_BODY_BYTES, MAX_EVENTS_BYTES, MAX_JSON_DEPTH
from shared.phone import region_of
from tests.conftest import Stack

NINE_KIB_OF_ATTRIBUTES = {f"k{i}": "v" * 1000 for i in range(9)}  # inside every attribute limit but their total


def post_raw(stack: Stack, body: bytes, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return stack.session.post(stack.host.base_url + "/api/calls", data=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"to": "+12125550199", "to": "+12125550100"}', 'the name "to" appears twice'),
        (b'{"to": "+12125550199", "attributes": {"a": "1", "a": "2"}}', 'the name "a" appears twice'),
        (b'{"to": ' + b"9" * 5000 + b"}", "a number is too long"),
        (b"\xff\xfe\x00garbage", "it is not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        # deep enough for a walk of the document to hit the recursion limit where json.loads does not (3.13)
        (b'{"to": "+12125550199", "attributes": ' + b"[" * 1500 + b"]" * 1500 + b"}", "nested too deeply"),
        (b'{"to": "+12125550199", "attributes": ' + b"[" * 70 + b"]" * 70 + b"}", "over 64 levels"),
        (b"null", "must be a JSON object, not null"),  # it said "not NoneType"
        (b'["+12125550199"]', "must be a JSON object, not an array"),
    ],
    ids=[
        "repeated-name",
        "repeated-nested-name",
        "huge-integer",
        "not-utf8",
        "deep",
        "deep-inside",
        "past-the-cap",
        "null",
        "array",
    ],
)
def test_invalid_json_says_what_is_wrong(stack: Stack, body: bytes, says: str) -> None:
    """A repeated name is refused, not read last-wins: a proxy or signer that reads the first would check one
    call while we placed another."""
    response = post_raw(stack, body, "application/json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    assert says in response.json()["detail"]
    assert stack.genesys.requests() == []


def nested(levels: int, inside: bytes = b"") -> bytes:
    """A call request whose attributes hold arrays nested so that the body has `levels` levels in all."""
    arrays = levels - 1  # the body's own object is the first level
    return b'{"to": "+12125550199", "attributes": ' + b"[" * arrays + inside + b"]" * arrays + b"}"


def test_the_depth_cap_counts_levels_not_brackets(stack: Stack) -> None:
    """The cap is told from the bytes before parsing: brackets inside strings and side by side are no levels."""
    at_the_cap = post_raw(stack, nested(MAX_JSON_DEPTH))
    past_it = post_raw(stack, nested(MAX_JSON_DEPTH + 1))
    string = b'"[[[[' + b"{[" * 100 + rb'\\"'  # ending with an escaped backslash
    in_strings = post_raw(stack, nested(MAX_JSON_DEPTH, string))
    side_by_side = post_raw(stack, nested(2, b"[]," * 200 + b"{}"))

    assert past_it.json()["code"] == "invalid_json"
    for parsed in (at_the_cap, in_strings, side_by_side):  # read as JSON; attributes must be an object
        assert (parsed.status_code, parsed.json()["code"]) == (400, "validation_failed"), parsed.text
    assert stack.genesys.requests() == []


def test_an_unclosed_string_full_of_escaped_quotes_is_refused_at_once(stack: Stack) -> None:
    """Past the bracket count, the depth check drops strings first: an unclosed one was scanned to the end from
    every quote in it, and a 256 KiB event delivery of them held a thread's CPU for minutes (16 KiB: seconds)."""
    opened = b"[" * (MAX_JSON_DEPTH + 1) + b'"'
    body = opened + b'\\"' * ((MAX_EVENTS_BYTES - len(opened)) // 2)
    events = stack.host.base_url + "/api/events/calls"

    response = stack.session.post(events, data=body, headers={"Content-Type": "application/json"}, timeout=20)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_json"), response.text
    assert stack.genesys.requests() == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b'"+12125550199"', "application/json", 400, "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "invalid_json"),
        (b'{"to": "+12125550199"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"to": "+12125550199"}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"to": "+12125550199"}', None, 415, "unsupported_media_type"),
        (b'{"to": "' + b"1" * (MAX_BODY_BYTES + 1) + b'"}', "application/json", 413, "payload_too_large"),
    ],
    ids=["garbage", "empty", "not-utf8", "array", "string", "deep", "text", "form", "no-type", "oversized"],
)
def test_malformed_bodies(stack: Stack, body: bytes, content_type: str | None, status: int, code: str) -> None:
    response = post_raw(stack, body, content_type)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["requestId"] == response.headers["X-Request-Id"]
    assert stack.genesys.requests() == []


def test_json_with_charset_and_vendor_type_is_accepted(stack: Stack) -> None:
    ok = post_raw(stack, b'{"to": "+12125550199"}', "application/json; charset=utf-8")
    vendor = post_raw(stack, b'{"to": "+12125550199"}', "application/vnd.acme+json")

    assert (ok.status_code, vendor.status_code) == (201, 201)


def test_a_field_of_another_json_kind_is_named_in_jsons_words(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": 12125550199})

    assert (response.status_code, response.json()["field"]) == (400, "to")
    assert response.json()["detail"] == "'to' must be a string, not a number."  # it said "not int"


def test_a_byte_order_mark_before_the_json_is_ignored(stack: Stack) -> None:
    """RFC 8259 lets a parser ignore a UTF-8 byte order mark, and a file saved by Notepad or PowerShell 5 starts
    with one: it was refused with Python's own advice, "(decode using utf-8-sig)"."""
    response = post_raw(stack, b'\xef\xbb\xbf{"to": "+12125550199"}', "application/json")

    assert response.status_code == 201, response.text
    assert len(stack.creates()) == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "to", "validation_failed"),
        ({"to": None}, "to", "validation_failed"),
        ({"to": ""}, "to", "validation_failed"),
        ({"to": 12125550199}, "to", "validation_failed"),
        ({"to": ["+12125550199"]}, "to", "validation_failed"),
        ({"to": "+1212555\x000199"}, "to", "validation_failed"),
        ({"to": "9" * 65}, "to", "validation_failed"),
        ({"to": "+12125550199", "from": 5}, "from", "validation_failed"),
        ({"to": "+12125550199", "queueId": "not-a-uuid"}, "queueId", "validation_failed"),
        ({"to": "+12125550199", "userId": "../../oauth/token"}, "userId", "validation_failed"),
        ({"to": "+12125550199", "region": "XX"}, "region", "validation_failed"),
        ({"to": "+12125550199", "region": "USA"}, "region", "validation_failed"),
        ({"to": "+12125550199", "attributes": ["a"]}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "attributes": {"a": 1}}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "attributes": {f"k{i}": "v" for i in range(51)}}, "attributes", "validation_failed"),
        # inside every other attribute limit, past their total (the body's 16 KiB was 413, which no limit explained)
        ({"to": "+12125550199", "attributes": NINE_KIB_OF_ATTRIBUTES}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "attributes": {"note\x00": "x"}}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "attributes": {" ": "x"}}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "attributes": {"note": "ring\x07"}}, "attributes", "validation_failed"),
        ({"to": "+12125550199", "label": "x" * 257}, "label", "validation_failed"),
        ({"phoneNumber": "+12125550199"}, "phoneNumber", "validation_failed"),
        ({"to": "hello"}, "to", "invalid_phone_number"),
        ({"to": "12"}, "to", "invalid_phone_number"),
        ({"to": "+1 212 555 01999999"}, "to", "invalid_phone_number"),
        ({"to": "+999 1234567"}, "to", "invalid_phone_number"),
        ({"to": "+1 123 456 7890"}, "to", "invalid_phone_number"),
        ({"to": "+12125550199", "from": "not a number"}, "from", "invalid_phone_number"),
        ({"to": "911"}, "to", "destination_not_allowed"),
        ({"to": "112"}, "to", "destination_not_allowed"),
        ({"to": "999", "region": "GB"}, "to", "destination_not_allowed"),
        ({"to": "611"}, "to", "destination_not_allowed"),
        ({"to": "+1 900 555 0100"}, "to", "destination_not_allowed"),
    ],
)
def test_invalid_fields_name_the_field(stack: Stack, body: dict, field: str, code: str) -> None:
    response = stack.post("/api/calls", body)

    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["field"] == field
    assert problem["retryable"] is False
    assert stack.genesys.requests("create_call") == []


def test_attributes_at_their_limits_with_a_notes_line_breaks_are_placed(stack: Stack) -> None:
    """Eight values of 1,000 characters (under the 8 KiB total) and a note over lines: a valid request fits the body."""
    attributes = {f"k{i}": "v" * 1000 for i in range(8)} | {"note": "first line\r\nsecond\tline"}

    response = stack.post("/api/calls", {"to": "+12125550199", "attributes": attributes})

    assert response.status_code == 201, response.text
    assert stack.creates()[0].json["attributes"] == attributes


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("hello", "not_a_number"),
        ("12", "too_short"),
        ("+1 212 555 01999999", "too_long"),
        ("+999 1234567", "invalid_country_code"),
        ("+1 123 456 7890", "invalid_number"),
    ],
)
def test_invalid_numbers_say_why_and_what_we_understood(stack: Stack, to: str, reason: str) -> None:
    problem = stack.post("/api/calls/validate", {"to": to}).json()

    assert problem["reason"] == reason
    if reason in ("too_long", "invalid_number"):
        assert problem["understood"]["e164"].startswith("+1")


def test_wrong_field_name_suggests_ours(stack: Stack) -> None:
    problem = stack.post("/api/calls", {"phoneNumber": "+12125550199", "callerId": "+13175550100"}).json()

    assert "'to' instead of 'phoneNumber'" in problem["hint"]
    assert "'from' instead of 'callerId'" in problem["hint"]


def test_premium_rate_is_dialed_when_allowed(stack: Stack, configure) -> None:
    configure(ALLOW_PREMIUM_RATE="true")

    response = stack.post("/api/calls", {"to": "+1 900 555 0100"})

    assert response.status_code == 201, response.text
    assert stack.genesys.requests("create_call")[0].json["phoneNumber"] == "+19005550100"


@pytest.mark.parametrize(("path", "says"), [("/api/calls/validate", "POST"), ("/api/calls/requests", "requestId")])
def test_a_get_on_a_route_of_another_method_says_which_route_is_meant(stack: Stack, path: str, says: str) -> None:
    """The host gives `GET /api/calls/validate` to the call-status route: it answered that 'conversationId' must be a
    Genesys id."""
    response = stack.get(path)

    assert (response.status_code, response.json()["field"]) == (400, "conversationId")
    assert says in response.json()["detail"]


def test_unknown_route_and_method_are_404(stack: Stack) -> None:
    assert stack.get("/api/nothing-here").status_code == 404
    assert stack.session.put(stack.host.base_url + "/api/calls", json={}, timeout=30).status_code == 404


EXTENSIONS = [
    "+1 212 555 0199 ext. 123",
    "+1 212 555 0199 x123",
    "+1-212-555-0199;ext=123",
    "+1 212 555 0199 p123",  # a dial string's pause, then tones: an extension too
    "+49 30 12345 w12",
]


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
@pytest.mark.parametrize("to", EXTENSIONS)
def test_number_with_an_extension_is_refused_not_dialed_without_it(stack: Stack, route: str, to: str) -> None:
    response = stack.post(route, {"to": to})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"], problem["reason"]) == ("invalid_phone_number", "to", "extension")
    assert "extensions are not supported" in problem["detail"]
    assert stack.creates() == []


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
@pytest.mark.parametrize("caller", ["+1 317 555 0105 ext. 123", "+1 317 555 0105 x123", "+1-317-555-0105;ext=123"])
def test_caller_id_with_an_extension_is_refused(stack: Stack, route: str, caller: str) -> None:
    response = stack.post(route, {"to": "+12125550199", "from": caller})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"], problem["reason"]) == ("invalid_phone_number", "from", "extension")
    assert stack.creates() == []


# A label after a number: libphonenumber reads three or more letters as keypad digits, and where lengths vary
# the longer number is valid (+49 30 12345 Fax would ring +49 30 12345 329).
LABELLED = [
    ("+49 30 12345 Fax", "+493012345329"),
    ("+43 1 2345 home", "+43123454663"),
    ("+39 06 123 home", "+39061234663"),
    ("+1 212 555 0199 Fax", "+12125550199329"),
    ("867-5309 Fax", "+18675309329"),  # a local number and a word make a valid +1 number: no vanity number
    ("Tel; +49 30 12345 Fax", "+493012345329"),  # a ';' before the number is no tel: URI's parameter
    ("212-555 Home", "+12125554663"),  # a number cut short and a label: no vanity number either
]


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
@pytest.mark.parametrize(("to", "read_as"), LABELLED, ids=[to for to, _ in LABELLED])
def test_words_after_a_number_are_refused_not_dialed_as_digits(stack: Stack, route: str, to: str, read_as: str) -> None:
    response = stack.post(route, {"to": to})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"], problem["reason"]) == ("invalid_phone_number", "to", "letters")
    assert problem["understood"]["e164"] == read_as  # what would have been dialed
    assert stack.creates() == []


def test_a_north_american_vanity_number_is_read_from_its_letters(stack: Stack) -> None:
    response = stack.post("/api/calls", {"to": "1-800-FLOWERS"})

    assert response.status_code == 201, response.text
    assert stack.creates()[0].json["phoneNumber"] == "+18003569377"


@pytest.mark.parametrize(
    ("to", "region"),
    [
        ("0113 524 249", "GB"),
        ("01139 028 721", "GB"),
        ("011 4313 436", "IN"),
        ("011 4313 4367", "SE"),
        # a digit too long: read as 011 + a number abroad, these rang Austria, Cuba, Myanmar (review finding)
        ("0114 312 34567", "GB"),
        ("0115 349 60123", "GB"),
        ("011 9574 25202", "EG"),
        ("011-9571 54347", "MY"),
        ("011 4317 15850", "LK"),
        ("011 1234 56789", "IT"),  # Turin
    ],
)
def test_a_national_number_starting_011_is_refused_not_dialed_abroad(stack: Stack, to: str, region: str) -> None:
    """In GB (Leeds: 0113), IN (Delhi: 011), SE, IT, EG and JP `011` starts national numbers: a digit short or too
    long, such a number also reads as `011` + an international number (+352 4249, +39 028721), which must not be
    dialed. `011` is the US prefix; it is read abroad only where no national number starts with 0."""
    response = stack.post("/api/calls", {"to": to, "region": region})

    assert response.status_code == 400, response.text
    assert response.json()["understood"]["region"] == region
    assert stack.creates() == []


@pytest.mark.parametrize(("to", "region"), [("002 9876 5432", "AU"), ("003 1234 5678", "JP")])
def test_a_doubled_trunk_zero_is_refused_not_read_as_an_international_prefix(
    stack: Stack, to: str, region: str
) -> None:
    """`00` is not these regions' international prefix; read as one, Sydney with a zero doubled rang the Faroe
    Islands (+298 765432). Dropping one zero leaves a valid national number, so the text is refused."""
    response = stack.post("/api/calls", {"to": to, "region": region})

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_phone_number"
    assert stack.creates() == []


def written_in(zero: str, text: str) -> str:
    """`text` with its ASCII digits written in the script whose zero is `zero`."""
    return "".join(chr(ord(zero) + int(c)) if c.isdigit() else c for c in text)


@pytest.mark.parametrize(
    ("to", "region", "read", "other"),
    [
        # Read after 00 as Germany dials, each rang another country; after the carrier prefix that Korea, Colombia,
        # Singapore or Thailand dial (009, 002, 008, 001) it is another number
        ("009 1 212 555 0199", "US", "+912125550199", "+12125550199"),
        ("002 1 268 460 1234", "US", "+212684601234", "+12684601234"),
        ("008 1 800 212 3456", "US", "+818002123456", "+18002123456"),
        ("001 32 3 234 56 78", "US", "+13232345678", "+3232345678"),  # Los Angeles, or Antwerp
        (written_in("\u0660", "009 1 212 555 0199"), "US", "+912125550199", "+12125550199"),  # Arabic-Indic
        # A spreadsheet dropped the +: a Leer landline as written, a mobile with its +
        ("4917612345678", "DE", "+494917612345678", "+4917612345678"),
        # ... or another country's number whose + was dropped, where the region writes that national number with
        # a trunk 0 the digits lack: each rang a German or Austrian landline (a UK or French mobile, New York)
        ("447911123456", "DE", "+49447911123456", "+447911123456"),
        ("33612345678", "DE", "+4933612345678", "+33612345678"),
        ("12125550199", "AT", "+4312125550199", "+12125550199"),
        ("8215441234", "RU", "+78215441234", "+8215441234"),  # an area code starting 8, Russia's trunk prefix
        # ... or a landline with its + where national numbers start with a trunk 0: Bandung, Stockholm
        ("6222 4234567", "ID", "+6262224234567", "+62224234567"),
        ("46 8 555 123", "SE", "+46468555123", "+468555123"),
        # 00 and a country code, Europe's way, where the region's own international prefix is 00 and a digit
        # more: dialed after 004 in Singapore it rang Lausanne, not Birmingham; after 008 in Korea, Memphis
        ("0044 121 234 5678", "SG", "+41212345678", "+441212345678"),
        ("0081 90-1234-5678", "KR", "+19012345678", "+819012345678"),
        # ... or where national numbers start 00 (Japan's toll-free 0066 and 0037): a Thai or an Estonian mobile
        ("0066 81 234 5678", "JP", "+810066812345678", "+66812345678"),
        ("00372 5123 4567", "JP", "+810037251234567", "+37251234567"),
    ],
)
def test_a_text_that_reads_as_two_valid_numbers_is_refused_not_guessed(
    stack: Stack, to: str, region: str, read: str, other: str
) -> None:
    response = stack.post("/api/calls", {"to": to, "region": region})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["reason"]) == ("invalid_phone_number", "ambiguous")
    assert problem["understood"] == {"e164": read, "region": region_of(read), "other": other}
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("to", "region", "e164"),
    [
        # 00 and a country code as Europe groups them: Thailand's 003 would read Hungary, but no one writes it so
        ("0033 6 12 34 56 78", "US", "+33612345678"),
        ("0049 176 12345678", "US", "+4917612345678"),
        ("00491761234567", "US", "+491761234567"),  # no grouping: read after 00, as before
        # digits starting with the region's code that are a mobile as written: a 3 Italia mobile, a Cuban one
        ("390 123 4567", "IT", "+393901234567"),
        ("5349 7658", "CU", "+5353497658"),
        # digits without the trunk prefix where the region writes none (Brazil), or that no + makes valid
        ("5133334444", "BR", "+555133334444"),
        ("441123456", "DE", "+49441123456"),
    ],
)
def test_a_text_whose_other_reading_no_one_means_is_read(stack: Stack, to: str, region: str, e164: str) -> None:
    response = stack.post("/api/calls/validate", {"to": to, "region": region})

    assert response.status_code == 200, response.text
    assert response.json()["to"] == e164


@pytest.mark.parametrize("to", ["1-800-123-4567", "1 (415) 555-0132"])
def test_a_north_american_number_written_in_mexico_is_not_read_as_a_mexican_one(stack: Stack, to: str) -> None:
    """Mexico's old prefixes are read away (+52 1, 044, 045, 01), but a bare 1 never dialed within Mexico: taken for
    the old mobile 1, a US number written 1-xxx-xxx-xxxx rang +52 and its ten digits."""
    response = stack.post("/api/calls/validate", {"to": to, "region": "MX"})

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_phone_number"


@pytest.mark.parametrize(
    ("to", "region"),
    [
        ("+4930123456.0", "DE"),
        ("0612345678.0", "IT"),
        ("'4930123456.0", "DE"),
        ("\uff0b4930123456.0", "DE"),
        ('"4930123456.0"', "DE"),  # a CSV cell's quotes kept: rang +49 30 1234560
        ("+49 30 123456.0", "DE"),  # the number grouped, then its decimal
        ("030 123456.0", "DE"),
        ("4930123456.000", "DE"),  # rang +49 30 123456000
    ],
)
def test_a_spreadsheets_decimal_number_is_refused_not_dialed_with_its_decimals(
    stack: Stack, to: str, region: str
) -> None:
    """libphonenumber reads a number cell's text ('4930123456.0') with its decimals as digits: +49 30 1234560."""
    response = stack.post("/api/calls", {"to": to, "region": region})

    assert response.status_code == 400, response.text
    assert (response.json()["code"], response.json()["reason"]) == ("invalid_phone_number", "decimal")
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("to", "region", "e164"),
    [("00 44 20 7946 0958", "US", "+442079460958"), ("0044 20 7946 0958", "AU", "+442079460958")],
)
def test_00_is_read_as_an_international_prefix_where_no_national_number_is_meant(
    stack: Stack, to: str, region: str, e164: str
) -> None:
    response = stack.post("/api/calls/validate", {"to": to, "region": region})

    assert response.status_code == 200, response.text
    assert response.json()["to"] == e164


@pytest.mark.parametrize("zero", ["\u0660", "\uff10"], ids=["arabic-indic", "full-width"])
def test_an_international_prefix_is_read_in_any_script_of_digits(stack: Stack, zero: str) -> None:
    """The `00` was looked for among the raw characters: written in other digits, the number was refused."""
    response = stack.post("/api/calls/validate", {"to": written_in(zero, "0044 20 7946 0958")})

    assert response.status_code == 200, response.text
    assert response.json()["to"] == "+442079460958"


@pytest.mark.parametrize(
    ("to", "region"),
    [
        ("+49 89 1234 or 5678", "DE"),  # rang +49 89 12345678: words of one or two letters are dropped
        ("030 1234 od. 5678", "DE"),
        ("+39 02 1234567 o 8", "IT"),
        ("089 1234 / 089 5678", "DE"),  # rang +49 89 1234089 5678
        ("089 1234 \uff0f 089 5678", "DE"),  # a full-width slash: rang +49 89 12340895678
        ("089 1234 / \uff1089 5678", "DE"),  # a full-width zero after it, likewise
        (written_in("\u0660", "089 1234 / 089 5678"), "DE"),  # Arabic-Indic digits, likewise
        ("212-555-0199/x123", "US"),  # rang the main line: '/x' is no extension to libphonenumber
        ("1 212 and 0199", "US"),  # rang +1 212 263 0199, 'and' read as keypad digits (a vanity number)
        ("+49 89 12 0xx45 678", "DE"),  # masked digits are no carrier placeholder
        ("0171 1234567 (1)", "DE"),  # a note after the number: rang +49 171 12345671, valid where lengths vary
        ("030 123456 [2]", "DE"),
        ("030 1234567 (24h)", "DE"),  # rang +49 30 123456724: the letter dropped, the digits joined
        ("0171 1234567 / 8", "DE"),  # a second number's own last digit: rang +49 171 12345678
        ("01 234567 / 89", "AT"),  # rang +43 1 23456789
        ("0171/1234567/8", "DE"),  # slashes between the groups, and before the second number's last digit
    ],
)
def test_two_numbers_in_one_text_are_refused_not_joined_into_one(stack: Stack, to: str, region: str) -> None:
    response = stack.post("/api/calls", {"to": to, "region": region})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["reason"]) == ("invalid_phone_number", "several_numbers")
    assert "digits in brackets after it" in problem["detail"]  # the reason names what brackets hold too
    assert stack.creates() == []


@pytest.mark.parametrize(
    ("to", "region", "e164"),
    [
        ("089/1234567", "DE", "+49891234567"),
        ("Cell: (212) 555-0199", "US", "+12125550199"),
        ("0xx11 91234-5678", "BR", "+5511912345678"),  # Brazil's placeholder for a carrier code
        ("(0xx 11) 3333-4444", "BR", "+551133334444"),
        ("1-800-AND-MORE", "US", "+18002636673"),  # a joining word inside a vanity number's hyphens
        ("1-888-2-GO-2-SEE", "US", "+18882462733"),  # a vanity number with words between its digits
        ("0800/501", "MO", "+8530800501"),  # a slash after the area code, a short number after it
        ("030 123/4567", "DE", "+49301234567"),
        ("030/123/456", "DE", "+4930123456"),  # a slash between every short group, where lengths vary
        ("+43/1/234/56/78", "AT", "+4312345678"),
        ("0066-8233-02522", "JP", "+810066823302522"),  # toll-free, grouped as Japan writes it: no Thai number
        ("+41/21/234/56/78", "CH", "+41212345678"),  # a slash between every group
        ("01.23.45.67.89", "FR", "+33123456789"),  # dots between groups: no decimal
        ("212.555.0199", "US", "+12125550199"),
    ],
)
def test_what_looks_like_two_numbers_but_is_one_is_read(stack: Stack, to: str, region: str, e164: str) -> None:
    response = stack.post("/api/calls/validate", {"to": to, "region": region})

    assert response.status_code == 200, response.text
    assert response.json()["to"] == e164


@pytest.mark.parametrize("space", ["\u202f", "\u2009", "\u00a0"])
def test_any_unicode_space_separates_digits(stack: Stack, space: str) -> None:
    response = stack.post("/api/calls/validate", {"to": space.join(["+33", "1", "23", "45", "67", "89"])})

    assert response.status_code == 200, response.text
    assert response.json()["to"] == "+33123456789"
