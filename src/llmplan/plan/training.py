"""`search_training`: every layout of a training job on a cluster, validated, memory-checked, timed, ranked.

Order of work per candidate (cheapest first; every candidate is counted in `searched` and lands in exactly one
bucket of `PlanCounts`):
1. rules: `estimate.validation.problems` and the stack's sharding rules (`llmplan.stacks.resolve`), cached per
   (degrees, sharding, offload) — the job's micro-batch and recomputation do not change them; the schedule's
   rules (`formulas.pipeline.check_schedule`) per (schedule, pp, grad_accum);
2. a memory lower bound: the model states alone (weights + master + gradients + optimizer states of
   `formulas.model_states`, cached per degrees and sharding) already above the GPU's memory prune the
   candidate without estimating it;
3. dominance, exact under the time model: more recomputation only adds time (`recompute_s`), so per layout and
   micro-batch the least recomputation that fits is the only one timed; zero-bubble holds 1F1B's activations
   with a bubble no larger, GPipe 1F1B's bubble with more in flight (`formulas.pipeline`), so neither is timed
   when pp > 1; tp > 1 without sequence parallelism moves the same bytes with more activations (`_dominated`);
   memory grows with the micro-batch, so recomputation that did not fit at micro-batch b is not tried above b,
   and once nothing fits at b nothing fits above; an offloaded layout is timed only when the same layout
   without offload does not fit (offload moves the optimizer step to the host: `estimate.time`'s host step at
   HOST_MEMORY_BANDWIDTH per node);
4. memory: `estimate.training.estimate_training` (device counter vs capacity); 5. time:
   `estimate.time.estimate_time` and `estimate.cost.estimate_run`.

Ranking: time to train (step time at the fixed global batch when no token count is given), then cost, then
per-GPU memory. Every layout shown is the full estimate, not an approximation.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from llmplan.breakdown import Term
from llmplan.errors import LayoutError, LlmplanError, Problem, SpecError
from llmplan.estimate.cost import estimate_run
from llmplan.estimate.time import TimeEstimate, estimate_time
from llmplan.estimate.training import TrainingEstimate, estimate_training
from llmplan.estimate.validation import problems
from llmplan.formulas.model_states import model_states, trainable_split
from llmplan.formulas.pipeline import check_schedule
from llmplan.plan import space
from llmplan.plan.explain import why
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, PipelineSchedule, Recompute, TrainingJob
from llmplan.stacks import resolve as resolve_stack

WHY_TOP = 50
"""Layouts that get their `why` records (the rest of a `top=None` search keep none)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Constraints:
    """Axes the user fixed (None: searched)."""

    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    ep: int | None = None
    shardings: tuple[str, ...] | None = None
    """`space.Sharding.label`s to search ("zero 3", "fsdp full-shard", "megatron zero 1")."""
    offload: bool = True
    """False: layouts with offload are not searched."""
    schedules: tuple[PipelineSchedule, ...] | None = None
    """Pipeline schedules to search (pp > 1); a schedule left out dominates no other."""
    recomputes: tuple[Recompute, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanCounts:
    """Where every searched candidate went."""

    searched: int
    invalid: int
    """Broke a rule (problem records)."""
    pruned_memory: int
    """Model states alone exceed the GPU, or a smaller micro-batch of the same layout already did not fit."""
    dominated: int
    """Never faster than a candidate that was timed (module docstring, item 3)."""
    estimated: int
    """Memory estimated in full."""
    feasible: int
    """Fit and were timed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RankedLayout:
    """One feasible layout with its full estimates."""

    layout: Layout
    job: TrainingJob
    memory: TrainingEstimate
    time: TimeEstimate
    cost_usd: float | None
    gpu_hours: float | None
    why: tuple[Term, ...] = ()
    """Shares of the step (compute, communication, bubble, recompute, optimizer) and the differences to the
    next-ranked layout (`plan.explain.why`)."""

    @property
    def step_s(self) -> float:
        return self.time.step_s

    @property
    def time_to_train_s(self) -> float | None:
        return self.time.time_to_train_s

    @property
    def rank_key(self) -> tuple[float, float, int]:
        run = self.time_to_train_s if self.time_to_train_s is not None else self.step_s
        return (run, self.cost_usd or 0.0, self.memory.device_bytes)


@dataclass(frozen=True, kw_only=True, slots=True)
class Closest:
    """The candidate nearest to fitting when none fits: the least per-GPU memory of any valid layout."""

    layout: Layout
    job: TrainingJob
    device_bytes: int
    capacity_bytes: int
    bound: bool = False
    """True when device_bytes is the model-states lower bound (the layout was not estimated in full)."""

    @property
    def short_bytes(self) -> int:
        return self.device_bytes - self.capacity_bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingPlan:
    """The search's answer on one cluster."""

    model: str
    cluster: Cluster
    global_batch_seqs: int
    seq_len: int
    counts: PlanCounts
    elapsed_s: float
    layouts: tuple[RankedLayout, ...]
    """Best first; the `top` asked for."""
    closest: Closest | None
    """Set when nothing fits."""
    invalid_reasons: tuple[Problem, ...]
    """A sample of the distinct problems that rejected candidates (one per field)."""


def global_seqs(cluster: Cluster, seq_len: int, global_batch_tokens: int | None) -> int:
    """Sequences per step: --global-batch-tokens / seq_len (LayoutError unless whole), or the default."""
    if global_batch_tokens is None:
        return space.default_global_seqs(cluster.num_gpus, seq_len)
    if global_batch_tokens % seq_len or global_batch_tokens < seq_len:
        raise SpecError(
            "global_batch_tokens",
            f"{global_batch_tokens:,} is not a whole number of {seq_len}-token sequences (allowed: multiples of "
            f"--seq-len {seq_len}, e.g. {max(1, global_batch_tokens // seq_len) * seq_len:,})",
        )
    return global_batch_tokens // seq_len


def search_training(
    model: ModelSpec,
    job: TrainingJob,
    cluster: Cluster,
    *,
    global_batch_tokens: int | None = None,
    tokens: float | None = None,
    price_usd_per_gpu_hour: float | None = None,
    top: int | None = 10,
    constraints: Constraints = Constraints(),
) -> TrainingPlan:
    """Search every layout of `job` (its micro-batch, grad_accum, recompute are replaced) on `cluster`; keep
    the best `top` (None: every feasible layout, ranked)."""
    start = time.perf_counter()
    recs = space.RECOMPUTES if constraints.recomputes is None else tuple(
        r for r in space.RECOMPUTES if r in constraints.recomputes
    )  # fmt: skip
    seqs = global_seqs(cluster, job.seq_len, global_batch_tokens)
    c = _Counter()
    feasible: list[RankedLayout] = []
    closest: Closest | None = None
    reasons: dict[str, Problem] = {}
    split = trainable_split(model, job)
    capacity = cluster.accelerator.memory_bytes
    all_degrees = _degrees(model, cluster, job.seq_len, constraints)
    _check_reachable(all_degrees, seqs, job.seq_len, cluster, constraints)
    for d in all_degrees:
        pairs = space.micro_batches(seqs, d.dp)
        for sh in _shardings(constraints):
            offs = space.offloads(sh) if constraints.offload else (space.NO_OFFLOAD,)
            fit_without_offload: set[tuple[object, ...]] = set()
            for off in offs:
                lay0 = Layout(
                    dp=d.dp, tp=d.tp, pp=d.pp, cp=d.cp, ep=d.ep, zero=sh.zero, fsdp=sh.fsdp, stack=sh.stack,
                    offload_optimizer=off.optimizer, offload_params=off.params,
                )  # fmt: skip
                variants = _variants(d, model.num_hidden_layers, pairs, constraints.schedules)
                n = len(variants) * len(recs)
                found = _rules(model, job, lay0, cluster)
                if found:
                    c.invalid += n
                    c.searched += n
                    for p in found:
                        reasons.setdefault(p.field, p)
                    continue
                states = model_states(
                    model, job, lay0, stage=0, gpus_per_node=cluster.gpus_per_node, split=split
                )
                floor = (
                    states.weights_bytes + states.master_weights_bytes + states.gradients_bytes
                    + states.optimizer_states_bytes
                )  # fmt: skip
                if floor > capacity:
                    c.pruned_memory += n
                    c.searched += n
                    if closest is None or floor < closest.device_bytes:
                        closest = Closest(
                            layout=lay0, job=job, device_bytes=floor, capacity_bytes=capacity, bound=True
                        )
                    continue
                too_big: set[tuple[object, ...]] = set()
                least_fit: dict[tuple[object, ...], int] = {}
                """Per shape, the least recomputation that fitted at a smaller micro-batch: less did not fit
                there, so it cannot fit at a larger one."""
                for sp, sched, (mb, ga) in variants:
                    lay = dataclasses.replace(
                        lay0,
                        sequence_parallel=sp,
                        pp_schedule=sched.schedule,
                        pp_virtual_stages=sched.virtual,
                    )
                    shape = (sp, sched)
                    c.searched += len(recs)
                    try:
                        check_schedule(sched.schedule, pp=d.pp, virtual=sched.virtual,
                                       layers=model.num_hidden_layers, micro_batches=ga)  # fmt: skip
                    except LlmplanError:
                        c.invalid += len(recs)
                        continue
                    if (
                        _dominated(d, sp, sched, constraints.schedules)
                        or (sp, sched, mb) in fit_without_offload
                    ):
                        c.dominated += len(recs)
                        continue
                    if shape in too_big:
                        c.pruned_memory += len(recs)
                        continue
                    lowest = least_fit.get(shape, 0)
                    c.pruned_memory += lowest
                    for i, rec in enumerate(recs[lowest:], lowest):
                        j = dataclasses.replace(job, micro_batch_size=mb, grad_accum_steps=ga, recompute=rec)
                        mem = estimate_training(model, j, lay, cluster)
                        c.estimated += 1
                        if not mem.fits:
                            c.pruned_memory += 1
                            if closest is None or mem.device_bytes < closest.device_bytes:
                                closest = Closest(layout=lay, job=j, device_bytes=mem.device_bytes,
                                                  capacity_bytes=capacity)  # fmt: skip
                            continue
                        c.dominated += len(recs) - 1 - i
                        least_fit[shape] = i
                        feasible.append(_timed(model, j, lay, cluster, mem, tokens, price_usd_per_gpu_hour))
                        if off == space.NO_OFFLOAD:
                            fit_without_offload.add((sp, sched, mb))
                        break
                    else:
                        too_big.add(shape)
    feasible.sort(key=lambda r: r.rank_key)
    shown = tuple(feasible if top is None else feasible[:top])
    shown = tuple(
        dataclasses.replace(r, why=why(r, shown[i + 1] if i + 1 < len(shown) else None)) if i < WHY_TOP else r
        for i, r in enumerate(shown)
    )
    counts = PlanCounts(
        searched=c.searched, invalid=c.invalid, pruned_memory=c.pruned_memory, dominated=c.dominated,
        estimated=c.estimated, feasible=len(feasible),
    )  # fmt: skip
    return TrainingPlan(
        model=model.name,
        cluster=cluster,
        global_batch_seqs=seqs,
        seq_len=job.seq_len,
        counts=counts,
        elapsed_s=time.perf_counter() - start,
        layouts=shown,
        closest=None if feasible else closest,
        invalid_reasons=tuple(reasons.values()),
    )


@dataclass(slots=True)
class _Counter:
    searched: int = 0
    invalid: int = 0
    pruned_memory: int = 0
    dominated: int = 0
    estimated: int = 0


def _degrees(model: ModelSpec, cluster: Cluster, seq_len: int, k: Constraints) -> list[space.Degrees]:
    out = space.degrees(model, cluster.num_gpus, cluster.gpus_per_node, seq_len)
    for name in ("tp", "pp", "cp", "ep"):
        want = getattr(k, name)
        if want is not None:
            out = [d for d in out if getattr(d, name) == want]
    return out


def _check_reachable(
    found: list[space.Degrees], seqs: int, seq_len: int, cluster: Cluster, k: Constraints
) -> None:
    """LayoutError when the constraints leave no degrees, SpecError when no dp divides the global batch."""
    if not found:
        fixed = ", ".join(
            f"--{n} {getattr(k, n)}" for n in ("tp", "pp", "cp", "ep") if getattr(k, n) is not None
        )
        raise LayoutError(
            f"layout: {fixed} leave no layout on {cluster.num_gpus} GPUs of {cluster.gpus_per_node} per node "
            "(allowed: powers of two whose product divides the GPUs, tp within a node, cp with >= "
            f"{space.MIN_CP_CHUNK_TOKENS} tokens per rank)"
        )
    if not any(space.micro_batches(seqs, d.dp) for d in found):
        dps = sorted({d.dp for d in found})
        raise SpecError(
            "global_batch_tokens",
            f"{seqs * seq_len:,} tokens ({seqs} sequences of {seq_len}) cannot be split over the data-parallel "
            f"ranks of {cluster.num_gpus} GPUs (dp in {dps}): allowed: a multiple of dp · seq_len, e.g. "
            f"{max(1, -(-seqs // dps[0])) * dps[0] * seq_len:,}",
        )


def _shardings(k: Constraints) -> tuple[space.Sharding, ...]:
    if k.shardings is None:
        return space.SHARDINGS
    return tuple(s for s in space.SHARDINGS if s.label in k.shardings)


def _variants(
    d: space.Degrees, layers: int, pairs: list[tuple[int, int]], allowed: tuple[PipelineSchedule, ...] | None
) -> list[tuple[bool, space.Schedule, tuple[int, int]]]:
    """(sequence_parallel, schedule, (micro_batch, grad_accum)), micro-batches ascending within a shape."""
    sps = (False, True) if d.tp > 1 else (False,)
    scheds = [
        s for s in space.schedules(d.pp, layers) if d.pp == 1 or allowed is None or s.schedule in allowed
    ]
    return [(sp, s, p) for sp in sps for s in scheds for p in pairs]


def _dominated(
    d: space.Degrees, sp: bool, sched: space.Schedule, allowed: tuple[PipelineSchedule, ...] | None
) -> bool:
    """GPipe and 1F1B against zero-bubble (same activations in flight for 1F1B, more for GPipe; bubble
    Σ max(0, f + b − 2w) <= Σ (f + b), `formulas.pipeline`), tp > 1 without sequence parallelism against with
    it (the same bytes through reduce-scatter + all-gather as through all-reduce; norms and dropout split over
    tp: less memory and less memory-bound time)."""
    if d.tp > 1 and not sp:
        return True
    zero_bubble = allowed is None or PipelineSchedule.ZERO_BUBBLE in allowed
    if sched.schedule is PipelineSchedule.GPIPE and (zero_bubble or PipelineSchedule.ONE_F_ONE_B in allowed):
        return d.pp > 1
    return sched.schedule is PipelineSchedule.ONE_F_ONE_B and d.pp > 1 and zero_bubble


def _rules(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> tuple[Problem, ...]:
    """The problem records of `layout` (once per degrees, sharding and offload), the stack's refusal included."""
    found = problems(model, job, layout, cluster)
    try:
        resolve_stack(layout, model.hidden_size)
    except LlmplanError as exc:
        found += (Problem(field="stack", value=layout.stack.value, allowed="", message=str(exc)),)
    return found


def _timed(model, job, layout, cluster, mem, tokens, price) -> RankedLayout:
    t = estimate_time(model, job, layout, cluster)
    cost_usd = gpu_hours = None
    if tokens is not None:
        t, cost = estimate_run(
            t, tokens=tokens, gpus=layout.num_gpus, acc=cluster.accelerator, price_usd_per_gpu_hour=price
        )
        cost_usd, gpu_hours = cost.usd, cost.gpu_hours
    return RankedLayout(layout=layout, job=job, memory=mem, time=t, cost_usd=cost_usd, gpu_hours=gpu_hours)
