"""Reading a number classifies it once (`number_type`), and that must agree with libphonenumber's own checks.

`shared.phone.normalize` no longer calls `is_valid_number` (it classified each number up to seven times, most of
a call's own CPU time); these properties hold it to what `is_valid_number` and `number_type` say of the same
input, over numbers of every type in many regions with their last digits varied.
"""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberType

from shared.errors import Problem
from shared.phone import TYPE_NAMES, normalize

REGIONS = ["US", "CA", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "NG", "AG", "JM", "IM", "VA", "IT"]
TYPES = [value for value in TYPE_NAMES if value != PhoneNumberType.UNKNOWN]


def _examples() -> list[str]:
    """Example numbers of every type in REGIONS, and of the non-geographic networks (+800, +882, ...)."""
    found = [phonenumbers.example_number_for_type(region, kind) for region in REGIONS for kind in TYPES]
    found += [
        phonenumbers.example_number_for_non_geo_entity(code) for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    return [phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in found if n is not None]


EXAMPLES = _examples()
# How a person may write an E.164 number: as is, without its +, or behind an international prefix (00, 011).
WRITTEN = (lambda e164: e164, lambda e164: e164[1:], lambda e164: "00" + e164[1:], lambda e164: "011 " + e164[1:])
# An example number with its last digits replaced (valid ones of every type, and invalid ones around them),
# written one of those ways.
numbers = st.builds(
    lambda example, tail, written: written(example[: -len(tail)] + tail),
    st.sampled_from(EXAMPLES),
    st.text("0123456789", min_size=1, max_size=4),
    st.sampled_from(WRITTEN),
)


@settings(max_examples=1_000, deadline=None, derandomize=True)
@given(text=numbers, region=st.sampled_from(REGIONS))
def test_a_number_is_accepted_exactly_when_libphonenumber_calls_it_valid(text: str, region: str) -> None:
    try:
        parsed: phonenumbers.PhoneNumber | None = phonenumbers.parse(text, region)
    except NumberParseException:
        parsed = None
    try:
        reading = normalize(text, region, allow_premium_rate=True)
    except Problem as refusal:
        reason = (refusal.extensions or {}).get("reason")
        if parsed is not None and phonenumbers.is_valid_number(parsed):
            # The only refusals of a valid number read as written: an emergency number, and a text that is another
            # valid number too (its country code without a +, in a region of the same code)
            assert reason in ("emergency_number", "ambiguous")
            if reason == "ambiguous":
                readings = refusal.extensions["understood"]
                assert readings["other"] != readings["e164"]
                assert phonenumbers.is_valid_number(phonenumbers.parse(readings["other"]))
        return
    number = phonenumbers.parse(reading.e164)
    assert phonenumbers.is_valid_number(number)
    assert reading.number_type == TYPE_NAMES[phonenumbers.number_type(number)]
    if parsed is not None and phonenumbers.is_valid_number(parsed):
        assert reading.e164 == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def test_the_examples_cover_every_type_and_both_outcomes() -> None:
    """The property above is only as good as its inputs: they span the types and include invalid numbers."""
    readings = [phonenumbers.parse(e) for e in EXAMPLES]
    assert any(phonenumbers.region_code_for_number(n) == "001" for n in readings)  # non-geographic
    assert {phonenumbers.number_type(n) for n in readings} >= {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
    invalid = [e for e in EXAMPLES if not phonenumbers.is_valid_number(phonenumbers.parse(e[:-1] + "0" * 3))]
    assert invalid, "no example turns invalid when its digits change"
