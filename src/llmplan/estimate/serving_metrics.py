"""Summary statistics as `vllm bench serve` prints them: mean and the 50th / 90th / 99th percentiles.

Percentiles interpolate linearly between order statistics (numpy.percentile's default, which
vllm/benchmarks/serve.py `calculate_metrics` calls). Inter-token latencies come as runs of decode steps
(first gap, increase per step, steps, sequences per gap: `SimResult.itl_segments`); their percentiles are found
by bisection on the value, counting each run's gaps below it in closed form, so no run is expanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_QUANTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """mean, p50, p90, p99 of one metric (seconds)."""

    mean: float
    p50: float
    p90: float
    p99: float

    @property
    def total(self) -> float:
        return self.mean

    def get(self, stat: str) -> float:
        """'mean', 'p50', 'p90' or 'p99'."""
        return float(getattr(self, stat))

    def to_ms_json(self) -> dict[str, float]:
        return {k: round(getattr(self, k) * 1e3, 6) for k in ("mean", "p50", "p90", "p99")}


def _quantile(ordered: list[float], q: float) -> float:
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def percentiles(values: list[float]) -> Percentiles:
    if not values:
        return Percentiles(0.0, 0.0, 0.0, 0.0)
    ordered = sorted(values)
    p50, p90, p99 = (_quantile(ordered, q) for q in _QUANTILES)
    return Percentiles(sum(values) / len(values), p50, p90, p99)


def _count_below(segments: tuple[tuple[float, float, int, int], ...], x: float) -> float:
    total = 0.0
    for first, slope, steps, weight in segments:
        if x < first:
            continue
        below = steps if slope <= 0 else min(steps, math.floor((x - first) / slope) + 1)
        total += below * weight
    return total


def itl_percentiles(segments: tuple[tuple[float, float, int, int], ...]) -> Percentiles:
    """Weighted mean and percentiles of the gaps in `segments` (module docstring), to 1e-9 s."""
    count = sum(s * w for _, _, s, w in segments)
    if count == 0:
        return Percentiles(0.0, 0.0, 0.0, 0.0)
    mean = sum(w * (s * f + sl * s * (s - 1) / 2) for f, sl, s, w in segments) / count
    lo_all = min(f for f, _, _, _ in segments)
    hi_all = max(f + sl * (s - 1) for f, sl, s, _ in segments)
    out = []
    for q in _QUANTILES:
        target = q / 100.0 * count
        lo, hi = lo_all, hi_all
        while hi - lo > 1e-9:
            mid = (lo + hi) / 2
            if _count_below(segments, mid) >= target:
                hi = mid
            else:
                lo = mid
        out.append(hi)
    return Percentiles(mean, out[0], out[1], out[2])
