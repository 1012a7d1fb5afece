"""The oracle: the real transformers (+ peft) model run for one step on fake tensors, its live bytes recorded.

torch, transformers and peft are imported only when a trace runs; without them the functions raise
MissingExtraError naming the `trace` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmplan.trace.result import PhasePeak, TraceResult, by_category, trace_breakdown

if TYPE_CHECKING:
    from llmplan.specs.model import ModelSpec
    from llmplan.specs.training import Layout, TrainingJob
    from llmplan.trace.step import InferenceRun


def trace_training(
    spec: ModelSpec, job: TrainingJob, *, layout: Layout | None = None, compose: bool = True
) -> TraceResult:
    """One training step of `spec` for `job` (see `llmplan.trace.compose.trace`)."""
    _require_extra()
    from llmplan.trace.compose import trace

    return trace(spec, job, layout=layout, compose_layers=compose)


def trace_inference(spec: ModelSpec, run: InferenceRun, *, compose: bool = True) -> TraceResult:
    """Prefill and decode steps of `spec` (see `llmplan.trace.compose.trace`)."""
    _require_extra()
    from llmplan.trace.compose import trace

    return trace(spec, run, compose_layers=compose)


def _require_extra() -> None:
    """MissingExtraError naming the trace extra unless torch, transformers and peft import."""
    from llmplan.trace.build import require

    for module in ("torch", "transformers", "peft"):
        require(module)


def inference_run(**kwargs: Any) -> InferenceRun:
    """An InferenceRun (batch_size, prompt_len, decode_steps, dtype), importable without torch."""
    from llmplan.trace.step import InferenceRun

    return InferenceRun(**kwargs)


__all__ = [
    "PhasePeak",
    "TraceResult",
    "by_category",
    "trace_breakdown",
    "inference_run",
    "trace_inference",
    "trace_training",
]
