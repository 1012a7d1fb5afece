"""`llmplan train --json`: the busiest GPU's records, phases, counters, suggestions, time and cost."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from llmplan.breakdown import Term
from llmplan.estimate.changes import Change
from llmplan.estimate.error_bands import ErrorBand
from llmplan.estimate.suggest import Suggestion
from llmplan.estimate.training import TrainingEstimate
from llmplan.formulas.activations import ActivationBreakdown
from llmplan.formulas.model_states import ModelStates
from llmplan.formulas.overheads import Overheads
from llmplan.schema.records import (
    BreakdownOut,
    Envelope,
    Out,
    TermOut,
    plain,
)
from llmplan.specs.training import Layout, TrainingJob
from llmplan.stacks import StackSettings


class PhaseOut(Out):
    phase: str
    total: int
    terms: tuple[TermOut, ...]


class ChangeOut(Out):
    """One typed change of a suggestion (`estimate.changes.Change`)."""

    part: Literal["job", "peft", "layout"]
    field: str
    before: JsonValue
    after: JsonValue

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(
            part=change.part.value, field=change.field, before=plain(change.before), after=plain(change.after)
        )


class SuggestionOut(Out):
    """A combination of changes under which the job fits (`estimate.suggest.Suggestion`), re-estimated, and
    the `llmplan train` command that reproduces its number."""

    command: str
    changes: tuple[ChangeOut, ...]
    why: tuple[str, ...]
    cost: int
    device_bytes: int
    saved_bytes: int
    headroom_bytes: int
    host_bytes: int
    nvme_bytes: int
    peak_phase: str

    @classmethod
    def of(cls, tip: Suggestion, command: str) -> SuggestionOut:
        return cls(
            command=command,
            changes=tuple(ChangeOut.of(c) for c in tip.changes),
            why=tip.why,
            cost=tip.cost,
            device_bytes=tip.device_bytes,
            saved_bytes=tip.saved_bytes,
            headroom_bytes=tip.headroom_bytes,
            host_bytes=tip.host_bytes,
            nvme_bytes=tip.nvme_bytes,
            peak_phase=tip.peak_phase.value,
        )


class ErrorBandOut(Out):
    """The error to expect (`llmplan.estimate.error_bands`): p90 of |error| of measured jobs like this one."""

    counter: str
    p90_pct: float
    n: int
    """Measured jobs behind the figure."""
    group: str
    """Which jobs: class and counter ("lora / reserved"), the class alone, or "all"."""
    low_bytes: int
    high_bytes: int
    term: TermOut

    @classmethod
    def of(cls, band: ErrorBand, term: Term, estimate_bytes: int) -> ErrorBandOut:
        width = int(term.value)
        return cls(
            counter="device",
            p90_pct=band.p90_pct,
            n=band.n,
            group=band.group,
            low_bytes=estimate_bytes - width,
            high_bytes=estimate_bytes + width,
            term=TermOut.of(term),
        )


class TrainOut(Envelope):
    """`llmplan train --json`: the busiest GPU of the job."""

    command: Literal["train"] = "train"
    model: str
    accelerator: str
    job: TrainingJob
    layout: Layout
    stack: StackSettings
    stage: int
    params: int
    trainable_params: int
    fits: bool
    peak_phase: str
    allocated_bytes: int
    reserved_bytes: int
    device_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    host_bytes: int
    nvme_bytes: int
    memory: BreakdownOut
    """The terms at the peak phase; memory.total == device_bytes."""
    phases: tuple[PhaseOut, ...]
    counts: tuple[TermOut, ...]
    counters: tuple[TermOut, ...]
    model_states: ModelStates
    activations: ActivationBreakdown
    overheads: Overheads
    suggestions: tuple[SuggestionOut, ...]
    """Combinations of changes that make the job fit, re-estimated, each with the command that reproduces it."""
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    """Fits, but tight (`llmplan.limits.tight_headroom`, the error band included)."""
    error_band: ErrorBandOut | None = None
    """The device figure's expected error and the range it spans."""
    time: dict[str, JsonValue] | None = None
    """Step time and throughput (`estimate.time.TimeEstimate`: its parts are Terms)."""
    cost: dict[str, JsonValue] | None = None
    """Time to train and cost with --tokens or --epochs (`estimate.cost.CostEstimate`)."""

    @classmethod
    def of(
        cls,
        est: TrainingEstimate,
        suggestions: tuple[SuggestionOut, ...],
        warnings: tuple[str, ...] = (),
        *,
        time: object = None,
        cost: object = None,
    ) -> TrainOut:
        return cls(
            model=est.model,
            accelerator=est.accelerator,
            job=est.job,
            layout=est.layout,
            stack=est.stack,
            stage=est.stage,
            params=est.params,
            trainable_params=est.trainable_params,
            fits=est.fits,
            peak_phase=est.peak_phase.value,
            allocated_bytes=est.allocated_bytes,
            reserved_bytes=est.reserved_bytes,
            device_bytes=est.device_bytes,
            capacity_bytes=est.capacity_bytes,
            headroom_bytes=est.headroom_bytes,
            host_bytes=est.host_bytes,
            nvme_bytes=est.nvme_bytes,
            memory=BreakdownOut.of(est.terms),
            phases=tuple(
                PhaseOut(
                    phase=p.phase.value, total=p.total, terms=tuple(TermOut.of(t) for t in p.terms.terms)
                )
                for p in est.phases
            ),
            counts=tuple(TermOut.of(t) for t in est.counts),
            counters=tuple(TermOut.of(t) for t in est.counters),
            model_states=est.model_states,
            activations=est.activations,
            overheads=est.overheads,
            suggestions=suggestions,
            notes=est.notes,
            warnings=warnings,
            time=None if time is None else plain(time),
            cost=None if cost is None else plain(cost),
        )
