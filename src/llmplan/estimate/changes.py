"""Typed changes of a training job and its layout, and the axes a search combines them along.

A `Change` names one field of `TrainingJob`, `PeftSpec` or `Layout` and the value it goes from and to. A
`Move` is one option on one axis (a few changes that only make sense together, e.g. ZeRO-2 with the optimizer
offloaded), with what it costs in speed or quality and why it saves memory. `axes` lists, for one job, the
options along each dimension a user can turn without buying GPUs: kernels, the optimizer, precision,
recomputation, the micro-batch, sharding and offload over the GPUs of the cluster, and finally the method.
`combinations` yields every pick of at most one move per axis, cheapest first.

This module only generates candidates; `estimate.suggest` re-estimates and ranks them, and a layout search can
reuse both halves separately.

Costs are ranking weights, not measurements: 1 = the same arithmetic with another kernel or flag (chunked
cross-entropy, a fused optimizer step, ZeRO-1/2, which move the same bytes as DDP: Rajbhandari et al. 2020,
section 7); 2 = a small loss of speed or numerical headroom (8-bit states, pure bf16, the step in backward,
halving the micro-batch); 3 = a full extra forward per step (full recomputation, Chen et al. 2016) or 1.5x
the communication of DDP (ZeRO-3 / FULL_SHARD, same section); 6 and 9 = the optimizer step or the parameters
on the host (ZeRO-Offload, Ren et al. 2021: PCIe traffic every step and host RAM); 10 and 12 = another method
(what is learned changes). A search offers every combination that keeps the method before one that changes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from enum import Enum

from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)
from llmplan.stacks import defaults as stack_defaults

Value = Enum | bool | int | float | str | tuple[str, ...] | None
"""A field's value: an enum member, a number, a flag, module names, or None (FSDP off)."""

METHOD_AXIS = "method"
"""The axis whose moves change what is trained; searches rank every other combination before them."""

LORA_RANK = 16
LORA_ALPHA = 32
LORA_TARGETS = ("all-linear",)
"""The adapters a change of method proposes: rank 16 on every linear but the head, alpha 2r (the QLoRA
paper's setting, Dettmers et al. 2023, section 4: adapters on all linear layers match full fine-tuning)."""


class Part(str, Enum):
    """Which spec a change edits."""

    JOB = "job"
    """A field of `TrainingJob`."""
    PEFT = "peft"
    """A field of the job's `PeftSpec`."""
    LAYOUT = "layout"
    """A field of `Layout`."""


_SPEC_TYPES = {Part.JOB: TrainingJob, Part.PEFT: PeftSpec, Part.LAYOUT: Layout}


@dataclass(frozen=True, slots=True)
class Change:
    """One field of the job or layout, from the value it has to the value proposed."""

    part: Part
    field: str
    """The dataclass field name (`recompute`, `lora_targets`, `zero`)."""
    before: Value
    after: Value

    def __post_init__(self) -> None:
        names = {f.name for f in fields(_SPEC_TYPES[self.part])}
        if self.field not in names:
            raise ValueError(
                f"{self.part.value} has no field {self.field!r} (fields: {', '.join(sorted(names))})"
            )


@dataclass(frozen=True, slots=True)
class Move:
    """One option on one axis: the changes it makes together, its cost and why it saves memory."""

    axis: str
    level: int
    """Position on the axis, 1 for its first option (0: the axis is left as it is); later ones change more."""
    changes: tuple[Change, ...]
    cost: int
    """Ranking weight (module docstring)."""
    why: str


@dataclass(frozen=True, slots=True)
class Axis:
    """A dimension of the search and its options, in increasing order of change."""

    name: str
    moves: tuple[Move, ...]


def apply_changes(
    job: TrainingJob, layout: Layout, changes: tuple[Change, ...]
) -> tuple[TrainingJob, Layout]:
    """The job and layout with `changes` made. Each field is changed at most once and from the value it has
    (ValueError otherwise: a bug of whoever built them); SpecError when the result is not a valid spec."""
    edits: dict[Part, dict[str, Value]] = {part: {} for part in Part}
    specs = {Part.JOB: job, Part.PEFT: job.peft, Part.LAYOUT: layout}
    for c in changes:
        if c.field in edits[c.part]:
            raise ValueError(f"{c.part.value}.{c.field} is changed twice")
        found = getattr(specs[c.part], c.field)
        if found != c.before:
            raise ValueError(f"{c.part.value}.{c.field} is {found!r}, the change expects {c.before!r}")
        edits[c.part][c.field] = c.after
    peft = replace(job.peft, **edits[Part.PEFT]) if edits[Part.PEFT] else job.peft
    new_job = replace(job, peft=peft, **edits[Part.JOB]) if edits[Part.JOB] or edits[Part.PEFT] else job
    new_layout = replace(layout, **edits[Part.LAYOUT]) if edits[Part.LAYOUT] else layout
    return new_job, new_layout


