"""Latency summaries and ratios: every figure in the report is one of these, so they are computed one way."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency some call really had)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """Milliseconds over `n` samples."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Summary:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), percentile(ms, 0.50), percentile(ms, 0.95), percentile(ms, 0.99), sum(ms) / len(ms))

    def ratio_to(self, floor: Summary) -> dict[str, float]:
        """Each percentile as a multiple of the floor's same percentile."""
        return {q: round(getattr(self, q) / getattr(floor, q), 3) for q in ("p50", "p95", "p99")}

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
