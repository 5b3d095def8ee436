"""Markdown tables of a run for docs/benchmarks.md, each target judged from the run's own figures.

Nothing here is typed by hand: a figure the run did not produce shows as "not measured".

    python -m bench.report bench/results.json [BEFORE.json]
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.throughput import PROCESSES

MISSING = "not measured"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _judged(target: str, value: float | None, shown: str, meets: Callable[[float], bool]) -> tuple[str, str, str]:
    """A target's row: the figure as `shown` formats it and whether it `meets` the target, or "not measured"."""
    if value is None:
        return target, MISSING, MISSING
    return target, shown.format(value), _met(meets(value))


def steady_per_call(results: dict[str, Any]) -> dict[str, float] | None:
    """Requests per call over every throughput level (all after the warm-up)."""
    if "throughput" not in results:
        return None
    levels = results["throughput"]["levels"]
    calls = sum(level["calls"] for level in levels)
    totals: dict[str, float] = {}
    for key in ("genesys_requests", "table_requests", "table_writes"):
        totals[key] = round(sum(level["requests_per_call"][key] * level["calls"] for level in levels) / calls, 3)
    return totals


def scales(levels: list[dict[str, Any]], knee: int) -> bool:
    """Throughput rises at every step up to the knee, and past it holds at least 90% of the peak."""
    rates = [level["calls_per_second"] for level in levels]
    upto = [level["calls_per_second"] for level in levels if level["concurrency"] <= knee]
    rising = all(b >= a for a, b in itertools.pairwise(upto))
    return rising and min(rates[len(upto) :], default=max(rates)) >= 0.9 * max(rates)


