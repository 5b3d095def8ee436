"""Import an existing do-not-call list (CSV) into the function's list in Table Storage.

    python scripts/import_do_not_call.py numbers.csv [--region US]

The first column is the number in any common format (a first line of under 5 digits is a header), an optional
second column a reason. Storage comes from the same settings as the app: `AzureWebJobsStorage` (a connection string), or
`AzureWebJobsStorage__accountName` (or both `__tableServiceUri` and `__queueServiceUri`) with your own Entra
identity (`az login`), and `DO_NOT_CALL_TABLE` (default `donotcall`). Unreadable lines are
reported by line number, never by content, and make the exit status 1: the numbers on them are not listed, so they
can still be called. Numbers are written in transactions of 100.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.config import storage_account  # after the path of the app's modules
from shared.errors import Problem
from shared.phone import normalize
from shared.policy.do_not_call import Listing, TableDoNotCallList

MIN_NUMBER_DIGITS = 5  # an unreadable first line with fewer is a header ("Number (E.164)", "phone1")


def read_listings(path: Path, region: str) -> tuple[dict[str, Listing], list[int]]:
    """Each number once (the last reason wins), and the numbers of the lines that could not be read."""
    listings: dict[str, Listing] = {}
    unreadable: list[int] = []
    now = time.time()
    with path.open(newline="", encoding="utf-8-sig") as source:
        for line, row in enumerate(csv.reader(source), start=1):
            if not row or not row[0].strip():
                continue
            try:
                number = normalize(row[0], region, field="number", allow_premium_rate=True).e164
            except Problem:
                if line > 1 or sum(c.isdigit() for c in row[0]) >= MIN_NUMBER_DIGITS:  # else a header: Number (E.164)
                    unreadable.append(line)
                continue
            reason = row[1].strip() if len(row) > 1 and row[1].strip() else None
            listings[number] = Listing(number, now, reason)
    return listings, unreadable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="the list: number[,reason] per line")
    parser.add_argument("--region", default=os.environ.get("DEFAULT_PHONE_REGION", "US"), help="for national numbers")
    args = parser.parse_args(argv)
    try:
        storage = storage_account(os.environ)
    except Problem as problem:  # a setting present but unusable: say which, as the app would
        print(f"{problem.detail} {problem.hint or ''}".strip(), file=sys.stderr)
        return 2
    if storage is None:
        print(
            "Set AzureWebJobsStorage__accountName=<storage account> (signed in with az login, with Storage Table "
            "Data Contributor on it), or AzureWebJobsStorage to a connection string, first.",
            file=sys.stderr,
        )
        return 2
    listings, unreadable = read_listings(args.csv, args.region.upper())
    table = TableDoNotCallList(storage.table(os.environ.get("DO_NOT_CALL_TABLE") or "donotcall"))
    written = table.add_many(listings.values())
    print(f"imported {written} numbers")
    if unreadable:
        print(
            f"NOT listed: {len(unreadable)} unreadable lines (line {', line '.join(map(str, unreadable))}); the "
            "numbers on them can still be called: write each as one number, without an extension or words, and "
            "import them again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
