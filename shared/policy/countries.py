"""Destination countries: `ALLOWED_COUNTRIES` (ISO 3166 alpha-2); unset allows every country."""

from __future__ import annotations

from shared.errors import Problem
from shared.phone import PhoneNumber


def check_country(number: PhoneNumber, allowed: frozenset[str] | None, field: str = "to") -> None:
    """Nothing when the number's country may be called; else `destination_not_allowed` naming the country."""
    if allowed is None or number.region in allowed:
        return
    country = number.region or "a non-geographic network"
    raise Problem(
        "destination_not_allowed",
        f"'{field}' is in {country}, which is not in ALLOWED_COUNTRIES.",
        field=field,
        hint="Call numbers of the countries in ALLOWED_COUNTRIES, or have the operator add this one.",
        extensions={"reason": "country_not_allowed", "country": number.region, "understood": number.to_json()},
    )
