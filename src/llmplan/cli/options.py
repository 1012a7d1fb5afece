"""Options shared by the subcommands: the model argument, the training-job and layout options (train, trace,
measure), and the functions that turn them into a TrainingJob and a Layout."""

from __future__ import annotations

from typing import Annotated

import typer

from llmplan import limits
from llmplan.errors import Problem, SpecError, raise_problems
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


OPTION_BOUNDS: dict[str, limits.Bound] = {
    "micro_batch": limits.MICRO_BATCH,
    "seq_len": limits.SEQ_LEN,
    "grad_accum": limits.GRAD_ACCUM,
    "lora_rank": limits.LORA_RANK,
    "lora_alpha": limits.LORA_ALPHA,
    "num_virtual_tokens": limits.VIRTUAL_TOKENS,
    "lora_dropout": limits.LORA_DROPOUT,
    "gpus": limits.GPUS,
    "gpus_per_node": limits.GPUS_PER_NODE,
    "dp": limits.DEGREE,
    "tp": limits.DEGREE,
    "pp": limits.DEGREE,
    "cp": limits.DEGREE,
    "ep": limits.DEGREE,
    "context": limits.POSITIONS,
    "prompt": limits.POSITIONS,
    "batch": limits.BATCH,
    "decode_steps": limits.DECODE_STEPS,
    "gpu_memory_utilization": limits.GPU_MEMORY_UTILIZATION,
    "max_num_batched_tokens": limits.BATCHED_TOKENS,
    "max_num_seqs": limits.MAX_NUM_SEQS,
    "absmax": limits.ABSMAX,
    "value": limits.FORMAT_VALUE,
    "min_b": limits.BILLIONS,
    "num_requests": limits.NUM_REQUESTS,
    "price": limits.PRICE,
    "nodes": limits.GPUS,
    "virtual_stages": limits.VIRTUAL_STAGES,
    "max_b": limits.BILLIONS,
}
"""The bound of each numeric option, by its parameter name (`docs/limits.md` lists them with the reasons)."""


def option_name(name: str) -> str:
    """`micro_batch` -> `--micro-batch`; a positional argument keeps its name."""
    return name.upper() if name == "value" else "--" + name.replace("_", "-")


def option_problems(**values: object) -> list[Problem]:
    """Every option of `values` (parameter name -> value; None = not given) outside its bound, plus the
    choices: `zero` (ZeRO stages), `block_size` (vLLM block sizes), `group_size` (-1 or a bound)."""
    out: list[Problem] = []
    for name, value in values.items():
        if value is None:
            continue
        field = option_name(name)
        if name == "zero":
            found = limits.choice_problem(field, value, limits.ZERO_STAGES, "is not a ZeRO stage")
        elif name == "block_size":
            found = limits.choice_problem(field, value, limits.VLLM_BLOCK_SIZES, "is not a vLLM block size")
        elif name == "group_size":
            found = None if value == -1 else limits.GROUP_SIZE.problem(field, value)
            if found is not None:
                found = Problem.of(field, value, f"-1 or {limits.GROUP_SIZE.allowed}", "is out of range")
        else:
            found = OPTION_BOUNDS[name].problem(field, value)
        if found is not None:
            out.append(found)
    return out


def check_options(**values: object) -> None:
    """Raise InvalidInputError with every option outside its bound (see `option_problems`)."""
    raise_problems(option_problems(**values))


def lora_target_names(lora_targets: str) -> tuple[str, ...]:
    """`--lora-targets q_proj, v_proj` -> ("q_proj", "v_proj"); SpecError for names that cannot be modules."""
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    for target in targets:
        if not target.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise SpecError(
                "--lora-targets",
                f"{target!r} is not a module name (allowed: names such as q_proj, v_proj, or all-linear)",
            )
    return targets


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
    num_virtual_tokens: int,
    packing: bool = False,
    chunked_ce: bool = False,
    lora_dropout: float = 0.0,
) -> TrainingJob:
    """The TrainingJob the options describe."""
    targets = lora_target_names(lora_targets)
    peft = PeftSpec(
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_targets=targets,
        lora_dropout=lora_dropout,
        num_virtual_tokens=num_virtual_tokens,
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