def targets(results: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    overhead = results.get("overhead")
    for name, floor in (("no_store", "raw create"), ("table", "raw create + 2 raw Table inserts")):
        ratio = overhead[name]["ratio"]["p50"] if overhead else None
        yield _judged(f"p50 overhead vs {floor} ≤ 1.10", ratio, "{:.2f}x", lambda r: r <= 1.10)
    lookup = overhead["table"].get("ratio_with_lookup") if overhead else None
    yield (
        "(for reference, no target) p50 vs raw create + 2 raw inserts + 1 point read (the do-not-call lookup)",
        MISSING if lookup is None else f"{lookup['p50']:.2f}x",
        "",
    )
    steady = steady_per_call(results)
    genesys = steady["genesys_requests"] if steady else None
    yield _judged("Genesys requests per call = 1.00", genesys, "{:.3f}", lambda g: round(g, 2) == 1.00)
    writes = steady["table_writes"] if steady else None
    yield _judged("Table writes per call ≤ 2", writes, "{:.3f}", lambda w: w <= 2.0)
    throughput = results.get("throughput")
    if throughput:
        levels, knee = throughput["levels"], throughput["knee"]
        peak = max(levels, key=lambda level: level["calls_per_second"])
        figure = f"knee at {knee} clients; peak {peak['calls_per_second']} calls/s at {peak['concurrency']}"
        yield ("throughput grows with concurrency until saturation", figure, _met(scales(levels, knee)))
    else:
        yield ("throughput grows with concurrency until saturation", MISSING, MISSING)
    imports = results.get("imports")
    ratio = imports["app_to_dependencies"] if imports else None
    yield _judged("cold import ≤ 1.0 x the dependencies alone", ratio, "{:.2f}x", lambda r: r <= 1.0)
    memory = results.get("memory")
    if memory:
        figure = (
            f"RSS {memory['rss_growth_mib']:+.2f} MiB after {memory['warm_up_calls']:,} warm-up calls; Python heap "
            f"{memory['traced_growth_mib_per_calls']:+.3f} MiB (traced over {memory['traced_calls']:,}, scaled)"
        )
        ok = max(memory["rss_growth_mib"], memory["traced_growth_mib_per_calls"]) < 1.0
        yield (f"memory growth < 1 MiB per {memory['calls']:,} calls", figure, _met(ok))
    else:
        yield ("memory growth < 1 MiB per 10,000 calls", MISSING, MISSING)


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def sections(results: dict[str, Any]) -> Iterator[str]:
    rows: list[tuple[Any, ...]]
    yield "### Targets\n\n" + table(("target", "measured", "verdict"), list(targets(results)))
    if "overhead" in results:
        rows = []
        for name, title, floor, ratio in (
            ("no_store", "no store", "floor_ms", "ratio"),
            ("table", "Azurite", "floor_ms", "ratio"),
            ("table", "Azurite, floor with the lookup", "floor_with_lookup_ms", "ratio_with_lookup"),
        ):
            o = results["overhead"][name]
            if floor not in o:
                continue
            for q in ("p50", "p95", "p99"):
                rows.append((title, q, f"{o['app_ms'][q]:.2f}", f"{o[floor][q]:.2f}", f"{o[ratio][q]:.2f}x"))
        n = results["overhead"]["no_store"]["app_ms"]["n"]
        yield f"### One call in-process against its floor ({n:,} each, interleaved)\n\n" + table(
            ("store", "", "app, ms", "floor, ms", "ratio"), rows
        )
    if "throughput" in results:
        yield _throughput_section(results["throughput"])
    if "cold_start" in results:
        cold = results["cold_start"]
        rows = [(part, f"{ms:.1f}") for part, ms in cold["parts_ms"].items()]
        rows.append(("**first call (all but import and indexing)**", f"{cold['first_call_ms']:.1f}"))
        rows.append(("second call, for comparison", f"{cold['second_call_ms']:.1f}"))
        yield f"### Cold start, median of {cold['runs']} fresh processes\n\n" + table(("part", "ms"), rows)
    if "memory" in results:
        memory = results["memory"]
        rows = [(f"{s['calls']:,}", f"{s['rss_mib']:.2f}") for s in memory["samples"] if s["calls"] % 1000 == 0]
        text = table(("calls (negative: warm-up)", "RSS MiB"), rows)
        sites = [(f"`{site['site']}`", site["kib"]) for site in memory["top_growth"]]
        yield (
            f"### Memory over {memory['calls']:,} calls\n\n"
            + text
            + f"\n\nPython heap traced over {memory['traced_calls']:,} further calls: "
            + f"{memory['traced_growth_mib'] * 1024:+.1f} KiB. Where it grew most:\n\n"
            + table(("allocation site", "KiB"), sites)
        )
    if "imports" in results:
        imports = results["imports"]
        rows = [(name, f"{ms:.0f}") for name, ms in imports["median_ms"].items()]
        note = f"\n\n{imports['genesys_sdk_skipped']}" if "genesys_sdk_skipped" in imports else ""
        yield (
            f"### Cold import, median of {imports['runs']} fresh interpreters\n\n"
            + table(("import", "ms"), rows)
            + note
        )


def _throughput_section(curve: dict[str, Any]) -> str:
    rows = []
    for level in curve["levels"]:
        per_call, latency = level["requests_per_call"], level["latency_ms"]
        cpu = level.get("cpu_ms_per_call")  # runs before these columns have none
        rows.append(
            (
                level["concurrency"],
                level["calls_per_second"],
                " / ".join(f"{rate:g}" for rate in level["rounds_calls_per_second"]),
                f"{latency['p50']:.1f}",
                f"{latency['p95']:.1f}",
                f"{latency['p99']:.1f}",
                level["failures"],
                f"{per_call['genesys_requests']:.3f}",
                f"{per_call['table_requests']:.3f}",
                f"{per_call['table_writes']:.3f}",
                " / ".join(f"{cpu[name]:.2f}" for name in PROCESSES) if cpu else MISSING,
                f"{level['cores_busy']['app']:.2f} / {level['cores_busy']['all']:.2f}" if cpu else MISSING,
            )
        )
    title = (
        f"### Throughput through the local host over HTTP ({curve['worker_threads']} worker threads, the template's "
        f"PYTHON_THREADPOOL_THREAD_COUNT; median of {curve['rounds']} rounds of {curve['seconds_per_sample']:g} s)"
    )
    header: tuple[str, ...] = ("clients", "calls/s", "rounds, calls/s", "p50 ms", "p95 ms", "p99 ms", "failures")
    header += ("Genesys req/call", "Table req/call", "Table writes/call")
    header += ("CPU ms/call: " + " / ".join(PROCESSES), "cores busy: app / all")
    return f"{title}\n\n{table(header, rows)}\n\nKnee: {curve['knee']} concurrent clients.{_warm_up(curve)}"


def _warm_up(curve: dict[str, Any]) -> str:
    warm = curve.get("warm_up")  # runs before it warmed up for a fixed 4 s have none
    if not warm:
        return ""
    rates = " / ".join(f"{rate:g}" for rate in warm["calls_per_second"])
    return (
        f"\n\nWarm-up before the rounds: {warm['clients']} clients, samples of {warm['seconds_per_sample']:g} s until "
        f"two in a row agreed within {warm['settled_within']:.0%}: {rates} calls/s."
    )


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Headline figures of two runs side by side."""

    def figures(results: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        if "overhead" in results:
            o = results["overhead"]
            out["raw create p50 (no-store floor), ms"] = f"{o['no_store']['floor_ms']['p50']:.2f}"
            out["raw create p95 (no-store floor), ms"] = f"{o['no_store']['floor_ms']['p95']:.2f}"
            out["app in-process p50, no store, ms"] = f"{o['no_store']['app_ms']['p50']:.2f}"
            out["app in-process p50, Azurite, ms"] = f"{o['table']['app_ms']['p50']:.2f}"
            out["app in-process p99, Azurite, ms"] = f"{o['table']['app_ms']['p99']:.2f}"
        if "throughput" in results:
            levels = results["throughput"]["levels"]
            out["HTTP p50 at 1 client, ms"] = f"{levels[0]['latency_ms']['p50']:.1f}"
            out["peak calls/s"] = str(max(level["calls_per_second"] for level in levels))
        steady = steady_per_call(results)
        if steady:
            out["Table writes per call"] = f"{steady['table_writes']:.3f}"
        return out

    old, new = figures(before), figures(after)
    rows = [(name, old.get(name, MISSING), new.get(name, MISSING)) for name in {**old, **new}]
    return table(("figure", "before", "after"), rows)


if __name__ == "__main__":
    after = json.loads(Path(sys.argv[1]).read_text())
    print("\n\n".join(sections(after)))
    if len(sys.argv) > 2:
        print("\n### Before and after\n\n" + compare(json.loads(Path(sys.argv[2]).read_text()), after))
