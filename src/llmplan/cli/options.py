"""Options shared by the subcommands: the model argument, the training-job and layout options (train, trace,
measure) as typer options; their bounds and the functions that turn them into a TrainingJob and a Layout
live in `llmplan.api.options`, shared with the web API."""

from __future__ import annotations

from typing import Annotated

import typer

from llmplan.api.options import (  # noqa: F401 (the subcommands use them as `options.NAME`)
    OPTION_BOUNDS,
    check_options,
    layout,
    lora_target_names,
    option_name,
    option_problems,
    training_job,
    zero_stage,
)
from llmplan.specs.training import (
    AdapterDtype,
    AttentionImpl,
    FsdpStrategy,
    Method,
    Optimizer,
    OptimizerImpl,
    Precision,
    Recompute,
    Stack,
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
SeqLenOption = Annotated[int, typer.Option("--seq-len", "--seq", help="Tokens per sequence.")]
GradAccumOption = Annotated[int, typer.Option("--grad-accum", help="Gradient accumulation steps.")]
RecomputeOption = Annotated[Recompute, typer.Option("--recompute", help="Activation recomputation.")]
AttentionOption = Annotated[AttentionImpl, typer.Option("--attention", help="Attention kernel.")]
LoraRankOption = Annotated[int, typer.Option("--lora-rank", help="LoRA / QLoRA / DoRA rank r.")]
LoraAlphaOption = Annotated[float, typer.Option("--lora-alpha", help="LoRA alpha.")]
LoraTargetsOption = Annotated[
    str, typer.Option("--lora-targets", help="Comma-separated module names, or all-linear.")
]
LoraDropoutOption = Annotated[
    float, typer.Option("--lora-dropout", help="Dropout on the LoRA adapter input (peft's lora_dropout).")
]
AdapterDtypeOption = Annotated[
    AdapterDtype | None,
    typer.Option(
        "--adapter-dtype",
        help="Adapter weights, grads and optimizer states (default: the stack's; peft-based stacks fp32, "
        "torchtune bf16).",
    ),
]
OffloadActivationsOption = Annotated[
    bool,
    typer.Option(
        "--offload-activations",
        help="Saved activations to host RAM during forward, one layer kept (torchtune / Megatron offload; with "
        "--recompute full: unsloth's offloaded checkpoints).",
    ),
]
VirtualTokensOption = Annotated[
    int,
    typer.Option(
        "--num-virtual-tokens", help="Prefix / prompt / p-tuning length (peft's num_virtual_tokens)."
    ),
]
BatchOption = Annotated[
    int, typer.Option("--batch", "--concurrency", help="Inference: sequences prefilled and decoded together.")
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
