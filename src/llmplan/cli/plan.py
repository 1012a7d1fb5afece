"""`llmplan plan MODEL`: search every training layout on a cluster (or several), rank by time and cost."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan.api import plan as api_plan
from llmplan.api.plan import hardware_name
from llmplan.cli import options as o
from llmplan.cli import plot as plot_cli
from llmplan.cli import train_time as tt
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.loading import load_model
from llmplan.plan.explain import headline
from llmplan.plan.training import TrainingPlan
from llmplan.schema.plan import PlanBodyOut
from llmplan.specs.training import AttentionImpl, Method, Optimizer, OptimizerImpl, Precision


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
    plot_cli.check(plot)
    res = api_plan.plan(lambda: load_model(model), api_plan.PlanOptions.of(locals()), model)
    choice, chosen_plan, body = res.choice, res.chosen.plan, res.body
    if plot is not None:
        from llmplan.charts import plan_charts

        plot_cli.write(plot, plan_charts(choice, res.chosen))
    several = len(choice.options) > 1
    if json_out:
        print_json(res.out)
        return
    if several:
        _print_options(choice)
    _print_plan(res.spec.name, chosen_plan, body)


def _print_options(choice) -> None:
    table = Table(title="hardware options (best layout of each)")
    for col in ("option", "best layout", "step s", "days", "USD", "MFU"):
        table.add_column(col, justify="right" if col not in ("option", "best layout") else "left")
    for opt in choice.options:
        b = opt.best
        if b is None:
            table.add_row(hardware_name(opt), "no layout fits", "", "", "", "")
            continue
        table.add_row(
            hardware_name(opt), _shape(b.layout, b.job), f"{b.step_s:.3f}",
            "" if b.time_to_train_s is None else f"{b.time_to_train_s / 86400:,.2f}",
            "" if b.cost_usd is None else f"{b.cost_usd:,.0f}", f"{b.time.mfu:.1%}",
        )  # fmt: skip
    console.print(table)
    console.print(f"fastest: {hardware_name(choice.fastest)}; cheapest: {hardware_name(choice.cheapest)}")
    console.print(f"Pareto front (time vs cost): {', '.join(hardware_name(p) or '' for p in choice.pareto)}")


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
