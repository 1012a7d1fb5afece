"""Hardware choice: the same layout search on several clusters, then the cheapest and the fastest that fit.

    option = (accelerator, GPU count) → its best layout (`search_training`, rank 1)
    fastest = min over options of time to train; cheapest = min of cost (USD, else GPU-hours)
    within  = options with cost <= --budget-usd and time to train <= --deadline-days (when given)

The Pareto front of time vs cost: the options no other option beats on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import SpecError
from llmplan.plan.training import Constraints, RankedLayout, TrainingPlan, search_training
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import TrainingJob


@dataclass(frozen=True, kw_only=True, slots=True)
class HardwareOption:
    cluster: Cluster
    plan: TrainingPlan

    @property
    def best(self) -> RankedLayout | None:
        return self.plan.layouts[0] if self.plan.layouts else None


@dataclass(frozen=True, kw_only=True, slots=True)
class HardwareChoice:
    options: tuple[HardwareOption, ...]
    fastest: HardwareOption | None
    cheapest: HardwareOption | None
    pareto: tuple[HardwareOption, ...]
    """Not beaten on both time to train and cost by any other option, fastest first."""
    within: tuple[HardwareOption, ...]
    """Options inside --budget-usd and --deadline-days (all fitting options when neither is given)."""


def _cost(o: HardwareOption) -> float:
    b = o.best
    assert b is not None
    return b.cost_usd if b.cost_usd is not None else (b.gpu_hours or 0.0)


def _time(o: HardwareOption) -> float:
    b = o.best
    assert b is not None
    return b.time_to_train_s if b.time_to_train_s is not None else b.step_s


def choose_hardware(
    model: ModelSpec,
    job: TrainingJob,
    clusters: list[Cluster],
    *,
    global_batch_tokens: int | None,
    tokens: float | None,
    price_usd_per_gpu_hour: float | None = None,
    budget_usd: float | None = None,
    deadline_s: float | None = None,
    constraints: Constraints = Constraints(),
    top: int = 1,
) -> HardwareChoice:
    """Search each cluster (module docstring); SpecError when a budget or deadline is given without tokens."""
    if (budget_usd is not None or deadline_s is not None) and tokens is None:
        raise SpecError("tokens", "--budget-usd and --deadline-days need --tokens (the run they bound)")
    options = []
    for cluster in clusters:
        plan = search_training(
            model,
            job,
            cluster,
            global_batch_tokens=global_batch_tokens,
            tokens=tokens,
            price_usd_per_gpu_hour=price_usd_per_gpu_hour,
            top=top,
            constraints=constraints,
        )
        options.append(HardwareOption(cluster=cluster, plan=plan))
    fits = [o for o in options if o.best is not None]
    pareto = tuple(
        sorted(
            (o for o in fits if not any(_time(p) <= _time(o) and _cost(p) <= _cost(o) and
                                        (_time(p), _cost(p)) != (_time(o), _cost(o)) for p in fits)),
            key=_time,
        )
    )  # fmt: skip
    within = [
        o
        for o in fits
        if (budget_usd is None or _cost(o) <= budget_usd) and (deadline_s is None or _time(o) <= deadline_s)
    ]
    return HardwareChoice(
        options=tuple(options),
        fastest=min(within, key=_time) if within else None,
        cheapest=min(within, key=_cost) if within else None,
        pareto=pareto,
        within=tuple(within),
    )
