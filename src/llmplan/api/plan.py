"""`llmplan plan` as a function: option values -> every layout searched on each cluster asked for, ranked, and
the `--json` document (`schema.PlanOut`). The CLI (`cli/plan.py`) and the web API both call it.

`PlanOptions` holds the options under the CLI's parameter names; their defaults are the CLI's (`cli/plan.py`
declares them once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from llmplan import catalog
from llmplan.api import options as o
from llmplan.api.options import node_cluster
from llmplan.errors import LayoutError, SpecError
from llmplan.plan.command import train_command
from llmplan.plan.hardware import HardwareChoice, HardwareOption, choose_hardware
from llmplan.plan.training import Constraints
from llmplan.schema.plan import PlanBodyOut, PlanOut
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import AttentionImpl, Method, Optimizer, OptimizerImpl, Precision, Recompute
from llmplan.units import gib

ANY_GPU = "any"
"""`--gpu any`: every accelerator of a cluster preset (presets carry the network between nodes)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanOptions:
    """The options of `llmplan plan` (names of `cli.plan.plan`'s parameters)."""

    method: Method
    precision: Precision
    optimizer: Optimizer
    optimizer_impl: OptimizerImpl
    seq_len: int
    attention: AttentionImpl
    lora_rank: int
    lora_targets: str
    global_batch_tokens: str | None
    gpu: str
    gpus: str
    gpus_per_node: int
    nodes: int | None
    cluster_id: str | None
    tp: int | None
    pp: int | None
    cp: int | None
    ep: int | None
    no_offload: bool
    tokens: str | None
    price: float | None
    budget_usd: float | None
    deadline_days: float | None
    top: int

    @classmethod
    def of(cls, values: dict[str, object]) -> PlanOptions:
        """The options among `values` (a command's parameters; other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanResult:
    """The hardware choice, the option chosen (the fastest) and the `--json` document."""

    spec: ModelSpec
    choice: HardwareChoice
    chosen: HardwareOption
    body: PlanBodyOut
    out: PlanOut


def check(opts: PlanOptions) -> None:
    """The bounded options inside their bounds."""
    o.check_options(lora_rank=opts.lora_rank, seq_len=opts.seq_len, gpus_per_node=opts.gpus_per_node)
    if not 1 <= opts.top <= 1000:
        raise SpecError("top", f"{opts.top} is out of range (allowed: 1 to 1000)")
    for name, value in (("budget_usd", opts.budget_usd), ("deadline_days", opts.deadline_days)):
        if value is not None and not value > 0:
            raise SpecError(name, f"{value!r} (allowed: a positive number)")


def plan(load: Callable[[], ModelSpec], opts: PlanOptions, model_ref: str) -> PlanResult:
    """`llmplan plan` without its printing: check the options, load the model (`load`), search every cluster;
    `model_ref` is the model as the reproducing `llmplan train` commands name it. LayoutError when nothing
    fits (or nothing meets the budget / deadline)."""
    check(opts)
    spec = load()
    job = o.training_job(
        method=opts.method, precision=opts.precision, optimizer=opts.optimizer,
        optimizer_impl=opts.optimizer_impl, micro_batch=1, seq_len=opts.seq_len, grad_accum=1,
        recompute=Recompute.NONE, attention=opts.attention, lora_rank=opts.lora_rank,
        lora_alpha=2 * opts.lora_rank, lora_targets=opts.lora_targets, num_virtual_tokens=20,
    )  # fmt: skip
    run_tokens = o.parse_tokens(opts.tokens) if opts.tokens is not None else None
    batch = (
        None
        if opts.global_batch_tokens is None
        else int(o.parse_tokens(opts.global_batch_tokens, "global_batch_tokens"))
    )
    clusters = _clusters(opts.gpu, opts.gpus, opts.gpus_per_node, opts.nodes, opts.cluster_id)
    _check_fixed(opts.tp, opts.pp, opts.cp, [c for c, _ in clusters])
    constraints = Constraints(tp=opts.tp, pp=opts.pp, cp=opts.cp, ep=opts.ep, offload=not opts.no_offload)
    deadline = None if opts.deadline_days is None else opts.deadline_days * 86400
    choice = choose_hardware(
        spec, job, [c for c, _ in clusters], global_batch_tokens=batch, tokens=run_tokens,
        price_usd_per_gpu_hour=opts.price, budget_usd=opts.budget_usd, deadline_s=deadline,
        constraints=constraints, top=opts.top,
    )  # fmt: skip
    args = {id(c): a for c, a in clusters}
    bodies = [_body(model_ref, opt, args[id(opt.cluster)], opts.top) for opt in choice.options]
    chosen = choice.fastest
    if chosen is None:
        raise _nothing(spec.name, choice.options, opts.budget_usd, opts.deadline_days)
    body = bodies[choice.options.index(chosen)]
    several = len(choice.options) > 1
    out = PlanOut(
        model=spec.name,
        plan=body,
        options=tuple(bodies) if several else (),
        fastest=hardware_name(choice.fastest) if several else None,
        cheapest=hardware_name(choice.cheapest) if several else None,
        pareto=tuple(hardware_name(p) for p in choice.pareto) if several else (),
    )
    return PlanResult(spec=spec, choice=choice, chosen=chosen, body=body, out=out)


def hardware_name(opt: HardwareOption | None) -> str | None:
    return None if opt is None else f"{opt.cluster.accelerator.id} x {opt.cluster.num_gpus}"


def _sizes(gpus: str) -> list[int]:
    out = []
    for part in gpus.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise SpecError(
                "gpus", f"{gpus!r} (allowed: a GPU count or a comma list of counts, e.g. 8,16,64)"
            )
        out.append(int(part))
    return out


def _clusters(gpu, gpus, gpus_per_node, nodes, cluster_id) -> list[tuple[Cluster, tuple[str, ...]]]:
    """(cluster, the `llmplan train` options that select it) for every GPU and size asked for."""
    sizes = _sizes(gpus)
    if cluster_id is not None:
        if gpu != "h100-sxm-80gb":
            raise SpecError("gpu", f"--gpu {gpu} contradicts --cluster {cluster_id} (give one of them)")
        out = []
        for n in sizes:
            c = o.preset_cluster(cluster_id, n, nodes)
            args = ("--cluster", cluster_id, "--gpus", str(c.num_gpus))
            out.append((c, args))
        return out
    if gpu.strip().lower() == ANY_GPU:
        ids = list(dict.fromkeys(c.accelerator.id for c in catalog.clusters()))
    else:
        ids = [catalog.accelerator(g.strip()).id for g in gpu.split(",")]
    out = []
    for acc_id in ids:
        acc = catalog.accelerator(acc_id)
        for n in sizes:
            total = o.total_gpus(n, nodes, gpus_per_node)
            cluster, _ = o.cluster_network(node_cluster(acc, total, gpus_per_node))
            args = ("--gpu", acc_id, "--gpus", str(total), "--gpus-per-node", str(gpus_per_node))
            out.append((cluster, args))
    return out


def _check_fixed(tp, pp, cp, clusters: list[Cluster]) -> None:
    fixed = (tp or 1) * (pp or 1) * (cp or 1)
    for c in clusters:
        if c.num_gpus % fixed:
            raise LayoutError(
                f"tp: --tp {tp or 1} × --pp {pp or 1} × --cp {cp or 1} = {fixed} does not divide the {c.num_gpus} "
                f"GPUs (allowed: degrees whose product divides {c.num_gpus})"
            )


def _nothing(model: str, options: tuple[HardwareOption, ...], budget, deadline) -> LayoutError:
    fitting = [opt for opt in options if opt.best is not None]
    if fitting:
        b = min(fitting, key=lambda opt: opt.best.cost_usd or 0.0).best
        shown = f"the cheapest fitting option costs {b.cost_usd or 0:,.0f} USD"
        days = min(opt.best.time_to_train_s or 0 for opt in fitting) / 86400
        return LayoutError(
            f"budget_usd: no option meets --budget-usd {budget} and --deadline-days {deadline}: {shown}, the "
            f"fastest takes {days:,.2f} days (allowed: a larger budget or a later deadline)"
        )
    near = [opt.plan.closest for opt in options if opt.plan.closest is not None]
    where = ", ".join(hardware_name(opt) or "" for opt in options)
    if not near:
        reasons = {p.field: p for opt in options for p in opt.plan.invalid_reasons}
        return LayoutError(
            f"layout: no valid layout of {model} on {where}: "
            + "; ".join(str(p) for p in list(reasons.values())[:3])
        )
    c = min(near, key=lambda n: n.short_bytes)
    lay, job = c.layout, c.job
    shape = (
        f"dp {lay.dp} tp {lay.tp} pp {lay.pp} cp {lay.cp}, {lay.fsdp.value if lay.fsdp else f'zero {int(lay.zero)}'}, "
        f"micro-batch {job.micro_batch_size}, recompute {job.recompute.value}"
    )
    return LayoutError(
        f"gpus: no layout of {model} fits on {where}: the closest ({shape}) needs {'at least ' if c.bound else ''}{gib(c.device_bytes)} GiB per GPU, "
        f"{gib(c.short_bytes)} GiB over the {gib(c.capacity_bytes)} GiB (allowed: more GPUs, or GPUs with more "
        "memory)"
    )


def _body(model_ref: str, opt: HardwareOption, args: tuple[str, ...], top: int) -> PlanBodyOut:
    commands = tuple(train_command(model_ref, r.job, r.layout, args) for r in opt.plan.layouts[:top])
    return PlanBodyOut.of(opt.plan, commands)
