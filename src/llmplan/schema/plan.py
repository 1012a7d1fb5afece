"""The JSON of `llmplan plan --json` (`PlanOut`, docs/json.md): the search's counts and its ranked layouts."""

from __future__ import annotations

from typing import Literal

from llmplan.plan.training import RankedLayout, TrainingPlan
from llmplan.schema.records import BreakdownOut, Envelope, Out, TermOut
from llmplan.specs.training import Layout, TrainingJob


class PlanLayoutOut(Out):
    """One ranked layout: its full memory and time estimates and the command that shows them."""

    rank: int
    layout: Layout
    job: TrainingJob
    step_s: float
    time_to_train_s: float | None
    cost_usd: float | None
    gpu_hours: float | None
    mfu: float
    tokens_per_s: float
    device_bytes: int
    capacity_bytes: int
    fits: bool
    step: BreakdownOut
    why: tuple[TermOut, ...]
    command: str

    @classmethod
    def of(cls, rank: int, r: RankedLayout, command: str) -> PlanLayoutOut:
        return cls(
            rank=rank,
            layout=r.layout,
            job=r.job,
            step_s=r.step_s,
            time_to_train_s=r.time_to_train_s,
            cost_usd=r.cost_usd,
            gpu_hours=r.gpu_hours,
            mfu=r.time.mfu,
            tokens_per_s=r.time.tokens_per_s,
            device_bytes=r.memory.device_bytes,
            capacity_bytes=r.memory.capacity_bytes,
            fits=r.memory.fits,
            step=BreakdownOut.of(r.time.step),
            why=tuple(TermOut.of(t) for t in r.why),
            command=command,
        )


class PlanBodyOut(Out):
    """The search on one cluster: where every candidate went, and the best layouts."""

    accelerator: str
    gpus: int
    global_batch_tokens: int
    searched: int
    invalid: int
    pruned_memory: int
    dominated: int
    estimated: int
    feasible: int
    elapsed_s: float
    layouts: tuple[PlanLayoutOut, ...]

    @classmethod
    def of(cls, plan: TrainingPlan, commands: tuple[str, ...]) -> PlanBodyOut:
        k = plan.counts
        return cls(
            accelerator=plan.cluster.accelerator.id,
            gpus=plan.cluster.num_gpus,
            global_batch_tokens=plan.global_batch_seqs * plan.seq_len,
            searched=k.searched,
            invalid=k.invalid,
            pruned_memory=k.pruned_memory,
            dominated=k.dominated,
            estimated=k.estimated,
            feasible=k.feasible,
            elapsed_s=plan.elapsed_s,
            layouts=tuple(
                PlanLayoutOut.of(i, r, c)
                for i, (r, c) in enumerate(zip(plan.layouts, commands, strict=True), 1)
            ),
        )


class PlanOut(Envelope):
    """`llmplan plan --json`: one search (`plan`), or with several GPUs or sizes one per option (`options`)
    and the fastest and cheapest of them."""

    command: Literal["plan"] = "plan"
    model: str
    plan: PlanBodyOut
    """The search of the chosen option (the fastest when several were searched)."""
    options: tuple[PlanBodyOut, ...] = ()
    fastest: str | None = None
    """`<accelerator> x <gpus>` of the fastest option that fits (within --budget-usd / --deadline-days)."""
    cheapest: str | None = None
    pareto: tuple[str, ...] = ()
    """The options no other beats on both time to train and cost, fastest first."""
