"""ISO-8601 instants in the forms senders write, read alike on Python 3.10 and later.

Python 3.10's `datetime.fromisoformat` reads only what `isoformat()` writes: no trailing `Z`, and a fraction of
exactly 3 or 6 digits. Power Automate's `utcNow()` writes 7 (`2026-12-20T15:30:00.1234567Z`), and 3.11 reads any
number, so the same request was refused on 3.10 and taken on 3.11. Those two differences are evened out here;
forms only 3.11 reads (the basic format `20261220T153000Z`, week dates, an offset without its colon) are still
refused on 3.10.
"""

from __future__ import annotations

import re
from datetime import datetime

_FRACTION = re.compile(r"(?<=:\d\d)[.,](\d+)")  # after the seconds; ISO 8601 allows a comma


def parse_instant(text: str) -> datetime | None:
    """The moment `text` names (naive when it names no zone), or None when it is no ISO-8601 date and time.
    A fraction finer than a microsecond is cut to one."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda digits: "." + digits[1][:6].ljust(6, "0"), text, count=1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
