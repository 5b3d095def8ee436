"""Phone number reading, policy and masking, all through libphonenumber (`phonenumbers`).

Most "Malformed participant address" answers start with a number Genesys cannot read, so we read the
number the way a person wrote it, say exactly what we understood, and hand Genesys only E.164.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult, shortnumberinfo

from shared.errors import Problem

# Regions whose international call prefix is `00` and `011`: reading a number "as dialled from there"
# lets libphonenumber itself strip the prefix when the caller's region uses another one.
_IDD_REGIONS = (("00", "DE"), ("011", "US"))
_DIGITS = re.compile(r"\d")
_PAUSE = re.compile(r"\d\s*[pw]+\s*\d", re.IGNORECASE)  # a dial string's pause or wait, then tones to send
_LETTER = re.compile(r"[A-Za-z]")
# Words people write beside a number, never a vanity number's ('212-555 Home' would ring 212-555-4663): a word on
# its own, not one joined to the digits by hyphens as a vanity number's are (1-800-HOME-DEPOT)
_LABEL = re.compile(
    r"(?<![-A-Za-z])(home|cell|mobile|mob|work|office|fax|tel|phone|main|direct|landline|business|private|"
    r"personal|day|night|evening|other|and|or|und|oder|et|ou|then)(?![-A-Za-z])",  # and words joining two numbers
    re.IGNORECASE,
)
_NUMBER_START = re.compile(r"[+\d]")
# Two numbers in one text, which libphonenumber would join into one: a word between digits ('089 1234 or 5678',
# 'od.', 'o'; it drops words of one or two letters), or a separator and a second number's prefix ('089 1234 /
# 089 5678').
_LETTER_BETWEEN_DIGITS = re.compile(r"\d[^\d]*[^\W\d_][^\d]*\d")
# Brazil's '(0xx11) ...' at the start of a number: a carrier code goes there (masked digits elsewhere are refused)
_CARRIER_PLACEHOLDER = re.compile(r"^([\s(]*0)xx(?=\s*\d)", re.IGNORECASE)
_SECOND_PREFIX = re.compile(r"\d\s*[/,;]\s*[+0]")
# ... or a second number's own last digits after a slash ('0171 1234567 / 8'), which libphonenumber joins on: when
# what comes before the slash is a valid number alone, and the slash is the text's only one or follows a group of
# five digits or more ('0171/1234567/8'). A slash after an area code ('030 123/4567') or between every short group
# ('030/123/456', '+43/1/234/56/78') separates groups of one number, where lengths vary too.
_ALTERNATIVE_ENDING = re.compile(r"^(.*\d{5}\D*|[^/]*\d[^/]*)/\s*\d{1,3}\W*$")
# Digits in brackets after the number ('0171 1234567 (1)', a note): only a leading group can be part of a number
# ('(030) ...', '+49 (0) 30 ...'), and where lengths vary libphonenumber joins a trailing one into a longer number
_TRAILING_BRACKETED_DIGITS = re.compile(r"\d[^\d(\[]*[(\[][^)\]]*\d[^)\]]*[)\]]\W*$")  # '(24h)' too
_FIRST_DIGITS = re.compile(r"\d+")
_PLUS_SIGNS = ("+", "\uff0b")  # libphonenumber's: a full-width plus is a plus
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# A spreadsheet's number cell as text: digits, then decimals ('4930123456.0', '030 123456.0', in a CSV's quotes),
# which libphonenumber reads as digits: the text's only dot, after five digits and before its last one to three.
# Dots that group a number are several ('01.23.45.67.89') or come after fewer digits ('212.555.0199').
_DECIMAL = re.compile(r"^[^.]*\d{5}\.\d{1,3}\W*$")
_SPACE = re.compile(r"\s")  # every Unicode space (U+202F, U+2009 in French formatting) reads as a plain one
# libphonenumber's region for a number of no country: "ZZ" unknown, "001" a non-geographic network (+800, +882)
NO_COUNTRY = ("ZZ", "001")

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}
_POSSIBILITY_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "invalid_country_code",
    ValidationResult.TOO_SHORT: "too_short",
    ValidationResult.TOO_LONG: "too_long",
}
REASON_TEXT = {
    "not_a_number": "is not a phone number",
    "too_short": "has too few digits",
    "too_long": "has too many digits",
    "invalid_country_code": "has no valid country code",
    "invalid_number": "is not a valid number in its numbering plan",
    "extension": "has an extension; extensions are not supported (the call would reach the main line)",
    "several_numbers": "has words, a second number or digits in brackets after it ('or', '/ 0...', '/ 8', '(1)'), "
    "which would be joined into one number: send one number, without an extension",
    "ambiguous": "reads as two different valid numbers ('understood' shows both): a country code without its '+', "
    "or a first group that is an international prefix in some countries (009 in Korea and Colombia) after which "
    "the rest is another number; send the one you mean as 'understood' writes it (its e164 or other)",
    "decimal": "is written as a decimal number, as a spreadsheet writes a number cell ('4930123456.0'), whose "
    "decimals would be dialed as digits; send it as text",
    "letters": "has letters that would be read as keypad digits, which only North American (+1) numbers such as "
    "1-800-FLOWERS are; remove words such as 'Fax' or 'home'",
}
TYPE_NAMES = {
    value: name.lower() for name, value in vars(PhoneNumberType).items() if name.isupper() and isinstance(value, int)
}


@dataclass(frozen=True)
class PhoneNumber:
    """A number as we understood it."""

    e164: str
    region: str | None
    number_type: str

    def to_json(self) -> dict[str, Any]:
        return {"e164": self.e164, "region": self.region, "type": self.number_type}


def is_known_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def region_of(e164: str) -> str | None:
    """The region of a number already in E.164."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return None if region is None or region in NO_COUNTRY else region


