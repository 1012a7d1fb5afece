"""How validate asks each engine a case's question: the analytic estimate on a counter, and the trace.

The analytic engine (`llmplan.estimate`) answers per-GPU bytes for the counter a measurement used; the trace
engine (`llmplan.trace`, imported lazily: it needs torch) answers peak allocated bytes of one step on one
GPU. A job an engine cannot express comes back as a missing figure with the engine's own message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmplan import catalog
from llmplan.breakdown import CUBLAS_WORKSPACE, TRACE_TERMS, trace_categories
from llmplan.errors import LlmplanError
from llmplan.estimate.inference import InferenceEstimate
from llmplan.estimate.training import TrainingEstimate
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout
from llmplan.validate.measured import Counter, InferenceSetting, MeasuredCase, Scope
from llmplan.validate.trace_matrix import TraceCase, TraceComparison

_WEIGHTS: dict[str, tuple[QuantFormat, QuantFormat, bool]] = {
    "fp32": (QuantFormat.FP32, QuantFormat.FP32, True),
    "fp16": (QuantFormat.FP16, QuantFormat.FP16, True),
    "bf16": (QuantFormat.BF16, QuantFormat.BF16, True),
    "int8": (QuantFormat.INT8, QuantFormat.FP16, True),
    "nf4": (QuantFormat.NF4, QuantFormat.BF16, True),
    "fp4": (QuantFormat.NF4, QuantFormat.FP16, False),
    "gptq-int4": (QuantFormat.GPTQ_INT4, QuantFormat.FP16, True),
}
"""Row weight format -> (quant, compute dtype, NF4 double quantization). bitsandbytes fp4 stores exactly what
nf4 stores (4-bit codes + one absmax per 64), without double quantization by default."""

_TRACE_DTYPE = {QuantFormat.FP32: "float32", QuantFormat.FP16: "float16", QuantFormat.BF16: "bfloat16"}


@dataclass(frozen=True, slots=True)
class AnalyticFigure:
    """The analytic engine's answer for one measured case."""

    bytes: int | None
    note: str = ""
    fits: bool | None = None


def inference_job(setting: InferenceSetting, layout: Layout = Layout()) -> InferenceJob:
    """The InferenceJob of a measured inference row (HF generate: the engine the rows ran)."""
    quant, compute, double = _WEIGHTS[setting.weights]
    return InferenceJob(
        quant=quant,
        compute_dtype=compute,
        context_len=setting.prompt_len + setting.new_tokens,
        prompt_len=setting.prompt_len,
        batch=setting.batch_size,
        nf4_double_quant=double,
        tp=layout.tp,
        pp=layout.pp,
    )


