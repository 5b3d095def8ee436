"""One PNG of a run: the throughput curve with its knee, overhead against the floors, the cold start, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt


def _throughput(ax: Any, result: dict[str, Any]) -> None:
    levels = result["levels"]
    concurrency = [level["concurrency"] for level in levels]
    label = f"calls/s, {result.get('worker_threads', '?')} worker threads"
    ax.plot(concurrency, [level["calls_per_second"] for level in levels], "o-", color="tab:blue", label=label)
    ax.axvline(result["knee"], color="grey", linestyle=":", label=f"knee ({result['knee']} clients)")
    ax.set_ylim(bottom=0)  # from zero: a dip of 10% must look like one
    ax.set_xscale("log", base=2)
    ax.set_xticks(concurrency, [str(c) for c in concurrency])
    ax.set_xlabel("concurrent clients (local host over HTTP, Azurite)")
    ax.set_ylabel("calls per second", color="tab:blue")
    latency = ax.twinx()
    for quantile, style in (("p50", "s--"), ("p95", "^:")):
        values = [level["latency_ms"][quantile] for level in levels]
        latency.plot(concurrency, values, style, color="tab:red", label=f"latency {quantile}")
    latency.set_ylabel("latency, ms", color="tab:red")
    ax.legend(loc="upper left", fontsize=8)
    latency.legend(loc="lower right", fontsize=8)
    ax.set_title("Throughput against concurrency")


def _overhead(ax: Any, result: dict[str, Any]) -> None:
    labels, app, floor, lookup = [], [], [], []
    for name, title in (("no_store", "no store"), ("table", "Azurite")):
        for quantile in ("p50", "p95", "p99"):
            labels.append(f"{title}\n{quantile}")
            app.append(result[name]["app_ms"][quantile])
            floor.append(result[name]["floor_ms"][quantile])
            lookup.append(result[name].get("floor_with_lookup_ms", {}).get(quantile, 0.0))
    x = range(len(labels))
    ax.bar([i - 0.27 for i in x], floor, 0.27, label="floor (raw create [+ 2 raw inserts])", color="tab:grey")
    ax.bar([i for i in x], lookup, 0.27, label="floor + the do-not-call read", color="silver")
    ax.bar([i + 0.27 for i in x], app, 0.27, label="the app, in-process", color="tab:green")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("ms per call")
    ax.legend(fontsize=8)
    ax.set_title("One call against its floor")


def _cold_start(ax: Any, result: dict[str, Any]) -> None:
    parts = result["parts_ms"]
    names = list(parts)
    ax.barh(names, [parts[n] for n in names], color="tab:purple")
    ax.invert_yaxis()
    ax.set_xlabel("ms (median of fresh processes)")
    ax.set_title("Cold start: import, indexing and the first call")


def _memory(ax: Any, result: dict[str, Any]) -> None:
    samples = result["samples"]
    start = next(s["rss_mib"] for s in samples if s["calls"] == 0)
    calls = [s["calls"] for s in samples]
    ax.plot(calls, [s["rss_mib"] - start for s in samples], "o-", label="RSS")
    ax.axvline(0, color="tab:orange", linestyle="--", label=f"end of the {result['warm_up_calls']:,}-call warm-up")
    ax.axhline(1.0, color="grey", linestyle=":", label="target: 1 MiB")
    ax.set_xlabel("calls (in-process, Azurite)")
    ax.set_ylabel("growth since the warm-up, MiB")
    ax.legend(fontsize=8)
    ax.set_title("Memory growth")


def plot(results: dict[str, Any], path: Path) -> None:
    panels = [
        (name, draw)
        for name, draw in (
            ("throughput", _throughput),
            ("overhead", _overhead),
            ("cold_start", _cold_start),
            ("memory", _memory),
        )
        if name in results
    ]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 4 * len(panels)), squeeze=False)
    for (name, draw), ax in zip(panels, axes[:, 0], strict=True):
        draw(ax, results[name])
    machine = results["machine"]
    figure.suptitle(f"python -m bench, {machine['date']}: {machine['cores']} cores, Python {machine['python']}")
    figure.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title
    figure.savefig(path, dpi=90)
    plt.close(figure)