def _diff(part: Part, spec: object, **after: Value) -> tuple[Change, ...]:
    """The changes that set `after` on `spec`, leaving out fields that already have their value."""
    return tuple(Change(part, k, getattr(spec, k), v) for k, v in after.items() if getattr(spec, k) != v)


def axes(job: TrainingJob, layout: Layout, cluster: Cluster) -> tuple[Axis, ...]:
    """The search dimensions for `job` on `layout` over `cluster` (the GPUs the user has: no axis adds any).

    Each axis lists only options that change something; an axis without options is left out. Options are
    not checked against the model here: the estimate's validation rejects the combinations that cannot run.
    """
    found = (
        _kernels(job),
        _optimizer_impl(job),
        _optimizer(job, layout),
        _precision(job, cluster),
        _recompute(job),
        _micro_batch(job),
        _sharding(layout),
        _method(job),
    )
    return tuple(a for a in found if a.moves)


def _axis(name: str, *options: tuple[tuple[Change, ...], int, str]) -> Axis:
    moves = tuple(
        Move(name, level, changes, cost, why)
        for level, (changes, cost, why) in enumerate((o for o in options if o[0]), 1)
    )
    return Axis(name, moves)


def _kernels(job: TrainingJob) -> Axis:
    return _axis(
        "loss",
        (_diff(Part.JOB, job, chunked_ce=True), 1, "chunked cross-entropy never holds the full fp32 logits"),
    )


def _optimizer_impl(job: TrainingJob) -> Axis:
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD:
        return _axis("optimizer_impl")
    fused = (
        ()
        if job.optimizer_impl is OptimizerImpl.FUSED
        else _diff(Part.JOB, job, optimizer_impl=OptimizerImpl.FUSED)
    )
    return _axis(
        "optimizer_impl",
        (fused, 1, "the fused optimizer step needs no full-size temporary"),
        (
            _diff(Part.JOB, job, optimizer_impl=OptimizerImpl.IN_BACKWARD),
            2,
            "the optimizer step runs inside backward: each gradient is freed after its update",
        ),
    )


def _optimizer(job: TrainingJob, layout: Layout) -> Axis:
    if job.optimizer not in (Optimizer.ADAMW, Optimizer.PAGED_ADAMW):
        return _axis("optimizer")
    eight = Optimizer.PAGED_ADAMW_8BIT if job.optimizer is Optimizer.PAGED_ADAMW else Optimizer.ADAM8BIT
    return _axis(
        "optimizer",
        (
            _diff(Part.JOB, job, optimizer=eight),
            2,
            "8-bit AdamW keeps each state in 1 byte plus a block absmax",
        ),
    )


def _precision(job: TrainingJob, cluster: Cluster) -> Axis:
    if job.precision in (Precision.BF16, Precision.FP16) or not cluster.accelerator.supports("bf16"):
        return _axis("precision")
    return _axis(
        "precision",
        (
            _diff(Part.JOB, job, precision=Precision.BF16),
            2,
            "pure bf16 keeps no fp32 master weights and holds gradients and states in bf16",
        ),
    )


def _recompute(job: TrainingJob) -> Axis:
    order = list(Recompute)
    later = order[order.index(job.recompute) + 1 :]
    why = {
        Recompute.SELECTIVE: (1, "selective recomputation saves no attention scores or softmax"),
        Recompute.FULL: (3, "full recomputation keeps only each layer's input and reruns its forward"),
    }
    return _axis("recompute", *((_diff(Part.JOB, job, recompute=r), *why[r]) for r in later))


def _micro_batch(job: TrainingJob) -> Axis:
    """Halve the micro-batch down to 1, with gradient accumulation raised to keep the global batch."""
    options = []
    mb, cost = job.micro_batch_size // 2, 2
    while mb >= 1 and job.micro_batch_size % mb == 0:
        accum = job.grad_accum_steps * job.micro_batch_size // mb
        changes = _diff(Part.JOB, job, micro_batch_size=mb, grad_accum_steps=accum)
        options.append(
            (
                changes,
                cost,
                "fewer sequences per micro-batch save fewer activations; accumulation keeps the global batch",
            )
        )
        mb, cost = mb // 2, cost + 2
    return _axis("micro_batch", *options)


