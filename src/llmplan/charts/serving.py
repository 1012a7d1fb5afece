"""Charts of a serving job: memory per GPU by part, KV cache against concurrency with the OOM line, and the
roofline's time to first token and time per output token against concurrency.

Every number is read from `estimate_inference` called with the job, or with its `batch` (the sequences
decoded together: the concurrency) replaced; the largest concurrency that fits is the estimate's own
`max_batch_at_context`.
"""

from __future__ import annotations

import dataclasses

from llmplan import limits
from llmplan.breakdown import KV_CACHE, Unit
from llmplan.charts.series import Bar, Charts, Line, LineChart, Point, StackedChart, sweep_points
from llmplan.charts.training import DEVICE
from llmplan.errors import LlmplanError
from llmplan.estimate.inference import InferenceEstimate, estimate_inference
from llmplan.formulas.inventory import memo_by_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob
from llmplan.specs.model import ModelSpec

_SOURCE = "estimate.inference.estimate_inference"


def _estimate(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> InferenceEstimate | None:
    try:
        return estimate_inference(model, job, cluster)
    except LlmplanError:
        return None


def _at(model: ModelSpec, job: InferenceJob, cluster: Cluster, batch: int) -> InferenceEstimate | None:
    """estimate_inference at `batch`, remembered per model object and inputs; None when it breaks a rule."""
    return memo_by_model(_estimate, model, dataclasses.replace(job, batch=batch), cluster)


def serving_memory(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> StackedChart:
    """Memory per GPU by part (weights, KV cache, the prefill peak, overheads: `terms`, whose sum is the
    device counter) against the GPU's memory."""
    est = estimate_inference(model, job, cluster)
    return StackedChart(
        id="serve_memory",
        title=f"{est.model} on {est.accelerator}: memory per GPU by part",
        unit=Unit.BYTES,
        source=f"{_SOURCE}: terms",
        bars=(Bar.of(f"{job.batch} × {job.context_len} tokens", est.terms, DEVICE),),
        limit=est.capacity_bytes,
        limit_label=f"{est.accelerator} memory",
    )


def needed_kv_bytes(est: InferenceEstimate) -> int:
    """KV-cache bytes the job's sequences need: the kv_cache term (HF), or for vLLM, whose kv_cache term is
    the whole pre-allocated pool, the pool's free bytes less the headroom the estimate reports (headroom =
    available_kv_bytes − needed)."""
    if est.vllm is None:
        return int(est.terms.value(KV_CACHE))
    return est.vllm.available_kv_bytes - est.headroom_bytes


def _points(model, job, cluster, largest: int | None) -> list[tuple[int, InferenceEstimate]]:
    xs = sweep_points(job.batch, 1, int(limits.BATCH.high), 1, largest)
    return [(x, e) for x in xs if (e := _at(model, job, cluster, x)) is not None]


def kv_cache_vs_concurrency(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> LineChart:
    """KV-cache bytes per GPU against the concurrency, with the OOM line: the GPU's memory for the HF engine
    (with the device bytes), vLLM's KV pool for vLLM; and the largest concurrency that fits."""
    est = estimate_inference(model, job, cluster)
    best = est.max_batch_at_context or None
    ests = _points(model, job, cluster, best)
    lines = [
        Line(name=KV_CACHE, unit=Unit.BYTES, source=f"{_SOURCE}: terms kv_cache (vLLM: the sequences' share)",
             points=tuple(Point(x=x, y=needed_kv_bytes(e), fits=e.fits) for x, e in ests)),
    ]  # fmt: skip
    if est.vllm is None:
        device = tuple(Point(x=x, y=e.device_bytes, fits=e.fits) for x, e in ests)
        lines.append(Line(name=DEVICE, unit=Unit.BYTES, source=f"{_SOURCE}: device_bytes", points=device))
        limit, label = est.capacity_bytes, f"OOM: {est.accelerator} memory"
    else:
        limit, label = est.vllm.available_kv_bytes, "vLLM KV pool (available_kv_bytes)"
    return LineChart(
        id="kv_vs_concurrency",
        title=f"{est.model} on {est.accelerator}: KV cache per GPU vs concurrency at {job.context_len} tokens",
        x_name="concurrency",
        x_unit=Unit.COUNT,
        unit=Unit.BYTES,
        source=f"{_SOURCE} with batch replaced",
        lines=tuple(lines),
        current=job.batch,
        limit=limit,
        limit_label=label,
        largest_fitting=best,
    )


def latency_vs_concurrency(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> LineChart:
    """The roofline's time to first token and time per output token against the concurrency."""
    est = estimate_inference(model, job, cluster)
    ests = _points(model, job, cluster, est.max_batch_at_context or None)
    lines = tuple(
        Line(name=name, unit=Unit.SECONDS, source=f"{_SOURCE}: speed.{name}_s",
             points=tuple(Point(x=x, y=getattr(e.speed, f"{name}_s"), fits=e.fits) for x, e in ests))
        for name in ("ttft", "tpot")
    )  # fmt: skip
    return LineChart(
        id="latency_vs_concurrency",
        title=f"{est.model} on {est.accelerator}: TTFT and TPOT (roofline) vs concurrency",
        x_name="concurrency",
        x_unit=Unit.COUNT,
        unit=Unit.SECONDS,
        source=f"{_SOURCE} with batch replaced: speed",
        lines=lines,
        current=job.batch,
        largest_fitting=est.max_batch_at_context or None,
    )


def serving_charts(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> Charts:
    """Every chart of `llmplan serve` (and of the web page's serving view), in display order."""
    return Charts(
        command="serve",
        title=f"{model.name} on {job.tp * job.pp} × {cluster.accelerator.name}",
        charts=(
            serving_memory(model, job, cluster),
            kv_cache_vs_concurrency(model, job, cluster),
            latency_vs_concurrency(model, job, cluster),
        ),
    )
