"""Charts of a layout search: the feasible layouts' step time (or time to train) against memory per GPU with
the Pareto front, the hardware options' time against cost with the plan's own front, and the memory and step
time of the chosen layout.

Every number is read from the plan's result (`plan.training.TrainingPlan`, `plan.hardware.HardwareChoice`):
each ranked layout carries its full `TrainingEstimate` and `TimeEstimate`. The layout front is over the layouts
the plan kept (`--top`; the search never times a layout another one dominates, so more recomputation at the
same layout is not among them).
"""

from __future__ import annotations

from llmplan.breakdown import Unit
from llmplan.charts.series import Bar, Charts, ScatterChart, ScatterPoint, StackedChart, front_flags
from llmplan.charts.training import DEVICE, time_stack
from llmplan.plan.hardware import HardwareChoice, HardwareOption
from llmplan.plan.training import RankedLayout, TrainingPlan

_SOURCE = "plan.training.search_training"


def layout_label(r: RankedLayout) -> str:
    """A short name of a ranked layout: degrees, sharding (stack), micro-batch × accumulation, recomputation."""
    lay, job = r.layout, r.job
    shard = f"fsdp {lay.fsdp.value}" if lay.fsdp else f"zero {int(lay.zero)}"
    degrees = " ".join(f"{k}{getattr(lay, k)}" for k in ("dp", "tp", "pp", "cp", "ep"))
    return (
        f"{degrees} {shard} ({lay.stack.value}) mb{job.micro_batch_size}×{job.grad_accum_steps} "
        f"{job.recompute.value}"
    )


def _run_s(r: RankedLayout) -> float:
    return r.time_to_train_s if r.time_to_train_s is not None else r.step_s


def layout_scatter(plan: TrainingPlan) -> ScatterChart:
    """Each kept layout's time (time to train with --tokens, else step time) against its device bytes per GPU;
    the front: no other layout needs less memory and less time; `best` is the plan's first."""
    xy = [(float(r.memory.device_bytes), _run_s(r)) for r in plan.layouts]
    flags = front_flags(xy)
    points = tuple(
        ScatterPoint(label=layout_label(r), x=x, y=y, front=f, best=i == 0)
        for i, (r, (x, y), f) in enumerate(zip(plan.layouts, xy, flags, strict=True))
    )
    timed = plan.layouts and plan.layouts[0].time_to_train_s is not None
    acc = plan.cluster.accelerator
    return ScatterChart(
        id="plan_layouts",
        title=f"{plan.model} on {plan.cluster.num_gpus} × {acc.name}: layouts, time vs memory per GPU",
        x_name="device memory per GPU",
        x_unit=Unit.BYTES,
        y_name="time to train" if timed else "step time",
        y_unit=Unit.SECONDS,
        source=f"{_SOURCE}: layouts[].memory.device_bytes, layouts[].time ({'time_to_train_s' if timed else 'step_s'})",
        points=points,
        limit=acc.memory_bytes,
        limit_label=f"{acc.name} memory",
    )


def _option_label(opt: HardwareOption) -> str:
    return f"{opt.cluster.num_gpus} × {opt.cluster.accelerator.id}"


def hardware_scatter(choice: HardwareChoice) -> ScatterChart:
    """Each hardware option's best layout: time against cost (USD with a price, else GPU-hours); the front is
    the plan's own (`HardwareChoice.pareto`), `best` the fastest within the budget."""
    fitting = [o for o in choice.options if o.best is not None]
    usd = all(o.best.cost_usd is not None for o in fitting)  # type: ignore[union-attr]
    points = tuple(
        ScatterPoint(
            label=_option_label(o),
            x=_run_s(o.best),  # type: ignore[arg-type]
            y=(o.best.cost_usd if usd else o.best.gpu_hours) or 0.0,  # type: ignore[union-attr]
            front=any(o is p for p in choice.pareto),
            best=o is choice.fastest,
        )
        for o in fitting
    )
    timed = bool(fitting) and fitting[0].best.time_to_train_s is not None  # type: ignore[union-attr]
    return ScatterChart(
        id="plan_hardware",
        title="hardware options (best layout of each): time vs cost",
        x_name="time to train" if timed else "step time",
        x_unit=Unit.SECONDS,
        y_name="cost" if usd else "GPU-hours",
        y_unit=Unit.USD if usd else Unit.GPU_HOURS,
        source="plan.hardware.choose_hardware: options[].best, pareto",
        points=points,
    )


def chosen_memory(r: RankedLayout) -> StackedChart:
    """The chosen layout's memory per GPU by part at the peak (its estimate's terms) against the GPU's
    memory."""
    est = r.memory
    return StackedChart(
        id="memory",
        title=f"chosen layout ({layout_label(r)}): memory per GPU by part",
        unit=Unit.BYTES,
        source=f"{_SOURCE}: layouts[0].memory.terms",
        bars=(Bar.of(f"peak ({est.peak_phase.value})", est.terms, DEVICE),),
        limit=est.capacity_bytes,
        limit_label=f"{est.accelerator} memory",
    )


def plan_charts(choice: HardwareChoice, chosen: HardwareOption | None = None) -> Charts:
    """Every chart of `llmplan plan`: the layouts of the chosen option (default: the fastest), the hardware
    options when there are several, and the chosen layout's memory and step time."""
    opt = chosen or choice.fastest or next((o for o in choice.options if o.best is not None), None)
    charts: list = []
    if opt is not None:
        charts.append(layout_scatter(opt.plan))
    if len(choice.options) > 1:
        charts.append(hardware_scatter(choice))
    if opt is not None and opt.best is not None:
        best = opt.best
        charts.extend((chosen_memory(best), time_stack(best.time, f"chosen layout ({layout_label(best)})")))
    title = opt.plan.model if opt is not None else "plan"
    return Charts(command="plan", title=f"{title}: layout search", charts=tuple(charts))
