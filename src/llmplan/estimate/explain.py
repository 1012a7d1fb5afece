"""The arithmetic of an estimate, step by step: its own records, in reading order.

`--explain` renders these steps; they are the estimate's `Term`s (the same records the JSON carries), so the
worked example cannot drift from the numbers: nothing here restates a formula.
"""

from __future__ import annotations

from llmplan.breakdown import Term, Unit
from llmplan.estimate.training import TrainingEstimate


def explain_training(est: TrainingEstimate) -> tuple[Term, ...]:
    """Parameter counts, each term at the peak (with its parts), every phase's total, then the counters."""
    phases = tuple(
        Term(
            f"phase.{p.phase.value}",
            p.total,
            Unit.BYTES,
            " + ".join(f"{t.name} {int(t.value):,}" for t in p.terms.terms) + f" = {p.total:,} B",
            "estimate/training.py (the peak is the maximum over phases, not a sum)",
            p.terms.terms,
        )
        for p in est.phases
    )
    return (*est.counts, *est.terms.terms, *phases, *est.counters)