def _sharding(layout: Layout) -> Axis:
    """ZeRO stages (or FSDP strategies) over the data-parallel group the layout has, then offload to the host;
    only what the layout's stack runs (`llmplan.stacks`: DeepSpeed ZeRO on the Trainer-based stacks, FSDP
    on torchtune / torchtitan / accelerate's FSDP plugin, ZeRO-1 alone on Megatron).

    Sharding alone needs dp·cp > 1 (the group ZeRO and FSDP shard over); offload helps on one GPU too.
    Optimizer offload is DeepSpeed's (ZeRO >= 2 here, as DeepSpeed's examples pair it); FSDP offloads
    parameters, gradients and the step together (`CPUOffload(offload_params=True)`).
    """
    runs = stack_defaults(layout.stack)
    zero_stages = tuple(ZeroStage(z) for z in runs.zero_stages)
    fsdp = layout.fsdp is not None or (layout.zero is ZeroStage.NONE and zero_stages == (ZeroStage.NONE,))
    if fsdp and not runs.fsdp:
        return _axis("sharding")
    group = layout.dp * layout.cp
    target = next(
        (t for t in (layout.offload_optimizer, layout.offload_params) if t is not OffloadTarget.NONE),
        OffloadTarget.CPU,
    )
    options: list[tuple[tuple[Change, ...], int, str]] = []
    if fsdp:
        for strategy, stage, cost, what in (
            (FsdpStrategy.SHARD_GRAD_OP, 2, 1, "gradients and optimizer states"),
            (FsdpStrategy.FULL_SHARD, 3, 3, "all model states"),
        ):
            if group > 1 and stage > layout.sharding_stage:
                why = f"FSDP {strategy.value} shards {what} over the {group} data-parallel GPUs"
                options.append((_diff(Part.LAYOUT, layout, fsdp=strategy), cost, why))
        full = FsdpStrategy.FULL_SHARD if layout.sharding_stage < 3 else layout.fsdp
        off = _diff(Part.LAYOUT, layout, fsdp=full, offload_params=target)
        options.append((off, 9, "FSDP CPU offload keeps parameters, gradients and the step in host memory"))
        return _axis("sharding", *options)
    for stage, cost, what in (
        (ZeroStage.OPTIMIZER, 1, "optimizer states and master weights"),
        (ZeroStage.GRADIENTS, 1, "optimizer states, master weights and gradients"),
        (ZeroStage.PARAMETERS, 3, "all model states"),
    ):
        if group > 1 and stage > layout.zero and stage in zero_stages:
            why = f"ZeRO-{stage.value} shards {what} over the {group} data-parallel GPUs"
            options.append((_diff(Part.LAYOUT, layout, zero=stage), cost, why))
    if ZeroStage.GRADIENTS in zero_stages:
        off = _diff(Part.LAYOUT, layout, zero=max(layout.zero, ZeroStage.GRADIENTS), offload_optimizer=target)
        why = "ZeRO-Offload keeps the optimizer states in host memory and steps on the CPU"
        options.append((off, 6, why))
    if ZeroStage.PARAMETERS in zero_stages:
        both = _diff(
            Part.LAYOUT, layout, zero=ZeroStage.PARAMETERS, offload_optimizer=target, offload_params=target
        )
        options.append((both, 9, "ZeRO-Infinity-style offload also keeps the parameters in host memory"))
    return _axis("sharding", *options)


def _method(job: TrainingJob) -> Axis:
    """Full fine-tuning (or freezing) -> LoRA -> QLoRA with rank-16 adapters on every linear; LoRA -> QLoRA
    with the user's own adapters."""
    if job.method is Method.LORA:
        return _axis(
            METHOD_AXIS,
            (_diff(Part.JOB, job, method=Method.QLORA), 12, "QLoRA also stores the frozen base in 4-bit NF4"),
        )
    if job.method not in (Method.FULL, Method.FREEZE):
        return _axis(METHOD_AXIS)
    peft = _diff(Part.PEFT, job.peft, lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA, lora_targets=LORA_TARGETS)
    lora_why = f"LoRA r{LORA_RANK} on every linear trains adapters only: the base has no gradients or states"
    return _axis(
        METHOD_AXIS,
        (_diff(Part.JOB, job, method=Method.LORA) + peft, 10, lora_why),
        (
            _diff(Part.JOB, job, method=Method.QLORA) + peft,
            12,
            lora_why + "; QLoRA stores the base in 4-bit NF4",
        ),
    )


MAX_MOVES = 4
"""Moves combined at most: a suggestion that turns more knobs at once is no longer a small change."""


def combinations(found: tuple[Axis, ...], max_moves: int = MAX_MOVES) -> Iterator[tuple[Move, ...]]:
    """Every pick of one to `max_moves` moves, at most one per axis, in order of `combination_key`."""
    picks = itertools.product(*(((None,) + a.moves) for a in found))
    combos = (tuple(m for m in pick if m is not None) for pick in picks)
    yield from sorted((c for c in combos if 0 < len(c) <= max_moves), key=combination_key)


def combination_key(moves: tuple[Move, ...]) -> tuple[int, int, int, int]:
    """How much a combination changes: the method's level first (every combination that keeps the method
    comes before any that changes it), then the summed cost, the number of moves and their summed levels."""
    method = sum(m.level for m in moves if m.axis == METHOD_AXIS)
    return (method, sum(m.cost for m in moves), len(moves), sum(m.level for m in moves))


def dominates(smaller: tuple[Move, ...], larger: tuple[Move, ...]) -> bool:
    """True when `larger` goes at least as far as `smaller` on every axis `smaller` moves along (so it only
    adds change to a combination that already does the job)."""
    levels = {m.axis: m.level for m in larger}
    return all(levels.get(m.axis, 0) >= m.level for m in smaller)
