"""Import an existing do-not-call list (CSV) into the function's list in Table Storage.

    python scripts/import_do_not_call.py numbers.csv --region US [--table donotcall] [--create-table]

`--region` is the app's `DEFAULT_PHONE_REGION`, the country national numbers on the list are read in: required,
because a national number read in another country is another number (`55 1234 5678` is Mexico City read in MX
and a New Jersey number read in US), which the import would list while the real one stayed callable. `--table`
is the app's `DO_NOT_CALL_TABLE` (default: that variable here, else `donotcall`). It must exist (the app makes the
default one on its first call or readiness check, and never another): a name mistyped would fill a table the app
never reads. `--create-table` makes it: the default before the app's first call, or the table a setting names.

The first column is the number in any common format (a first line of under 5 digits is a header), the rest of
the row an optional reason (at most 256 characters; a longer one is cut; a quoted one may span lines, and a file
with a quote left open is refused whole). A row whose later cells hold a number too (a second phone column) is
named: only its first number is listed. The file is UTF-8 (Excel: "CSV UTF-8").
Storage comes from the same settings as the app: `AzureWebJobsStorage` (a connection string), or
`AzureWebJobsStorage__accountName` (or both `__tableServiceUri` and `__queueServiceUri`) with your own Entra
identity (`az login`). Unreadable lines are reported by line number, never by content, and make the exit
status 1: the numbers on them are not listed, so they can still be called. Numbers are written in transactions
of 100; a number listed already keeps the date it was listed. Running the import again is safe.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.config import storage_account  # after the path of the app's modules
from shared.errors import Problem
from shared.phone import is_known_region, normalize
from shared.policy.do_not_call import MAX_REASON_LENGTH, TRANSACTION_SIZE, Listing, TableDoNotCallList
from shared.storage import is_table_gone

if TYPE_CHECKING:
    from azure.data.tables import TableClient

MIN_NUMBER_DIGITS = 5  # an unreadable first line with fewer is a header ("Number (E.164)", "phone1")
PHONE_CELL = re.compile(r"[+\d\s().\-/]+")


class UnreadableFile(Exception):
    """The file as a whole cannot be read as a CSV list: nothing is imported."""


@dataclass
class ListFile:
    """What a CSV list holds: each number once (the last reason wins) with the line it was first on, and the
    lines that could not be read or whose reason was cut."""

    reasons: dict[str, str | None] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)
    unreadable: list[int] = field(default_factory=list)
    more_numbers: list[int] = field(default_factory=list)  # a row's later cells held a number: not listed
    reasons_cut: list[int] = field(default_factory=list)

    def add(self, number: str, reason: str | None, line: int) -> None:
        self.reasons[number] = reason
        self.first_line.setdefault(number, line)


def _text(path: Path) -> str:
    """The file as text; UTF-8 only (with or without a byte-order mark), else the line where it stops being so."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UnreadableFile(
            f"line {line} is not UTF-8: save the list as CSV UTF-8 (Excel: Save As, 'CSV UTF-8'); nothing was imported"
        ) from None


def read_list(path: Path, region: str) -> ListFile:
    """Read every row; a row is skipped only when all its cells are blank.

    Quotes are read strictly: a reason whose quote is never closed (or closed mid-cell) would take every later
    line into it, and their numbers would go unlisted while the import said nothing. Such a file is refused
    whole. A quoted reason that closes cleanly but holds lines that start with a number took rows in, or names
    another number: the row's own number is listed with the reason's first line, and the later lines are named
    as unreadable.
    """
    read = ListFile()
    reader = csv.reader(io.StringIO(_text(path), newline=""), strict=True)
    ended = 0  # the file line the previous record ended on: a quoted reason may span lines
    try:
        for row in reader:
            line, ended = ended + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            try:
                number = _listed_number(row[0], region)
            except Problem:
                if line > 1 or sum(c.isdigit() for c in row[0]) >= MIN_NUMBER_DIGITS:  # else a header: Number (E.164)
                    read.unreadable.append(line)
                continue
            later = [(cell, _is_phone_cell(cell, region)) for cell in row[1:]]
            if any(phone for _, phone in later):  # a second phone column (home, mobile): not listed, named
                read.more_numbers.append(line)
            reason = _reason([cell for cell, phone in later if not phone])
            if reason is not None and _holds_rows(reason, region):  # the row's own number is listed all the same
                read.unreadable.extend(range(line + 1, ended + 1))
                reason = reason.splitlines()[0].strip() or None
            if reason is not None and len(reason) > MAX_REASON_LENGTH:
                reason = reason[:MAX_REASON_LENGTH]
                read.reasons_cut.append(line)
            read.add(number, reason, line)
    except csv.Error as error:
        lines = f"line {ended + 1}" + (f" (to {reader.line_num})" if reader.line_num > ended + 1 else "")
        raise UnreadableFile(
            f"{lines} is not CSV ({error}): a quote in a cell must close the cell; nothing was imported"
        ) from None
    return read


def _listed_number(cell: str, region: str) -> str:
    """A first column's number as listed (E.164); premium-rate numbers too. Raises the Problem saying why not."""
    return normalize(cell, region, field="number", allow_premium_rate=True).e164


