"""The trace beside the analytic estimate, term by term (no torch here; `llmplan validate` builds on it).

Both sides estimate the `allocated` counter. Terms the trace cannot see (cuBLAS workspace, CUDA context) are
left out of the comparison rather than counted as errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.breakdown import ACTIVATIONS, KV_CACHE, LOGITS, TEMPORARIES, WEIGHTS, trace_categories
from llmplan.trace.result import TraceResult, by_category


@dataclass(frozen=True, slots=True)
class TermDiff:
    """One term: the traced bytes, the analytic bytes and their difference (analytic - trace)."""

    term: str
    trace_bytes: int
    analytic_bytes: int

    @property
    def diff_bytes(self) -> int:
        return self.analytic_bytes - self.trace_bytes

    @property
    def rel_error(self) -> float | None:
        """(analytic - trace) / trace; None when the trace holds no bytes for the term."""
        return None if self.trace_bytes == 0 else self.diff_bytes / self.trace_bytes


@dataclass(frozen=True, slots=True)
class Comparison:
    """Per-term differences and the totals."""

    terms: tuple[TermDiff, ...]
    total: TermDiff
    trace_phase: str = ""
    analytic_phase: str = ""


PHASES = {"forward": "forward-end", "backward": "backward", "optimizer": "optimizer-step"}
"""Trace phase names and the analytic engine's `estimate.training.Phase` values they correspond to."""


def compare_training(trace: TraceResult, estimate: object) -> Comparison:
    """Trace of a training step vs `llmplan.estimate.training.TrainingEstimate`, each at its own peak.

    The analytic side is its peak phase's records (`PhaseMemory.terms`: allocated bytes without the cuBLAS
    workspace and the other overheads, which no tensor holds), term by term in the shared vocabulary
    (llmplan.breakdown); the communication buffers (FSDP's gathered parameters and reduce buffers) are
    transient tensors in the trace, so they join the temporaries.
    """
    peak = estimate.peak_phase  # type: ignore[attr-defined]
    phase = next(p for p in estimate.phases if p.phase == peak)  # type: ignore[attr-defined]
    analytic = trace_categories(phase.terms)
    traced = by_category(trace.peak)
    terms = tuple(TermDiff(name, traced[name], analytic[name]) for name in analytic if name != KV_CACHE)
    total = TermDiff("allocated (without workspaces)", trace.total, phase.total)
    return Comparison(terms, total, PHASES.get(trace.peak_phase, trace.peak_phase), str(peak.value))


def compare_inference(trace: TraceResult, memory: object) -> Comparison:
    """Trace of prefill + decode vs `llmplan.estimate.inference.InferenceMemory` for the same context.

    Mapping: weights <-> `weights.total`; KV cache <-> `kv_cache_bytes`; the trace's activations, logits and
    temporaries at the peak <-> `activation_peak_bytes`; total <-> `allocated_bytes` less the cuBLAS
    workspace, which no tensor on fake tensors holds.
    """
    p = by_category(trace.peak)
    transient = p[ACTIVATIONS] + p[LOGITS] + p[TEMPORARIES]
    weights = memory.weights.total  # type: ignore[attr-defined]
    kv = memory.kv_cache_bytes  # type: ignore[attr-defined]
    act = memory.activation_peak_bytes  # type: ignore[attr-defined]
    terms = (
        TermDiff(WEIGHTS, p[WEIGHTS], weights),
        TermDiff(KV_CACHE, p[KV_CACHE], kv),
        TermDiff("activations + logits + temporaries", transient, act),
    )
    allocated = memory.allocated_bytes - memory.torch_workspace_bytes  # type: ignore[attr-defined]
    return Comparison(terms, TermDiff("allocated (without cuBLAS workspace)", trace.total, allocated))