MASK_SHOWN_DIGITS = 7  # a country code and an area: `+1212555****`


def mask(text: str) -> str:
    """Hide the last four digits (`+1212555****`), for logs; short inputs are hidden whole. At most the first
    MASK_SHOWN_DIGITS are shown: a text that was not read as one number (an extension, two numbers) holds more."""
    digits = _DIGITS.findall(text)
    if len(digits) <= 4:
        return "*" * len(digits)
    head = "".join(digits[: min(len(digits) - 4, MASK_SHOWN_DIGITS)])
    return ("+" if text.strip().startswith("+") else "") + head + "****"


class _Reading(NamedTuple):
    number: phonenumbers.PhoneNumber
    number_type: int  # libphonenumber's PhoneNumberType; UNKNOWN when valid nowhere
    region: str  # the region it was read as dialed from
    other: str | None = None  # another valid number the same text reads as (E.164): refused, not guessed


def _parse(text: str, region: str) -> _Reading:
    """Parse, retrying `00`/`011` international prefixes when the region itself does not use them, and only
    where the digits cannot be a national number mistyped: a wrong guess rings someone abroad.

    - `011` is read again only in regions with a trunk prefix other than `0` (RU's `8`), whose national numbers
      never start with it: in GB (Sheffield `0114`), IT (Turin `011`, no trunk prefix), JP, EG and the rest,
      `011` may start national numbers, and one a digit too long or too short is refused, not dialed abroad.
    - `00` is read again unless dropping one of its zeros leaves a valid national number (`002 9876 5432` in AU
      is Sydney with a zero doubled, not the Faroe Islands). Few national numbers start `00` (JP and KR toll-free
      ones), and those are valid as written, so never read again.
    - A reading that the same digits contradict carries the other number (`other`), and is refused: `00` read as
      Europe dials it against a longer prefix other countries dial that the text sets apart (`009 1 ...`), or
      against a national number starting `00` (`0066 81 234 5678` in JP: a toll-free number, or a Thai mobile),
      and digits starting with the region's country code that are a mobile only with a `+`.

    libphonenumber's `number_type` is its validity check already, so each reading is classified once (it is
    most of a call's own CPU time).
    """
    number = phonenumbers.parse(text, region)
    number_type = phonenumbers.number_type(number)
    digits = phonenumbers.normalize_digits_only(text)  # Arabic-Indic and full-width digits too
    mexican = _without_mexicos_old_prefix(number, digits) if number_type == PhoneNumberType.UNKNOWN else None
    if mexican is not None:
        return _Reading(mexican, phonenumbers.number_type(mexican), region)
    if text.lstrip().startswith(_PLUS_SIGNS):
        return _Reading(number, number_type, region)
    if number_type != PhoneNumberType.UNKNOWN:
        other = _read_with_plus(digits, number, region) or _read_after_plain_00(text, digits, number, region)
        return _Reading(number, number_type, region, other)
    for prefix, idd_region in _IDD_REGIONS:
        if not digits.startswith(prefix) or _national_reading_wins(prefix, digits, region):
            continue
        try:
            candidate = phonenumbers.parse(text, idd_region)
        except NumberParseException:
            continue
        candidate_type = phonenumbers.number_type(candidate)
        if candidate_type != PhoneNumberType.UNKNOWN:
            return _Reading(candidate, candidate_type, idd_region, _read_after_a_longer_prefix(text, digits, candidate))
    return _Reading(number, PhoneNumberType.UNKNOWN, region)


