"""What a trace (or a measurement) returns: live bytes per category at the peak, the peak and its phase, and a
timeline of the step, as the shared breakdown record (`llmplan.breakdown.Breakdown`) in the vocabulary of the
analytic engine. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmplan.breakdown import TRACE_TERMS, Breakdown, Term, Unit

TRACE_SOURCE = (
    "trace: one real step of the transformers model on fake tensors, every storage tagged by category "
    "(llmplan.trace.tracker) and rounded to 512 B"
)


def trace_breakdown(values: dict[str, int]) -> Breakdown:
    """Live bytes by category (the vocabulary's TRACE_TERMS) as the shared breakdown record."""
    return Breakdown(
        Unit.BYTES,
        tuple(
            Term(
                name,
                values.get(name, 0),
                Unit.BYTES,
                f"{values.get(name, 0):,} B live at the peak",
                TRACE_SOURCE,
            )
            for name in TRACE_TERMS
        ),
    )


def by_category(peak: Breakdown) -> dict[str, int]:
    """Each category's bytes by its name, in vocabulary order."""
    return {t.name: int(t.value) for t in peak.terms}


@dataclass(frozen=True, slots=True)
class PhasePeak:
    """One phase of the step in the timeline: its highest and its final live bytes."""

    phase: str
    """setup, forward, backward, optimizer (training); prefill, decode (inference)."""
    step: int
    peak_bytes: int
    end_bytes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceResult:
    """The traced step: the `allocated` counter (`torch.cuda.max_memory_allocated`) per GPU."""

    model: str
    mode: str
    """"train" or "infer"."""
    peak: Breakdown
    """Live bytes by category at the peak: one term per category of the shared vocabulary
    (llmplan.breakdown.TRACE_TERMS), the same record type as the analytic estimates'."""
    peak_phase: str
    peak_step: int
    timeline: tuple[PhasePeak, ...]
    total_params: int
    trainable_params: int
    num_layers: int
    traced_layers: tuple[int, ...]
    """Decoder layers in the models actually traced (two cut models when composed, else the full count)."""
    composed: bool
    ranks: int = 1
    """Data-parallel ranks simulated (FSDP full shard); 1 for a single-GPU step."""
    wall_s: float = 0.0
    counter: str = "allocated"
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Peak allocated bytes."""
        return int(self.peak.total)

    @property
    def peak_allocated_bytes(self) -> int:
        return int(self.peak.total)
