"""`llmplan train MODEL`: will this training or fine-tuning job fit, and where does the memory go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmplan.api import train as api_train
from llmplan.api.options import OffloadWhat
from llmplan.breakdown import Term, Unit
from llmplan.cli import options as o
from llmplan.cli import plot as plot_cli
from llmplan.cli import train_command
from llmplan.cli import train_time as tt
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.emit import Target
from llmplan.estimate.error_bands import ErrorBand
from llmplan.estimate.explain import explain_training
from llmplan.estimate.suggest import Suggestion
from llmplan.estimate.training import TrainingEstimate
from llmplan.limits import TIGHT_BYTES, TIGHT_FRACTION
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    AttentionImpl,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PipelineSchedule,
    Precision,
    Recompute,
    Stack,
)
from llmplan.units import MIB


def train(
    ctx: typer.Context,
    model: o.ModelArg,
    method: o.MethodOption = Method.FULL,
    lora_rank: o.LoraRankOption = 8,
    lora_alpha: o.LoraAlphaOption = 16,
    lora_targets: o.LoraTargetsOption = "q_proj,v_proj",
    lora_dropout: o.LoraDropoutOption = 0.0,
    adapter_dtype: o.AdapterDtypeOption = None,
    num_virtual_tokens: o.VirtualTokensOption = 20,
    precision: o.PrecisionOption = Precision.BF16_MIXED,
    optimizer: o.OptimizerOption = Optimizer.ADAMW,
    optimizer_impl: o.OptimizerImplOption = OptimizerImpl.FOREACH,
    micro_batch: o.MicroBatchOption = 1,
    seq_len: o.SeqLenOption = 2048,
    grad_accum: o.GradAccumOption = 1,
    recompute: o.RecomputeOption = Recompute.NONE,
    attention: o.AttentionOption = AttentionImpl.SDPA,
    packing: Annotated[bool, typer.Option("--packing", help="Sample packing into full rows.")] = False,
    chunked_ce: Annotated[
        bool, typer.Option("--chunked-ce", help="Chunked cross-entropy (no full logits).")
    ] = False,
    offload_activations: o.OffloadActivationsOption = False,
    gpu: Annotated[str, typer.Option("--gpu", help="Accelerator id or alias.")] = "h100-sxm-80gb",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs in the job.")] = 1,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node.")] = 8,
    nodes: tt.NodesOption = None,
    cluster_id: tt.ClusterOption = None,
    dp: Annotated[
        int | None, typer.Option("--dp", help="Data parallel (default: gpus / (tp·pp·cp)).")
    ] = None,
    tp: Annotated[int, typer.Option("--tp", help="Tensor parallel.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline parallel.")] = 1,
    cp: Annotated[int, typer.Option("--cp", help="Context parallel.")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="Expert parallel.")] = 1,
    sequence_parallel: Annotated[
        bool, typer.Option("--sequence-parallel", help="Megatron SP (tp > 1).")
    ] = False,
    zero: Annotated[int, typer.Option("--zero", help="DeepSpeed ZeRO stage 0-3.")] = 0,
    fsdp: o.FsdpOption = None,
    stack: o.StackOption = Stack.HF_TRAINER,
    offload: Annotated[OffloadWhat | None, typer.Option("--offload", help="What to offload.")] = None,
    offload_target: Annotated[
        OffloadTarget, typer.Option("--offload-target", help="cpu or nvme.")
    ] = OffloadTarget.CPU,
    pp_schedule: tt.ScheduleOption = PipelineSchedule.ONE_F_ONE_B,
    virtual_stages: tt.VirtualStagesOption = 1,
    tokens: tt.TokensOption = None,
    epochs: tt.EpochsOption = None,
    dataset_tokens: tt.DatasetTokensOption = None,
    price: tt.PriceOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show the arithmetic step by step.")] = False,
    json_out: JsonOption = False,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Read the plan from a DeepSpeed JSON or a peft adapter_config.json."),
    ] = None,
    emit_target: Annotated[
        Target | None, typer.Option("--emit", help="Write the plan's launch config instead (docs/emit.md).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --emit: the file to write (default: stdout).")
    ] = None,
    plot: plot_cli.PlotOption = None,
) -> None:
    """Memory per GPU of a training / fine-tuning job: weights, master weights, gradients, optimizer states,
    activations, logits, temporaries, buffers, overheads; the peak phase, the verdict and what would fit."""
    if from_file is not None:  # the file's values replace the options they set; tips show them as options
        from llmplan.cli import train_from

        given = {k: v for k, v in locals().items() if k not in ("ctx", "train_from")}
        params = train_from.params(from_file, given)
        ctx.params.clear()
        ctx.params.update(params)
        return train(ctx, **params)
    opts = api_train.TrainOptions.of(locals())
    api_train.check(opts)
    plot_cli.check(plot)
    run = api_train.prepare(load_model(model), opts)
    if plot is not None:
        from llmplan.charts import training_charts

        plot_cli.write(plot, training_charts(run.spec, run.job, run.layout, run.cluster))
    if emit_target is not None:
        from llmplan.cli import emit

        emit.write(emit_target, run.spec, run.estimate, run.cluster, out)
        return
    res = api_train.results(run, price, lambda tip: train_command.command(model, ctx.params, tip))
    if json_out:
        print_json(res.out())
        return
    band = res.band
    _print(run.estimate, res.tips, run.cluster, res.tight, band[0] if band else None)
    tt.print_time(res.timing, res.cost, run.network_note)
    if explain:
        _print_explain(explain_training(run.estimate) + ((band[1],) if band else ()))
        tt.print_time_explain(res.timing)


def _print(
    est: TrainingEstimate,
    tips: tuple[tuple[Suggestion, str], ...],
    cluster: Cluster,
    tight: str | None,
    band: ErrorBand | None,
) -> None:
    job, lay, mem = est.job, est.layout, est.memory
    title = (
        f"{est.model} on {est.accelerator}: {job.method.value}, {job.precision.value}, {job.optimizer.value} "
        f"({job.optimizer_impl.value}), {job.micro_batch_size} × {job.seq_len} tokens, recompute "
        f"{job.recompute.value}; dp {lay.dp} tp {lay.tp} pp {lay.pp} cp {lay.cp} ep {lay.ep}, zero "
        f"{lay.sharding_stage} (GiB = 2^30)"
    )
    table = Table(title=title)
    table.add_column(f"per GPU at the peak ({est.peak_phase.value})")
    table.add_column("GiB", justify="right")
    table.add_column("bytes", justify="right")
    rows = [
        ("weights", mem.weights_bytes),
        ("fp32 master weights", mem.master_weights_bytes),
        ("gradients", mem.gradients_bytes),
        ("optimizer states", mem.optimizer_states_bytes),
        ("activations", mem.activations_bytes),
        ("logits and loss", mem.logits_loss_bytes),
        ("temporaries", mem.temporaries_at_peak_bytes),
        ("communication buffers", mem.comm_buffers_bytes),
        ("= allocated (max_memory_allocated)", est.allocated_bytes),
        ("reserved (max_memory_reserved)", est.reserved_bytes),
        ("= device (nvidia-smi)", est.device_bytes),
        ("capacity", est.capacity_bytes),
    ]
    for name, value in rows:
        table.add_row(name, gib(value), f"{value:,}")
    console.print(table)
    phases = ", ".join(f"{p.phase.value} {gib(p.total)}" for p in est.phases)
    console.print(f"phases (allocated GiB, before overheads): {phases}")
    verdict = ("FITS, but tight" if tight else "FITS") if est.fits else "DOES NOT FIT"
    console.print(f"{verdict}: headroom {gib(est.headroom_bytes)} GiB")
    if band is not None:
        console.print(f"device {band.describe(est.device_bytes)}", markup=False)
    if tight:
        console.print(f"warning: {tight}")
    if est.host_bytes or est.nvme_bytes:
        console.print(f"host RAM per GPU {gib(est.host_bytes)} GiB, NVMe per GPU {gib(est.nvme_bytes)} GiB")
    if tips:
        console.print(
            f"what fits instead (re-estimated, none tight: headroom >= {TIGHT_FRACTION:.0%} and "
            f">= {gib(TIGHT_BYTES)} GiB and >= the error band; changes that keep the method first):"
        )
    for tip, command in tips:
        host = f", host RAM {gib(tip.host_bytes)} GiB per GPU" if tip.host_bytes else ""
        console.print(
            f"fits at {gib(tip.device_bytes)} GiB ({gib(tip.saved_bytes)} GiB less{host}) with "
            f"{train_command.describe(tip.changes)}:",
            markup=False,
        )
        console.print(f"  {command}", markup=False, highlight=False)
    if not est.fits and not tips:
        console.print(
            f"no combination of the searched changes fits on {cluster.num_gpus} GPU"
            f"{'s' if cluster.num_gpus > 1 else ''} with "
            "room to spare: more GPUs (--gpus with --zero 3) or a larger GPU"
        )
    _print_stack(est)
    for note in est.notes:
        console.print(f"note: {note}")


def _print_stack(est: TrainingEstimate) -> None:
    """The stack defaults the estimate used (llmplan.stacks), so that no assumption is hidden."""
    st, lay = est.stack, est.layout
    cast = "under autocast (fp32 loss)" if st.autocast else "without autocast"
    loss = "; the stack's own fp32 loss" if st.loss_fp32 else ""
    console.print(
        f"stack {st.stack.value} (--stack; defaults in llmplan.stacks): pure 16-bit weights {cast}{loss}; NCCL "
        f"{st.nccl_bytes_per_communicator // MIB} MiB per communicator; PYTORCH_CUDA_ALLOC_CONF "
        f"{st.alloc_conf or 'PyTorch default'}"
    )
    if lay.fsdp is None and lay.zero > 0:
        console.print(
            f"  DeepSpeed: reduce_bucket_size {st.ds_reduce_bucket_elems:,}, stage3_prefetch_bucket_size "
            f"{st.ds_prefetch_elems:,}, stage3_param_persistence_threshold {st.ds_persistence_threshold_elems:,}, "
            f"stage3_max_live_parameters {st.ds_max_live_elems:,}, sub_group_size {st.ds_sub_group_elems:,}"
        )
    elif lay.fsdp is not None:
        gathers = "bf16 (mixed-precision policy)" if st.fsdp_gather_16bit else "the parameters' dtype"
        console.print(f"  FSDP: {st.fsdp_prefetch_units} unit(s) prefetched, units gathered in {gathers}")
    elif lay.dp * lay.cp > 1:
        copy = "a bucket copy of every gradient" if st.ddp_bucket_copy else "gradients as bucket views"
        console.print(f"  DDP: {copy}")


def _print_explain(steps: tuple[Term, ...]) -> None:
    console.print("[bold]how these numbers were computed[/bold]")
    for i, step in enumerate(steps, 1):
        console.print(f"{i}. [bold]{step.name}[/bold] = {_shown(step)}")
        console.print(f"   {step.formula}")
        for part in step.parts if not step.name.startswith("phase.") else ():
            console.print(f"   - {part.name} = {_shown(part)}: {part.formula}")
        console.print(f"   source: {step.source}")


def _shown(term: Term) -> str:
    if term.unit is Unit.BYTES:
        return f"{int(term.value):,} B ({gib(term.value)} GiB)"
    return f"{int(term.value):,} {term.unit.value}"


def register(app: typer.Typer) -> None:
    app.command()(train)