def _without_mexicos_old_prefix(number: phonenumbers.PhoneNumber, digits: str) -> phonenumbers.PhoneNumber | None:
    """A Mexican number written with a prefix its 2019 plan dropped, as the ten digits after it: the mobile `1`
    after the country code (`+52 1 55 1234 5678`; WhatsApp ids still carry it), the national `044` and `045`
    (mobiles) and `01` (long distance). libphonenumber reads them as too long; no valid number has those digits
    with the prefix. A bare `1` never dialed within Mexico: `1-800-123-4567` written there is no Mexican number."""
    national = str(number.national_number)
    if number.country_code != 52 or len(national) not in (11, 12):
        return None
    ten_digits = national[-10:]
    if not any(digits.endswith(written + ten_digits) for written in ("521", "044", "045", "01")):
        return None  # the digits as written, `digits`: libphonenumber's national number lost a leading 0
    mexican = phonenumbers.parse("+52" + ten_digits)
    return mexican if phonenumbers.is_valid_number(mexican) else None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _valid_other(text: str, reading: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber | None:
    """`text` read as an international number (`+...`), when that is valid and not `reading`."""
    try:
        other = phonenumbers.parse(text)
    except NumberParseException:
        return None
    return other if phonenumbers.is_valid_number(other) and _e164(other) != _e164(reading) else None


def _read_with_plus(digits: str, national: phonenumbers.PhoneNumber, region: str) -> str | None:
    """Another valid number the digits make with a `+` (a spreadsheet drops it), while as written they are no
    mobile, when they start with the region's own country code, or lack the trunk prefix with which the region
    writes that national number (in DE `447911123456` is an Oldenburg landline only without its `0`, and with a
    `+` a UK mobile; Brazil writes `(51) 3333-4444` without one, and the US never writes its `1`).

    With the region's own code it counts when it is a mobile (in DE `4917612345678` is a Leer landline, and with
    its `+` a mobile), and whatever its type where national numbers start with a trunk prefix the digits lack (in
    ID `6222 4234567` is Bandung with its `+`; in SE `46 8 555 123` Stockholm). Digits that are a mobile as
    written stand (`390 123 4567` in IT, a 3 Italia mobile; in GB `7911 123456`, a mobile whose `0` a spreadsheet
    dropped), and so do two readings that agree (`12125550199` in the US)."""
    if phonenumbers.number_type(national) in _MOBILE_TYPES:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = (metadata.national_prefix if metadata is not None else None) or ""
    # Written without it: the digits are the national number itself (in RU `8 (821) ...` starts with its trunk 8,
    # while `8215441234`, Korea's +82 1544 1234 with its `+` lost, is an area code 821 without one)
    lacks_trunk = bool(trunk) and digits == phonenumbers.national_significant_number(national)
    own_code = digits.startswith(str(phonenumbers.country_code_for_region(region)))
    if not own_code and not (lacks_trunk and _written_with(trunk, national)):
        return None
    other = _valid_other("+" + digits, national)
    if other is None:
        return None
    return _e164(other) if lacks_trunk or phonenumbers.number_type(other) in _MOBILE_TYPES else None


def _written_with(trunk: str, national: phonenumbers.PhoneNumber) -> bool:
    """Whether the region writes `national` starting with its trunk prefix, as its national format shows."""
    national_format = phonenumbers.PhoneNumberFormat.NATIONAL
    return phonenumbers.normalize_digits_only(phonenumbers.format_number(national, national_format)).startswith(trunk)


@lru_cache(maxsize=1)
def _international_prefixes() -> tuple[re.Pattern[str], ...]:
    """Every region's international call prefix, as libphonenumber's metadata writes it (`00`, `011`, and the
    carrier ones of KR, CO, TH, SG, ...: `00(?:[125689]|...)`); loaded once, on the first number that needs it."""
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.international_prefix:
            found.add(metadata.international_prefix)
    return tuple(re.compile(pattern) for pattern in sorted(found))


def _read_after_a_longer_prefix(text: str, digits: str, abroad: phonenumbers.PhoneNumber) -> str | None:
    """Another number the digits make after a longer international prefix than `00`, one a country dials, when
    the text sets that prefix apart as its first group: `009 1 212 555 0199` is New York dialed from Seoul or
    Bogota, and, read after `00`, India. A first group of `00` and a country code (`0033 6 12 34 56 78`) is
    Europe's way: Thailand's `003` would read it as Hungary, but no one writes it so."""
    first_group = _FIRST_DIGITS.search(_plain(text))
    for prefix in _international_prefixes():
        match = prefix.match(digits)
        if match is not None and len(match.group()) > len("00") and first_group and first_group[0] == match[0]:
            other = _valid_other("+" + digits[match.end() :], abroad)
            if other is not None:
                return _e164(other)
    return None


def _read_after_plain_00(text: str, digits: str, reading: phonenumbers.PhoneNumber, region: str) -> str | None:
    """Another number the digits make after `00`, Europe's international prefix, when the region's own is `00` and
    a digit more, which libphonenumber dialed: `0044 121 234 5678` is Birmingham as Europe writes it, and
    Lausanne dialed after Singapore's `004`; `0081 90 ...` a Japanese mobile, or Memphis after Korea's `008`.
    Likewise when the region's own prefix is no `00` at all and the digits are a national number starting `00`
    (Japan's and Korea's toll-free numbers), when the text sets `00` and the other number's country code apart
    and is not grouped as the country writes the number: `0066 81 234 5678` in JP is a toll-free number or a Thai
    mobile, while `0066-8233-02522` and Korea's `00798-8521-2032`, grouped as they write them, are toll-free."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if not digits.startswith("00") or metadata is None or not metadata.international_prefix:
        return None
    own = re.match(metadata.international_prefix, digits)
    groups = _FIRST_DIGITS.findall(_plain(text))
    if own is not None:
        if len(own.group()) <= len("00"):
            return None
        if groups[:2] == [own.group(), str(reading.country_code)]:
            return None  # the region's own prefix set apart, then the country code: `009 1 212 555 0199` in Nigeria
    try:
        other = phonenumbers.parse(text, "DE")  # Germany dials 00 alone
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(other) or _e164(other) == _e164(reading):
        return None
    if own is not None:
        return _e164(other)
    # A national number starting `00`: set apart as `00` and the other number's country code, unless grouped as its
    # own country writes it (`0066-8233-02522`, Japan's toll-free)
    code = str(other.country_code)
    written_abroad = groups[:1] == ["00" + code] or groups[:2] == ["00", code]
    written_at_home = groups == _FIRST_DIGITS.findall(
        phonenumbers.format_number(reading, phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    return _e164(other) if written_abroad and not written_at_home else None


def _national_reading_wins(prefix: str, digits: str, region: str) -> bool:
    """Whether digits starting with an international `prefix` the region does not use may be a national number
    mistyped there (see `_parse`)."""
    if prefix == "011":
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        return metadata is None or not metadata.national_prefix or metadata.national_prefix.startswith("0")
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits[1:], region))
    except NumberParseException:
        return False


def _number_part(text: str) -> str:
    """The text without a tel: URI's parameters (`;phone-context=...`, `;isub=...`)."""
    return text.split(";", 1)[0] if text.strip().lower().startswith("tel:") else text


def _plain(text: str) -> str:
    """Full-width forms as ASCII (NFKC: a full-width slash or plus) and every script's digits as ASCII ones, for
    the checks that look at separators and prefixes: libphonenumber reads them all alike."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in folded)


def _joins_numbers(plain_number: str, vanity: bool, region: str) -> bool:
    """Whether the number's text (`_plain`, a tel: URI's parameters aside) holds more than one number, or one and
    words inside it (see `_LETTER_BETWEEN_DIGITS`; a `vanity` number has words inside), read in `region`."""
    number_part = _CARRIER_PLACEHOLDER.sub(r"\1", plain_number)
    return bool(
        _SECOND_PREFIX.search(number_part)
        or _TRAILING_BRACKETED_DIGITS.search(number_part)
        or (not vanity and _LETTER_BETWEEN_DIGITS.search(number_part))
        or _ends_with_another_ending(plain_number, region)
    )


def _ends_with_another_ending(plain_number: str, region: str) -> bool:
    """Whether one to three digits after the text's last slash follow a number that is valid without them: the
    last digits of a second number (`0171 1234567 / 8`), not the last group of this one (`030 123/4567`)."""
    ending = _ALTERNATIVE_ENDING.match(plain_number)
    if ending is None:
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(ending.group(1), region))
    except NumberParseException:
        return False


def _letters_read_as_digits(text: str) -> bool:
    """libphonenumber's rule: three or more letters in the number (from its first digit or `+`, a tel: URI's
    parameters aside) are all read as keypad digits, so a label after a number ('+49 30 12345 Fax') would be
    dialed as a longer number, valid where lengths vary."""
    number_part = _number_part(text)
    start = _NUMBER_START.search(number_part)
    return start is not None and len(_LETTER.findall(number_part, start.start())) >= 3


def _vanity_number(text: str, reading: _Reading) -> bool:
    """A North American number written with letters (1-800-FLOWERS): valid with them, no number without them
    (read as dialed from where the number was), unlike a local number and a word ('867-5309 Fax' is a valid
    +1 867 530 9329), and no word a person writes beside a number ('212-555 Home')."""
    if reading.number.country_code != 1 or reading.number_type == PhoneNumberType.UNKNOWN:
        return False
    if _LABEL.search(text):
        return False
    try:
        without_letters = phonenumbers.parse(_LETTER.sub("", text), reading.region)
    except NumberParseException:
        return True
    return not phonenumbers.is_possible_number(without_letters)


def _invalid(reason: str, text: str, field: str, understood: dict[str, Any] | None = None) -> Problem:
    extensions: dict[str, Any] = {"reason": reason}
    if understood:
        extensions["understood"] = understood
    return Problem(
        "invalid_phone_number",
        f"'{field}' {REASON_TEXT[reason]}: {text!r}.",
        field=field,
        extensions=extensions,
    )


def _not_allowed(reason: str, detail: str, field: str, understood: dict[str, Any]) -> Problem:
    return Problem(
        "destination_not_allowed",
        detail,
        field=field,
        extensions={"reason": reason, "understood": understood},
    )


def normalize(text: str, region: str, *, field: str = "to", allow_premium_rate: bool = False) -> PhoneNumber:
    """Read `text` (any common format) as a dialable number, or raise the problem that explains why not.

    Emergency numbers and short codes are refused whatever the settings; premium-rate numbers only
    when `allow_premium_rate` is false.
    """
    try:
        reading = _parse(_SPACE.sub(" ", text), region)
    except NumberParseException as error:
        raise _invalid(_PARSE_REASONS.get(error.error_type, "not_a_number"), text, field) from None
    number, number_type = reading.number, reading.number_type
    plain_number = _plain(_number_part(text))  # folded once for the checks of its characters below
    if _DECIMAL.match(plain_number):
        raise _invalid("decimal", text, field)
    # CreateCallRequest has no extension: dialing the rest would ring the switchboard
    if number.extension or _PAUSE.search(text):
        raise _invalid("extension", text, field)
    letters = _letters_read_as_digits(text)
    vanity = letters and _vanity_number(text, reading)  # 1-888-2-GO-2-SEE: words inside
    if _joins_numbers(plain_number, vanity, reading.region):
        raise _invalid("several_numbers", text, field)
    if reading.other is not None:
        read = _e164(number)
        raise _invalid("ambiguous", text, field, {"e164": read, "region": region_of(read), "other": reading.other})

    # A number valid nowhere has no region of its own; its country code still names one for the checks.
    number_region = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(
        number.country_code or 0
    )
    e164 = _e164(number)
    shown_region = None if number_region in NO_COUNTRY else number_region
    understood: dict[str, Any] = {"e164": e164, "region": shown_region}
    if letters and not vanity:
        raise _invalid("letters", text, field, understood)
    national = phonenumbers.national_significant_number(number)
    if shortnumberinfo.is_emergency_number(national, number_region):
        raise _not_allowed(
            "emergency_number", f"'{field}' is an emergency number; it is never dialed.", field, understood
        )
    if number_type == PhoneNumberType.UNKNOWN:  # not valid in any region's numbering plan
        if shortnumberinfo.is_valid_short_number(number):
            raise _not_allowed("short_code", f"'{field}' is a short code; it is never dialed.", field, understood)
        possibility = phonenumbers.is_possible_number_with_reason(number)
        raise _invalid(_POSSIBILITY_REASONS.get(possibility, "invalid_number"), text, field, understood)

    type_name = TYPE_NAMES.get(number_type, "unknown")
    understood["type"] = type_name
    if type_name == "premium_rate" and not allow_premium_rate:
        raise _not_allowed(
            "premium_rate", f"'{field}' is a premium-rate number; ALLOW_PREMIUM_RATE is off.", field, understood
        )
    return PhoneNumber(e164, shown_region, type_name)


def readings(text: str, regions: Iterable[str]) -> set[str]:
    """Every valid E.164 the same digits could mean: as written, with a `+`, or national in `regions`.

    Used to tell a caller that a refused caller ID matches an allowed number read another way.
    """
    digits = "".join(_DIGITS.findall(text))
    found: set[str] = set()
    for candidate, region in [("+" + digits, "ZZ")] + [(digits, r) for r in regions] + [(text, r) for r in regions]:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.add(_e164(number))
    return found
