"""Summary statistics as `vllm bench serve` prints them: mean and the 50th / 90th / 99th percentiles.

Percentiles interpolate linearly between order statistics (numpy.percentile's default, which
vllm/benchmarks/serve.py `calculate_metrics` calls). Inter-token latencies come as runs of decode steps
(first gap, increase per step, steps, sequences per gap: `SimResult.itl_segments`); their percentiles are read
from the runs' cumulative distribution without expanding them (`itl_percentiles`).
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


def itl_percentiles(segments: tuple[tuple[float, float, int, int], ...]) -> Percentiles:
    """Weighted mean and percentiles of the gaps in `segments` (module docstring).

    A run of `steps` gaps first + j · slope is spread evenly over [first − slope/2, last + slope/2] (its mass
    steps · weight), a single gap is a point mass; the percentile is read off the cumulative distribution of
    that mixture in one sorted sweep, O(runs · log runs). Exact for single gaps; within half a step's
    increase (`slope`, microseconds) inside a run.
    """
    count = sum(s * w for _, _, s, w in segments)
    if count == 0:
        return Percentiles(0.0, 0.0, 0.0, 0.0)
    mean = sum(w * (s * f + sl * s * (s - 1) / 2) for f, sl, s, w in segments) / count
    events: list[tuple[float, float, float]] = []
    """(x, point mass, change of density) sorted by x."""
    for first, slope, steps, weight in segments:
        mass = steps * weight
        if steps == 1 or slope <= 0:
            events.append((first, mass, 0.0))
            continue
        lo, hi = first - slope / 2, first + slope * (steps - 0.5)
        density = mass / (hi - lo)
        events.append((lo, 0.0, density))
        events.append((hi, 0.0, -density))
    events.sort()
    out = []
    targets = [q / 100.0 * count for q in _QUANTILES]
    cum, density, x_prev, k = 0.0, 0.0, events[0][0], 0
    for x, point, change in events:
        span = density * (x - x_prev)
        while k < len(targets) and cum + span >= targets[k]:
            out.append(x_prev + (targets[k] - cum) / density if density > 0 else x_prev)
            k += 1
        cum += span
        while k < len(targets) and cum + point >= targets[k]:
            out.append(x)
            k += 1
        cum += point
        density += change
        x_prev = x
    while len(out) < len(targets):
        out.append(events[-1][0])
    return Percentiles(mean, out[0], out[1], out[2])