def _reason(cells: list[str]) -> str | None:
    """The reason a row's cells after the number hold: cells an unquoted comma split it into are joined again, and
    the empty cells a spreadsheet pads its rows with are left out."""
    while cells and not cells[-1].strip():
        cells = cells[:-1]
    return ",".join(cells).strip() or None


def _is_phone_cell(cell: str, region: str) -> bool:
    """A cell holding only a phone number (digits and the signs written between them): a reason's reference
    number ("complaint ref 2125550100") or a vanity number is words, not a second phone column."""
    return bool(PHONE_CELL.fullmatch(cell.strip())) and _reads_as_number(cell, region)


def _reads_as_number(text: str, region: str) -> bool:
    try:
        _listed_number(text, region)
    except Problem:
        return False
    return True


def _holds_rows(reason: str, region: str) -> bool:
    """Whether a reason spanning lines has a later line that starts with a number: rows a stray quote took in."""
    return any(_reads_as_number(later.split(",", 1)[0], region) for later in reason.splitlines()[1:])


def write_list(table: TableDoNotCallList, read: ListFile) -> tuple[int, Problem | None, list[int]]:
    """Write every number, keeping the date of one listed already; stops at the first transaction storage
    refuses. How many were written, the refusal, and the lines of the numbers not written."""
    try:
        listed_at = table.listed_at()
    except Problem as refusal:
        return 0, refusal, sorted(read.first_line.values())
    now = time.time()
    listings = [Listing(number, listed_at.get(number, now), reason) for number, reason in read.reasons.items()]
    written = 0
    for start in range(0, len(listings), TRANSACTION_SIZE):
        transaction = listings[start : start + TRANSACTION_SIZE]
        try:
            table.add_transaction(transaction)
        except Problem as refusal:
            return written, refusal, sorted(read.first_line[listing.number] for listing in listings[start:])
        written += len(transaction)
    return written, None, []


def table_exists(client: TableClient) -> bool:
    """Whether the table is there; a storage failure is raised (AzureError)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.get_entity("dnc", "import-probe")
    except ResourceNotFoundError as missing:
        return not is_table_gone(missing)
    return True


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:20]))
    return f"line {shown}" + (f" and {len(lines) - 20} more" if len(lines) > 20 else "")


def main(argv: list[str] | None = None) -> int:
    from azure.core.exceptions import AzureError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="the list: number[,reason] per line, UTF-8")
    parser.add_argument("--region", required=True, help="the app's DEFAULT_PHONE_REGION: for national numbers")
    parser.add_argument("--table", default=os.environ.get("DO_NOT_CALL_TABLE") or "donotcall", help="the app's table")
    parser.add_argument("--create-table", action="store_true", help="make the table when it is not there")
    args = parser.parse_args(argv)
    region = args.region.upper()
    if not is_known_region(region):
        print(
            "--region must be an ISO country code such as US or GB (the app's DEFAULT_PHONE_REGION).", file=sys.stderr
        )
        return 2
    try:
        storage = storage_account(os.environ)
        client = storage.table(args.table) if storage is not None else None  # no request yet
    except Problem as problem:  # a setting present but unusable: say which, as the app would
        print(f"{problem.detail} {problem.hint or ''}".strip(), file=sys.stderr)
        return 2
    if client is None:
        print(
            "Set AzureWebJobsStorage__accountName=<storage account> (signed in with az login, with Storage Table "
            "Data Contributor on it), or AzureWebJobsStorage to a connection string, first.",
            file=sys.stderr,
        )
        return 2
    try:
        read = read_list(args.csv, region)
    except (OSError, UnreadableFile) as unreadable:
        print(f"{args.csv}: {unreadable}", file=sys.stderr)
        return 2
    try:
        exists = table_exists(client)
    except AzureError as error:
        print(f"Table Storage could not be read ({type(error).__name__}); nothing was imported.", file=sys.stderr)
        return 2
    if not exists and not args.create_table:
        print(
            f"There is no table {args.table!r}: give the app's DO_NOT_CALL_TABLE with --table (the app makes only the "
            "default table, donotcall, on its first call), or --create-table to make this one; nothing was imported.",
            file=sys.stderr,
        )
        return 2
    written, refusal, unwritten = write_list(TableDoNotCallList(client), read)
    print(f"imported {written} numbers into table {args.table!r} (national numbers read in {region})")
    if read.reasons_cut:
        print(f"reasons cut to {MAX_REASON_LENGTH} characters: {_lines(read.reasons_cut)}")
    failed = False
    if refusal is not None:
        print(
            f"NOT listed: {len(unwritten)} numbers ({_lines(unwritten)}): Table Storage failed ({refusal.code}"
            f"{'; ' + refusal.hint if refusal.hint else ''}); they can still be called: import the list again "
            "(numbers listed already stay listed)",
            file=sys.stderr,
        )
        failed = True
    if read.more_numbers:
        print(
            f"NOT listed: the numbers after the first cell of {len(read.more_numbers)} lines "
            f"({_lines(read.more_numbers)}); they can still be called: a row lists its first cell's number only (the "
            "second cell is a reason): put each number on a line of its own and import them again",
            file=sys.stderr,
        )
        failed = True
    if read.unreadable:
        print(
            f"NOT listed: {len(read.unreadable)} unreadable lines ({_lines(read.unreadable)}); the numbers on them "
            "can still be called: write each as one number, without an extension or words, and import them again",
            file=sys.stderr,
        )
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