def cluster_for(gpu: str | None, layout: Layout) -> Cluster:
    """One node of `gpu` large enough for the layout (nodes of 8 beyond 8 GPUs)."""
    accelerator = catalog.accelerator(gpu or "h100-sxm-80gb")
    gpus = layout.num_gpus
    if gpus <= 8:
        return Cluster(accelerator=accelerator, gpus_per_node=gpus, nodes=1)
    return Cluster(accelerator=accelerator, gpus_per_node=8, nodes=-(-gpus // 8))


def counter_bytes(estimate: TrainingEstimate | InferenceEstimate, counter: Counter) -> int:
    """Per-GPU bytes of an estimate on one counter (allocated, reserved, device)."""
    return int(getattr(estimate, f"{counter.value}_bytes"))


def analytic_measured(model: ModelSpec, case: MeasuredCase) -> AnalyticFigure:
    """The analytic estimate of a measured case on the row's counter (single device for whole-model rows)."""
    counter = case.counter or Counter.DEVICE
    layout = Layout() if case.scope is Scope.WHOLE_MODEL else case.layout
    cluster = cluster_for(case.gpu, layout)
    try:
        if case.training is not None:
            from llmplan.estimate.training import estimate_training

            est = estimate_training(model, case.training, layout, cluster)
        else:
            from llmplan.estimate.inference import estimate_inference

            assert case.inference is not None
            est = estimate_inference(model, inference_job(case.inference, layout), cluster)
    except LlmplanError as exc:
        return AnalyticFigure(None, f"refused: {exc}")
    fits = counter_bytes(est, Counter.DEVICE) <= cluster.accelerator.memory_bytes
    return AnalyticFigure(counter_bytes(est, counter), fits=fits)


TERMS = TRACE_TERMS
"""The trace's categories (llmplan.breakdown.TRACE_TERMS), the common vocabulary of both engines."""


def analytic_trace_case(case: TraceCase) -> dict[str, int]:
    """The analytic engine's peak allocated bytes of a matrix case on one GPU, by trace category, less the
    workspaces a trace cannot see. Training: comm buffers count as temporaries; inference: the prefill
    activation peak is the trace's temporaries."""
    model = case.model()
    cluster = cluster_for("h100-sxm-80gb", Layout())
    if case.training is not None:
        from llmplan.estimate.training import estimate_training

        est = estimate_training(model, case.training, Layout(), cluster)
    else:
        from llmplan.estimate.inference import estimate_inference

        assert case.inference is not None
        est = estimate_inference(model, case.inference, cluster)
    terms = trace_categories(est.terms)
    total = counter_bytes(est, Counter.ALLOCATED) - workspace_bytes(est)
    # whatever the allocated counter holds beyond the named terms is shown as temporaries
    terms["temporaries"] = terms.get("temporaries", 0) + total - sum(terms.values())
    return terms


def workspace_bytes(estimate: TrainingEstimate | InferenceEstimate) -> int:
    """Library workspaces inside the allocated counter (cuBLAS) that a fake-tensor trace cannot see (design.md,
    'What a trace cannot see'): left out of the analytic figure when it is compared with the trace."""
    return int(estimate.terms.value(CUBLAS_WORKSPACE))


def trace_case(case: TraceCase) -> dict[str, int]:
    """Peak allocated bytes of a matrix case by the trace engine (torch needed), by category."""
    from llmplan.trace import by_category, inference_run, trace_inference, trace_training

    model = case.model()
    if case.training is not None:
        return by_category(trace_training(model, case.training).peak)
    job = case.inference
    assert job is not None
    dtype = _TRACE_DTYPE.get(job.quant)
    if dtype is None:
        raise LlmplanError(f"the trace engine runs float weights only, not {job.quant.value}")
    run = inference_run(
        batch_size=job.batch,
        prompt_len=job.prefill_tokens,
        decode_steps=job.context_len - job.prefill_tokens,
        dtype=dtype,
        attention=case.inference_attention.value,
    )
    return by_category(trace_inference(model, run).peak)


def compare_trace_case(case: TraceCase) -> TraceComparison:
    """Both engines on one matrix case; a refusal or failure of either is kept as the comparison's note."""
    notes = []
    start = time.perf_counter()
    traced: dict[str, int] | None = None
    analytic: dict[str, int] | None = None
    try:
        traced = trace_case(case)
    except (LlmplanError, NotImplementedError, RuntimeError, ValueError, TypeError) as exc:
        notes.append(f"trace: {type(exc).__name__}: {exc}".splitlines()[0][:200])
    elapsed = time.perf_counter() - start
    try:
        analytic = analytic_trace_case(case)
    except (LlmplanError, NotImplementedError, ValueError, TypeError) as exc:
        notes.append(f"analytic: {type(exc).__name__}: {exc}".splitlines()[0][:200])
    deltas: tuple[tuple[str, int], ...] = ()
    if traced is not None and analytic is not None:
        deltas = tuple((t, analytic.get(t, 0) - traced.get(t, 0)) for t in TERMS)
    return TraceComparison(
        case,
        None if analytic is None else sum(analytic.values()),
        None if traced is None else sum(traced.values()),
        elapsed,
        "; ".join(notes),
        deltas,
    )
