"""Error statistics of an estimator against a reference, and the tolerances of issues 3 and 4.

Error of one case: e = (estimate - reference) / reference · 100 (signed %, positive = over-estimate); the
summaries use |e|: the median, the 90th percentile (linear interpolation between closest ranks, numpy's
default `percentile` method "linear") and the maximum, plus the median signed error (the bias).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmplan.errors import SpecError

MEASURED_MEDIAN_MAX_PCT = 10.0
"""Issue 3, item 7: median |error| on the fully specified memory rows of measured.jsonl."""
MEASURED_P90_MAX_PCT = 20.0
"""Issue 3, item 7: 90th percentile |error| on the same rows."""
TRACE_MEDIAN_MAX_PCT = 3.0
"""Issue 3, item 7: median |error| of the analytic engine against the trace on peak allocated memory."""
TRACE_MAX_PCT = 8.0
"""Issue 3, item 7: maximum |error| against the trace."""


def error_pct(estimate: float, reference: float) -> float:
    """Signed relative error in percent; SpecError when the reference is not positive."""
    if reference <= 0:
        raise SpecError("reference", f"{reference} is not positive (an error needs a positive reference)")
    return (estimate - reference) / reference * 100.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) by linear interpolation between closest ranks."""
    if not values:
        raise SpecError("values", "is empty (a percentile needs at least one value)")
    if not 0 <= q <= 100:
        raise SpecError("q", f"{q} is out of range (allowed: 0 <= q <= 100)")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class ErrorStats:
    """Summary of signed errors (%) over a set of cases."""

    n: int
    median_abs_pct: float
    p90_abs_pct: float
    max_abs_pct: float
    median_signed_pct: float

    @classmethod
    def of(cls, errors: Sequence[float]) -> ErrorStats | None:
        """The summary of `errors` (signed %), None when there are none."""
        if not errors:
            return None
        absolute = [abs(e) for e in errors]
        return cls(
            n=len(errors),
            median_abs_pct=percentile(absolute, 50),
            p90_abs_pct=percentile(absolute, 90),
            max_abs_pct=max(absolute),
            median_signed_pct=percentile(list(errors), 50),
        )

    def meets_measured(self) -> bool:
        """Issue 3's targets on measured rows: median <= 10 %, p90 <= 20 %."""
        return self.median_abs_pct <= MEASURED_MEDIAN_MAX_PCT and self.p90_abs_pct <= MEASURED_P90_MAX_PCT

    def meets_trace(self) -> bool:
        """Issue 3's targets against the trace: median <= 3 %, max <= 8 %."""
        return self.median_abs_pct <= TRACE_MEDIAN_MAX_PCT and self.max_abs_pct <= TRACE_MAX_PCT
