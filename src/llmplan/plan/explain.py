"""Why a ranked layout wins: the shares of its step and what it saves against the next layout.

    share(term) = term / step      for compute, recompute, exposed communication, bubble, optimizer, offload
    saved(term) = next.term − this.term   (seconds per step; positive = this layout spends less there)

The terms are `estimate.time`'s step breakdown (`TimeEstimate.step`), so the shares add up to 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmplan.breakdown import Term, Unit

if TYPE_CHECKING:
    from llmplan.plan.training import RankedLayout

_SOURCE = "plan.explain (shares of estimate.time's step breakdown)"


def why(this: RankedLayout, runner_up: RankedLayout | None) -> tuple[Term, ...]:
    """share.<term> for every step term, then vs_next.<term> for the terms that differ from `runner_up`."""
    step = this.time.step
    total = step.total
    out = [
        Term(
            f"share.{t.name}",
            t.value / total if total else 0.0,
            Unit.RATIO,
            f"{t.value:.4f} s / {total:.4f} s",
            _SOURCE,
        )  # fmt: skip
        for t in step.terms
    ]
    if runner_up is not None:
        other = {t.name: t.value for t in runner_up.time.step.terms}
        for t in step.terms:
            saved = other.get(t.name, 0.0) - t.value
            if abs(saved) > 1e-4 * max(total, 1e-12):
                out.append(
                    Term(
                        f"vs_next.{t.name}",
                        saved,
                        Unit.SECONDS,
                        f"{other.get(t.name, 0.0):.4f} s (next) − {t.value:.4f} s (this)",
                        _SOURCE,
                    )  # fmt: skip
                )
    return tuple(out)


def headline(terms: tuple[Term, ...]) -> str:
    """One line: the largest shares and the biggest saving against the next layout."""
    shares = sorted(
        (t for t in terms if t.name.startswith("share.") and t.value >= 0.005), key=lambda t: -t.value
    )
    text = ", ".join(f"{t.name[6:].removesuffix('_s')} {t.value:.0%}" for t in shares[:4])
    saves = [t for t in terms if t.name.startswith("vs_next.")]
    if saves:
        best = max(saves, key=lambda t: t.value)
        if best.value > 0:
            text += f"; vs next: {best.value:.3f} s less {best.name[8:].removesuffix('_s')}"
    return text
