"""Options shared by the subcommands: the model argument, the training-job and layout options (train, trace,
measure), and the functions that turn them into a TrainingJob and a Layout."""

from __future__ import annotations

from typing import Annotated

import typer

from llmplan.errors import SpecError
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    Method,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
    ZeroStage,
)

ModelArg = Annotated[
    str, typer.Argument(help="Catalog id (llama-2-7b), a config.json or model folder, or org/name.")
]
MethodOption = Annotated[Method, typer.Option("--method", help="What is trained.")]
PrecisionOption = Annotated[Precision, typer.Option("--precision", help="Weight and compute precision.")]
OptimizerOption = Annotated[Optimizer, typer.Option("--optimizer", help="Optimizer.")]
OptimizerImplOption = Annotated[
    OptimizerImpl,
    typer.Option("--optimizer-impl", help="foreach (CUDA default), fused, for-loop, in-backward."),
]
MicroBatchOption = Annotated[int, typer.Option("--micro-batch", help="Sequences per GPU per step.")]
SeqLenOption = Annotated[int, typer.Option("--seq", "--seq-len", help="Tokens per sequence.")]
GradAccumOption = Annotated[int, typer.Option("--grad-accum", help="Gradient accumulation steps.")]
RecomputeOption = Annotated[Recompute, typer.Option("--recompute", help="Activation recomputation.")]
AttentionOption = Annotated[AttentionImpl, typer.Option("--attention", help="Attention kernel.")]
LoraRankOption = Annotated[int, typer.Option("--lora-rank", help="LoRA / QLoRA / DoRA rank r.")]
LoraAlphaOption = Annotated[float, typer.Option("--lora-alpha", help="LoRA alpha.")]
LoraTargetsOption = Annotated[
    str, typer.Option("--lora-targets", help="Comma-separated module names, or all-linear.")
]
VirtualTokensOption = Annotated[
    int, typer.Option("--virtual-tokens", help="Prefix / prompt / p-tuning length.")
]
DpOption = Annotated[int, typer.Option("--dp", help="Data-parallel degree.")]
TpOption = Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")]
PpOption = Annotated[int, typer.Option("--pp", help="Pipeline-parallel degree.")]
ZeroOption = Annotated[int, typer.Option("--zero", help="DeepSpeed ZeRO stage (0-3).")]
StackOption = Annotated[
    Stack,
    typer.Option("--stack", help="Training software; its defaults (buckets, autocast, NCCL) are printed."),
]
FsdpOption = Annotated[FsdpStrategy | None, typer.Option("--fsdp", help="FSDP sharding strategy.")]


def training_job(
    *,
    method: Method,
    precision: Precision,
    optimizer: Optimizer,
    optimizer_impl: OptimizerImpl,
    micro_batch: int,
    seq_len: int,
    grad_accum: int,
    recompute: Recompute,
    attention: AttentionImpl,
    lora_rank: int,
    lora_alpha: float,
    lora_targets: str,
    virtual_tokens: int,
    packing: bool = False,
    chunked_ce: bool = False,
) -> TrainingJob:
    """The TrainingJob the options describe."""
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    peft = PeftSpec(
        lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=targets, num_virtual_tokens=virtual_tokens
    )
    return TrainingJob(
        method=method,
        precision=precision,
        optimizer=optimizer,
        optimizer_impl=optimizer_impl,
        micro_batch_size=micro_batch,
        seq_len=seq_len,
        grad_accum_steps=grad_accum,
        recompute=recompute,
        attention=attention,
        packing=packing,
        chunked_ce=chunked_ce,
        peft=peft,
    )


def zero_stage(zero: int) -> ZeroStage:
    """The ZeroStage of `--zero`; SpecError for a number that is not a stage."""
    try:
        return ZeroStage(zero)
    except ValueError:
        raise SpecError("zero", f"{zero} is not a ZeRO stage (allowed: 0, 1, 2, 3)") from None


def layout(*, dp: int, tp: int, pp: int, zero: int, fsdp: FsdpStrategy | None) -> Layout:
    """The Layout the options describe."""
    return Layout(dp=dp, tp=tp, pp=pp, zero=zero_stage(zero), fsdp=fsdp)
