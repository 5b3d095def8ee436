"""docs/benchmarks.md shows what `python -m bench` wrote, not figures typed by hand.

Every table `python -m bench.report` makes of the committed bench/results.json must appear in the document
word for word, and so must its before/after tables of the committed earlier runs; the document names the run's
machine; the report's rules are checked on small cases.
"""

from __future__ import annotations

import json
from typing import Any

from bench.report import compare, scales, sections
from bench.stack import ROOT, table_kind
from bench.throughput import knee


def results(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "bench" / name).read_text())


RESULTS = results("results.json")
DOCUMENT = (ROOT / "docs" / "benchmarks.md").read_text()


def test_every_table_of_the_committed_run_is_in_the_document_as_written() -> None:
    for section in sections(RESULTS):
        assert section in DOCUMENT, f"docs/benchmarks.md lacks, or changed, this output:\n{section[:300]}"


def test_the_before_and_after_tables_are_the_reports_of_the_committed_runs() -> None:
    previous = results("results-previous.json")
    session_before = results("results-4934332.json")
    last_session = results("results-94874cf.json")
    first_run = results("results-6aaf7e9.json")
    warm_up_run = results("results-00a061a.json")
    session_of_fixes = results("results-d8af62b.json")
    for before, after in (
        (RESULTS, results("results-cfda64b.json")),  # a later run on a slower machine, shown beside the committed one
        (session_of_fixes, RESULTS),
        (warm_up_run, session_of_fixes),
        (first_run, warm_up_run),
        (last_session, first_run),
        (session_before, last_session),
        (previous, session_before),
        (results("results-before.json"), previous),
        (results("results-three-writes.json"), previous),
    ):
        assert compare(before, after) in DOCUMENT


def test_the_document_names_the_machine_and_every_measurement_of_the_run() -> None:
    machine = RESULTS["machine"]
    assert f"{machine['cores']} cores" in DOCUMENT and machine["python"] in DOCUMENT and machine["date"] in DOCUMENT
    assert set(RESULTS["seconds"]) == {"imports", "cold_start", "overhead", "throughput", "memory"}


def level(concurrency: int, rate: float) -> dict[str, object]:
    return {"concurrency": concurrency, "calls_per_second": rate}


def test_the_knee_is_the_last_level_that_beat_every_lower_one_by_ten_percent() -> None:
    levels = [level(1, 100), level(2, 180), level(4, 195), level(8, 240), level(16, 250)]
    assert knee(levels) == 8  # 195 is under 198 (180 + 10%); 240 beats 198; 250 is under 264


def test_scaling_holds_only_if_no_level_past_the_knee_falls_under_ninety_percent_of_the_peak() -> None:
    rising = [level(1, 100), level(2, 180), level(4, 170), level(8, 165)]
    assert scales(rising, knee(rising))
    assert not scales([*rising, level(16, 150)], 2)  # 150 < 0.9 * 180
    assert not scales([level(1, 100), level(2, 90), level(4, 200)], 4)  # falls before the knee


def test_azurite_access_lines_are_classified_by_what_they_did_to_table_storage() -> None:
    assert table_kind("POST", "calls", "") == "insert"
    assert table_kind("PUT", "calls", "(PartitionKey='a',RowKey='b')") == "update"
    assert table_kind("MERGE", "calls", "(PartitionKey='a',RowKey='b')") == "update"
    assert table_kind("GET", "donotcall", "(PartitionKey='dnc',RowKey='x')") == "read"
    assert table_kind("DELETE", "calls", "(PartitionKey='a',RowKey='b')") == "delete"
    assert table_kind("POST", "Tables", "") == "create_table"
    assert table_kind("GET", "call-requests", "/messages") is None  # a queue, not a table
