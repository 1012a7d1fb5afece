"""A serving workload: request lengths, how requests arrive, and the serving features that change the work.

Arrivals follow `vllm bench serve`: `concurrency` caps the requests in flight (its `--max-concurrency`: a new
request is sent as soon as one finishes) and `request_rate` sends requests at Poisson times of that mean rate
(`--request-rate`, exponential gaps, seeded); both may be given, and at least one must be.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from llmplan.errors import SpecError


@dataclass(frozen=True, slots=True)
class LengthDist:
    """Token lengths drawn uniformly from [low, high] (fixed when low == high), like `vllm bench serve
    --dataset-name random` with `--random-range-ratio`."""

    low: int
    high: int

    @classmethod
    def parse(cls, field: str, text: str | int) -> LengthDist:
        """'128' (fixed) or '64-256' (uniform, inclusive)."""
        s = str(text).strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", s)
        if m is None:
            raise SpecError(field, f"{s!r} is not a length (allowed: N, or LOW-HIGH with integers >= 1)")
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else low
        return cls.of(field, low, high)

    @classmethod
    def of(cls, field: str, low: int, high: int | None = None) -> LengthDist:
        high = low if high is None else high
        if low < 1:
            raise SpecError(field, f"{low} is out of range (allowed: integers >= 1)")
        if high < low:
            raise SpecError(
                field, f"{low}-{high}: the upper bound is below the lower one (allowed: LOW <= HIGH)"
            )
        return cls(low, high)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """What the benchmark client sends (module docstring)."""

    input_len: LengthDist
    output_len: LengthDist
    concurrency: int | None = None
    request_rate: float | None = None
    """Requests per second (Poisson); None = all at once, limited by `concurrency`."""
    num_requests: int = 1000
    """Requests in the run (`vllm bench serve --num-prompts` defaults to 1000)."""
    seed: int = 0
    prefix_hit_rate: float = 0.0
    """Fraction of each prompt found in the prefix cache (its prefill is skipped; its KV blocks still count)."""

    def __post_init__(self) -> None:
        if self.concurrency is None and self.request_rate is None:
            raise SpecError("concurrency", "give --concurrency N, --request-rate R or both")
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise SpecError("concurrency", f"{self.concurrency!r} is out of range (allowed: integers >= 1)")
        if self.request_rate is not None and not (
            isinstance(self.request_rate, (int, float))
            and math.isfinite(self.request_rate)
            and self.request_rate > 0
        ):
            raise SpecError(
                "request_rate",
                f"{self.request_rate!r} is out of range (allowed: a finite number > 0 requests/s)",
            )
        if (
            isinstance(self.num_requests, bool)
            or not isinstance(self.num_requests, int)
            or self.num_requests < 1
        ):
            raise SpecError("num_requests", f"{self.num_requests!r} is out of range (allowed: integers >= 1)")
        if not (isinstance(self.prefix_hit_rate, (int, float)) and 0.0 <= self.prefix_hit_rate < 1.0):
            raise SpecError(
                "prefix_hit_rate", f"{self.prefix_hit_rate!r} is out of range (allowed: 0 <= rate < 1)"
            )

    @property
    def max_context(self) -> int:
        return self.input_len.high + self.output_len.high
