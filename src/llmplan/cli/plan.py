"""`llmplan plan MODEL`: search every training layout on a cluster (or several), rank by time and cost."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan import catalog
from llmplan.cli import options as o
from llmplan.cli import plot as plot_cli
from llmplan.cli import train_time as tt
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.cli.train import _cluster
from llmplan.errors import LayoutError, SpecError
from llmplan.loading import load_model
from llmplan.plan.command import train_command
from llmplan.plan.explain import headline
from llmplan.plan.hardware import HardwareOption, choose_hardware
from llmplan.plan.training import Constraints, TrainingPlan
from llmplan.schema.plan import PlanBodyOut, PlanOut
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import AttentionImpl, Method, Optimizer, OptimizerImpl, Precision, Recompute

ANY_GPU = "any"
"""`--gpu any`: every accelerator of a cluster preset (presets carry the network between nodes)."""


def plan(
    model: o.ModelArg,
    method: o.MethodOption = Method.FULL,
    precision: o.PrecisionOption = Precision.BF16_MIXED,
    optimizer: o.OptimizerOption = Optimizer.ADAMW,
    optimizer_impl: o.OptimizerImplOption = OptimizerImpl.FOREACH,
    seq_len: o.SeqLenOption = 2048,
    attention: o.AttentionOption = AttentionImpl.SDPA,
    lora_rank: o.LoraRankOption = 8,
    lora_targets: o.LoraTargetsOption = "q_proj,v_proj",
    global_batch_tokens: Annotated[
        str | None,
        typer.Option(
            "--global-batch-tokens", help="Tokens per optimizer step (4M, 1048576); default about 4M."
        ),
    ] = None,
    gpu: Annotated[
        str, typer.Option("--gpu", help="Accelerator id, a comma list, or 'any' (every preset's GPU).")
    ] = "h100-sxm-80gb",
    gpus: Annotated[str, typer.Option("--gpus", help="GPUs in the job, or a comma list of sizes.")] = "8",
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node.")] = 8,
    nodes: tt.NodesOption = None,
    cluster_id: tt.ClusterOption = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Fix tensor parallel (default: searched).")] = None,
    pp: Annotated[int | None, typer.Option("--pp", help="Fix pipeline parallel.")] = None,
    cp: Annotated[int | None, typer.Option("--cp", help="Fix context parallel.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", help="Fix expert parallel.")] = None,
    no_offload: Annotated[bool, typer.Option("--no-offload", help="Do not search offload.")] = False,
    tokens: tt.TokensOption = None,
    price: tt.PriceOption = None,
    budget_usd: Annotated[
        float | None, typer.Option("--budget-usd", help="Most USD the run may cost (with --tokens).")
    ] = None,
    deadline_days: Annotated[
        float | None, typer.Option("--deadline-days", help="Most days the run may take (with --tokens).")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Layouts to show.")] = 5,
    json_out: JsonOption = False,
    plot: plot_cli.PlotOption = None,
) -> None:
    """Every layout (dp·tp·pp·cp·ep, ZeRO / FSDP, offload, schedule, recompute, micro-batch) of a training job
    on a cluster: validated, memory-checked, timed and ranked by time to train and cost."""
    o.check_options(lora_rank=lora_rank, seq_len=seq_len, gpus_per_node=gpus_per_node)
    if not 1 <= top <= 1000:
        raise SpecError("top", f"{top} is out of range (allowed: 1 to 1000)")
    for name, value in (("budget_usd", budget_usd), ("deadline_days", deadline_days)):
        if value is not None and not value > 0:
            raise SpecError(name, f"{value!r} (allowed: a positive number)")
    plot_cli.check(plot)
    spec = load_model(model)
    job = o.training_job(
        method=method, precision=precision, optimizer=optimizer, optimizer_impl=optimizer_impl,
        micro_batch=1, seq_len=seq_len, grad_accum=1, recompute=Recompute.NONE, attention=attention,
        lora_rank=lora_rank, lora_alpha=2 * lora_rank, lora_targets=lora_targets, num_virtual_tokens=20,
    )  # fmt: skip
    run_tokens = tt.parse_tokens(tokens) if tokens is not None else None
    batch = (
        None
        if global_batch_tokens is None
        else int(tt.parse_tokens(global_batch_tokens, "global_batch_tokens"))
    )
    clusters = _clusters(gpu, gpus, gpus_per_node, nodes, cluster_id)
    _check_fixed(tp, pp, cp, [c for c, _ in clusters])
    constraints = Constraints(tp=tp, pp=pp, cp=cp, ep=ep, offload=not no_offload)
    choice = choose_hardware(
        spec, job, [c for c, _ in clusters], global_batch_tokens=batch, tokens=run_tokens,
        price_usd_per_gpu_hour=price, budget_usd=budget_usd,
        deadline_s=None if deadline_days is None else deadline_days * 86400, constraints=constraints,
        top=top,
    )  # fmt: skip
    args = {id(c): a for c, a in clusters}
    bodies = []
    for opt in choice.options:
        bodies.append(_body(model, opt, args[id(opt.cluster)], top))
    chosen = choice.fastest
    if chosen is None:
        raise _nothing(spec.name, choice.options, budget_usd, deadline_days)
    chosen_plan = chosen.plan
    if plot is not None:
        from llmplan.charts import plan_charts

        plot_cli.write(plot, plan_charts(choice, chosen))
    body = bodies[choice.options.index(chosen)]
    several = len(choice.options) > 1
    if json_out:
        print_json(
            PlanOut(
                model=spec.name,
                plan=body,
                options=tuple(bodies) if several else (),
                fastest=_name(choice.fastest) if several else None,
                cheapest=_name(choice.cheapest) if several else None,
                pareto=tuple(_name(p) for p in choice.pareto) if several else (),
            )  # fmt: skip
        )
        return
    if several:
        _print_options(choice)
    _print_plan(spec.name, chosen_plan, body)


def _name(opt: HardwareOption | None) -> str | None:
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
            c = tt.preset_cluster(cluster_id, n, nodes)
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
            total = tt.total_gpus(n, nodes, gpus_per_node)
            cluster, _ = tt.cluster_network(_cluster(acc, total, gpus_per_node))
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
    where = ", ".join(_name(opt) or "" for opt in options)
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


def _print_options(choice) -> None:
    table = Table(title="hardware options (best layout of each)")
    for col in ("option", "best layout", "step s", "days", "USD", "MFU"):
        table.add_column(col, justify="right" if col not in ("option", "best layout") else "left")
    for opt in choice.options:
        b = opt.best
        if b is None:
            table.add_row(_name(opt), "no layout fits", "", "", "", "")
            continue
        table.add_row(
            _name(opt), _shape(b.layout, b.job), f"{b.step_s:.3f}",
            "" if b.time_to_train_s is None else f"{b.time_to_train_s / 86400:,.2f}",
            "" if b.cost_usd is None else f"{b.cost_usd:,.0f}", f"{b.time.mfu:.1%}",
        )  # fmt: skip
    console.print(table)
    console.print(f"fastest: {_name(choice.fastest)}; cheapest: {_name(choice.cheapest)}")
    console.print(f"Pareto front (time vs cost): {', '.join(_name(p) or '' for p in choice.pareto)}")


def _shape(lay, job) -> str:
    shard = f"fsdp {lay.fsdp.value}" if lay.fsdp else f"zero {int(lay.zero)}"
    extra = " sp" if lay.sequence_parallel else ""
    if lay.pp > 1:
        extra += f" {lay.pp_schedule.value}" + (
            f"×{lay.pp_virtual_stages}" if lay.pp_virtual_stages > 1 else ""
        )
    off = lay.offload_params if lay.offload_params.value != "none" else lay.offload_optimizer
    extra += f" offload {off.value}" if off.value != "none" else ""
    return (
        f"dp{lay.dp} tp{lay.tp} pp{lay.pp} cp{lay.cp} ep{lay.ep} {shard} ({lay.stack.value}){extra}; "
        f"mb {job.micro_batch_size} × ga {job.grad_accum_steps}, recompute {job.recompute.value}"
    )


def _print_plan(model: str, p: TrainingPlan, body: PlanBodyOut) -> None:
    k = p.counts
    acc = p.cluster.accelerator
    title = (
        f"{model} on {p.cluster.num_gpus} × {acc.name}: {p.global_batch_seqs} × {p.seq_len} tokens per step "
        f"(GiB = 2^30)"
    )
    table = Table(title=title)
    for col in ("#", "layout", "step s", "days", "USD", "MFU", "GiB/GPU", "why"):
        table.add_column(col, justify="left" if col in ("layout", "why") else "right")
    for i, r in enumerate(p.layouts, 1):
        table.add_row(
            str(i), _shape(r.layout, r.job), f"{r.step_s:.3f}",
            "" if r.time_to_train_s is None else f"{r.time_to_train_s / 86400:,.2f}",
            "" if r.cost_usd is None else f"{r.cost_usd:,.0f}", f"{r.time.mfu:.1%}",
            gib(r.memory.device_bytes), headline(r.why),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"searched {k.searched:,} layouts in {p.elapsed_s:.2f} s: {k.invalid:,} break a rule, "
        f"{k.pruned_memory:,} do not fit, {k.dominated:,} dominated (never faster than one timed), "
        f"{k.estimated:,} estimated in full, {k.feasible:,} fit"
    )
    for i, lay in enumerate(body.layouts, 1):
        console.print(f"#{i}: {lay.command}")


def register(app: typer.Typer) -> None:
    app.command()(plan)
