"""Time to train a number of tokens at an estimated step, and its cost (`formulas.cost`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from llmplan.breakdown import Term, Unit
from llmplan.errors import SpecError
from llmplan.estimate.time import TimeEstimate
from llmplan.formulas.cost import training_cost
from llmplan.specs.hardware import Accelerator

_SOURCE = "tokens / (tokens per second of estimate.time)"

MAX_TRAINING_TOKENS = 1e16
"""Token counts above 10^16 are refused as a typo (Llama 3 trained on 1.5·10^13)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CostEstimate:
    """Cost of training on `tokens` tokens at the estimated throughput (`formulas.cost`)."""

    tokens: float
    steps: float
    gpu_hours: float
    usd: float | None
    """None when neither --price nor the catalog gives a price."""
    energy_kwh: float | None
    terms: tuple[Term, ...]
    """time.time_to_train_s, cost.gpu_hours, cost.usd, cost.energy_kwh with their formulas and sources."""

    @property
    def total(self) -> float:
        return self.usd if self.usd is not None else self.gpu_hours


def check_tokens(tokens: float, field: str = "tokens") -> float:
    """The token count, or SpecError for a negative, zero, non-finite or absurd one."""
    if isinstance(tokens, bool) or not (math.isfinite(tokens) and 0 < tokens <= MAX_TRAINING_TOKENS):
        raise SpecError(field, f"{tokens!r} (allowed: 0 < tokens <= {MAX_TRAINING_TOKENS:.0e})")
    return float(tokens)


def estimate_run(
    est: TimeEstimate,
    *,
    tokens: float,
    gpus: int,
    acc: Accelerator,
    price_usd_per_gpu_hour: float | None = None,
) -> tuple[TimeEstimate, CostEstimate]:
    """`est` with its time to train `tokens` tokens, and the cost of it (formulas.cost)."""

    tokens = check_tokens(tokens)
    steps = tokens / est.tokens_per_step
    seconds = tokens / est.tokens_per_s
    term = Term(
        "time.time_to_train_s",
        seconds,
        Unit.SECONDS,
        f"{tokens:,.0f} tokens / {est.tokens_per_s:,.0f} tokens/s ({steps:,.0f} steps × {est.step_s:.3f} s)",
        _SOURCE,
    )
    if price_usd_per_gpu_hour is not None:
        price, source = price_usd_per_gpu_hour, "--price"
    elif acc.price is not None:
        price, source = acc.price.usd_per_gpu_hour, f"{acc.price.source} ({acc.price.date})"
    else:
        price, source = None, ""
    cost = training_cost(
        time_to_train_s=seconds, gpus=gpus, price_usd_per_gpu_hour=price, price_source=source, tdp_w=acc.tdp_w
    )
    values = {t.name: t.value for t in cost}
    report = CostEstimate(
        tokens=tokens,
        steps=steps,
        gpu_hours=values["cost.gpu_hours"],
        usd=values.get("cost.usd"),
        energy_kwh=values.get("cost.energy_kwh"),
        terms=(term, *cost),
    )
    return dataclasses.replace(est, tokens=tokens, time_to_train_s=seconds), report
