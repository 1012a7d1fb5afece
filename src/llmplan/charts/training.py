"""Charts of a training job: memory per GPU by part and phase, memory against sequence length and micro-batch
with the OOM line, and where the step time goes.

Every number is read from `estimate_training` / `estimate_time` called with the job (or the job with one field
replaced, for a sweep); the largest fitting value is found by asking the estimate itself (doubling, then
bisection), which assumes memory does not fall as the swept value grows (true of every term: activations,
logits and temporaries grow with the tokens of a micro-batch, the rest stay). A value that breaks a rule of
the job (`estimate.validation`) counts as not fitting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from llmplan import limits
from llmplan.breakdown import Unit
from llmplan.charts.series import Bar, Charts, Line, LineChart, Point, StackedChart, sweep_points
from llmplan.errors import LlmplanError
from llmplan.estimate.time import TimeEstimate, estimate_time
from llmplan.estimate.training import TrainingEstimate, estimate_training
from llmplan.formulas.inventory import memo_by_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, TrainingJob

DEVICE = "device"
"""Name of the line / counter of the device bytes (what nvidia-smi shows; the verdict compares it)."""
_MEMORY_SOURCE = "estimate.training.estimate_training"
_TIME_SOURCE = "estimate.time.estimate_time"


def _estimate(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster
) -> TrainingEstimate | None:
    try:
        return estimate_training(model, job, layout, cluster)
    except LlmplanError:
        return None


def estimate_or_none(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster
) -> TrainingEstimate | None:
    """estimate_training, remembered per model object and inputs; None when the job breaks a rule."""
    return memo_by_model(_estimate, model, job, layout, cluster)


def memory_stack(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> StackedChart:
    """Memory per GPU by part at each phase of the step (tensors alive, before overheads) and the device bytes
    at the peak phase (its terms + overheads), against the GPU's memory. Raises what estimate_training
    raises for a job that breaks a rule."""
    est = estimate_training(model, job, layout, cluster)
    bars = tuple(Bar.of(p.phase.value, p.terms, "allocated") for p in est.phases)
    peak = Bar.of(f"peak ({est.peak_phase.value})", est.terms, DEVICE)
    return StackedChart(
        id="memory",
        title=f"{est.model} on {est.accelerator}: memory per GPU by part",
        unit=Unit.BYTES,
        source=f"{_MEMORY_SOURCE}: phases[].terms (allocated tensors), terms (device at the peak)",
        bars=(*bars, peak),
        limit=est.capacity_bytes,
        limit_label=f"{est.accelerator} memory",
    )


def step_time(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> StackedChart:
    """Where one training step's time goes: compute, recompute, exposed communication, bubble, optimizer,
    offload (the top-level terms of `TimeEstimate.step`; their sum is `step_s`)."""
    return time_stack(
        estimate_time(model, job, layout, cluster), f"{model.name} on {cluster.accelerator.name}"
    )


def time_stack(timing: TimeEstimate, title: str) -> StackedChart:
    """The step-time chart of an estimate already made (a plan's layouts carry theirs)."""
    return StackedChart(
        id="step_time",
        title=f"{title}: step time by part",
        unit=Unit.SECONDS,
        source=f"{_TIME_SOURCE}: step",
        bars=(Bar.of("step", timing.step),),
    )


def largest_fitting(fits: Callable[[int], bool], low: int, high: int, step: int = 1) -> int | None:
    """The largest multiple of `step` in [low, high] for which `fits` holds (None when `low` does not fit),
    assuming that once a value does not fit no larger one does: doubling from `low`, then bisection."""
    high = high // step * step
    if low > high or not fits(low):
        return None
    good, probe = low, 2 * low
    while probe <= high and fits(probe):
        good, probe = probe, 2 * probe
    bad = min(probe, high + step)
    while bad - good > step:
        mid = (good + bad) // (2 * step) * step
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def _sweep(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    cluster: Cluster,
    field: str,
    bounds: tuple[int, int, int],
) -> LineChart:
    """Device bytes (and each part that changes) against `field` of the job, with the OOM line."""
    low, high, step = bounds
    current = getattr(job, field)
    high = max(high, current) // step * step

    def at(value: int) -> TrainingEstimate | None:
        return estimate_or_none(model, dataclasses.replace(job, **{field: value}), layout, cluster)

    def fits(value: int) -> bool:
        est = at(value)
        return est is not None and est.fits

    best = largest_fitting(fits, low, high, step)
    xs = sweep_points(current, low, high, step, best)
    ests = [(x, e) for x in xs if (e := at(x)) is not None]
    lines = [Line(name=DEVICE, unit=Unit.BYTES, source=f"{_MEMORY_SOURCE}: device_bytes (terms.total)",
                  points=tuple(Point(x=x, y=e.device_bytes, fits=e.fits) for x, e in ests))]  # fmt: skip
    for term in ests[0][1].terms.terms if ests else ():
        values = [e.terms.value(term.name) for _, e in ests]
        if len(set(values)) > 1:
            points = tuple(Point(x=x, y=v, fits=e.fits) for (x, e), v in zip(ests, values, strict=True))
            lines.append(
                Line(name=term.name, unit=Unit.BYTES, source=f"{_MEMORY_SOURCE}: terms", points=points)
            )
    acc = cluster.accelerator
    shown = field.replace("_size", "")
    return LineChart(
        id=f"memory_vs_{shown}",
        title=f"{model.name} on {acc.name}: memory per GPU vs {shown.replace('_', ' ')}",
        x_name=shown,
        x_unit=Unit.COUNT,
        unit=Unit.BYTES,
        source=f"{_MEMORY_SOURCE} with {field} replaced",
        lines=tuple(lines),
        current=current,
        limit=acc.memory_bytes,
        limit_label=f"OOM: {acc.name} memory",
        largest_fitting=best,
    )


def memory_vs_seq_len(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> LineChart:
    """Memory per GPU against the sequence length (multiples of cp, up to the model's max positions), the OOM
    line and the longest sequence that fits."""
    high = min(model.max_position_embeddings, int(limits.SEQ_LEN.high))
    return _sweep(model, job, layout, cluster, "seq_len", (layout.cp, high, layout.cp))


def memory_vs_micro_batch(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> LineChart:
    """Memory per GPU against the micro-batch, the OOM line and the largest micro-batch that fits."""
    return _sweep(model, job, layout, cluster, "micro_batch_size", (1, int(limits.MICRO_BATCH.high), 1))


def training_charts(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster, timing: TimeEstimate | None = None
) -> Charts:
    """Every chart of `llmplan train` (and of the web page's training view), in display order; `timing`: the
    job's time estimate when the caller has it already (the web API does; it is not made twice)."""
    return Charts(
        command="train",
        title=f"{model.name} on {cluster.num_gpus} × {cluster.accelerator.name}",
        charts=(
            memory_stack(model, job, layout, cluster),
            memory_vs_seq_len(model, job, layout, cluster),
            memory_vs_micro_batch(model, job, layout, cluster),
            step_time(model, job, layout, cluster)
            if timing is None
            else time_stack(timing, f"{model.name} on {cluster.accelerator.name}"),
        ),
    )
