"""Checks that a training job can run on a layout and a cluster; each failure names the constraint.

Conventions chosen here:
- kv heads and tp: tp must divide the attention heads; for kv heads either tp divides them or, when tp is
  larger, they divide tp and each kv head is replicated tp / kv_heads times (Megatron-Core and vLLM replicate
  kv heads this way; `formulas.parallel.tensor.shard_linear` counts the replicas).
- dp · tp · pp · cp must equal the cluster's GPUs; ep must divide the routed experts and dp · cp · tp (expert
  parallel ranks are taken from those groups, Megatron-Core `initialize_model_parallel`).
- Optimizer offload runs DeepSpeed's CPU Adam (ZeRO-Offload), so it needs ZeRO >= 1 and an optimizer that CPU
  Adam / Adagrad / Lion implement, not a bitsandbytes one; FSDP offloads parameters, gradients and the step
  together (`CPUOffload(offload_params=True)`), never the optimizer alone.
- QLoRA computes in 16 or 32 bits with an NF4 base: fp8 GEMMs cannot read NF4 weights.
- The optimizer step in backward cannot accumulate gradients (each is freed after its update).
"""

from __future__ import annotations

from llmplan.errors import LayoutError, SpecError
from llmplan.formulas.model_states import memo_by_model
from llmplan.formulas.parallel.tensor import HEAD_ROLES
from llmplan.formulas.peft import trainable_params
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec, TpSplit
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    Precision,
    TrainingJob,
)

_BNB = (Optimizer.ADAM8BIT, Optimizer.PAGED_ADAMW, Optimizer.PAGED_ADAMW_8BIT)
_BF16 = (Precision.BF16, Precision.BF16_MIXED, Precision.AMP_BF16)


def validate_layout(model: ModelSpec, layout: Layout, cluster: Cluster) -> None:
    """Raise LayoutError when `layout` cannot run `model` on `cluster`."""
    gpus = cluster.num_gpus
    if layout.num_gpus != gpus:
        raise LayoutError(
            f"layout: dp·tp·pp·cp = {layout.dp}·{layout.tp}·{layout.pp}·{layout.cp} = {layout.num_gpus} "
            f"but the cluster has {gpus} GPUs (they must be equal)"
        )
    heads, kv, tp = model.num_attention_heads, model.num_key_value_heads, layout.tp
    if heads % tp:
        raise LayoutError(f"tp: {tp} does not divide the {heads} attention heads of {model.name}")
    if kv % tp and tp % kv:
        raise LayoutError(
            f"tp: {tp} and the {kv} kv heads of {model.name}: tp must divide the kv heads, or the kv heads "
            "divide tp (then each is replicated)"
        )
    if tp > 1:
        for name, split, dim in memo_by_model(_split_widths, model):
            if dim % tp:
                raise LayoutError(f"tp: {tp} does not divide {name}'s {split}-split width {dim}")
    if layout.pp > model.num_hidden_layers:
        raise LayoutError(f"pp: {layout.pp} stages > the {model.num_hidden_layers} layers of {model.name}")
    if layout.ep > 1:
        if model.moe is None:
            raise LayoutError(f"ep: {layout.ep} > 1 but {model.name} has no experts (allowed: ep = 1)")
        if model.moe.num_experts % layout.ep:
            raise LayoutError(
                f"ep: {layout.ep} does not divide the {model.moe.num_experts} experts of {model.name}"
            )
        group = layout.dp * layout.cp * layout.tp
        if group % layout.ep:
            raise LayoutError(
                f"ep: {layout.ep} does not divide dp·cp·tp = {group} (experts live on those ranks)"
            )


def _split_widths(model: ModelSpec) -> tuple[tuple[str, str, int], ...]:
    """(name, split, width) of every distinct tp-split linear but k/v (whose heads may be replicated)."""
    out: dict[tuple[str, str, int], None] = {}
    for block in model.block_kinds:
        for lin in block.linears:
            if lin.role in HEAD_ROLES or lin.tp is TpSplit.REPLICATED:
                continue
            dim = lin.out_features if lin.tp is TpSplit.COLUMN else lin.in_features
            out[(lin.name, lin.tp.value, dim)] = None
    return tuple(out)


def validate_job(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> None:
    """Raise SpecError when the method, optimizer or precision cannot be used together or on the GPU."""
    acc = cluster.accelerator
    if job.precision is Precision.FP8_MIXED and not acc.supports("fp8"):
        raise SpecError(
            "precision", f"fp8-mixed needs fp8 tensor cores; {acc.name} has none (allowed: bf16-mixed)"
        )
    if job.precision in _BF16 and not acc.supports("bf16"):
        raise SpecError(
            "precision",
            f"{job.precision.value} needs bf16 support; {acc.name} has none (allowed: fp16-mixed, fp32)",
        )
    if job.method is Method.QLORA and job.precision is Precision.FP8_MIXED:
        raise SpecError(
            "precision", "qlora computes on an NF4 base, fp8 GEMMs cannot read it (allowed: bf16-mixed)"
        )
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD and job.grad_accum_steps > 1:
        raise SpecError(
            "optimizer_impl",
            f"in-backward frees each gradient after its update, so grad_accum {job.grad_accum_steps} cannot "
            "accumulate (allowed: grad_accum 1, or foreach / fused / for-loop)",
        )
    if layout.offload_optimizer is not OffloadTarget.NONE:
        if layout.fsdp is not None:
            raise SpecError(
                "offload_optimizer",
                "FSDP offloads parameters, gradients and the step together (allowed: --offload params or "
                "both)",
            )
        if layout.sharding_stage < 1:
            raise SpecError(
                "offload_optimizer", "ZeRO-Offload needs ZeRO stage >= 1 (allowed: --zero 1, 2 or 3)"
            )
        if job.optimizer in _BNB:
            raise SpecError(
                "optimizer",
                f"{job.optimizer.value} is a bitsandbytes CUDA optimizer; an offloaded step runs "
                f"DeepSpeed's CPU "
                "Adam (allowed with offload: adamw, sgd, sgd-momentum, lion, adafactor)",
            )
    if layout.fsdp is FsdpStrategy.NO_SHARD and layout.offload_params is not OffloadTarget.NONE:
        raise SpecError("offload_params", "needs sharded parameters (allowed: --fsdp full-shard or --zero 3)")
    if job.seq_len % layout.cp:
        raise SpecError(
            "seq_len", f"{job.seq_len} is not divisible by cp {layout.cp} (context parallel splits it)"
        )


def validate_training(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> None:
    """All checks: the layout against the model and cluster, then the job, then the method's targets
    (`formulas.peft.trainable_params` raises for a LoRA target the model lacks)."""
    validate_layout(model, layout, cluster)
    validate_job(model, job, layout, cluster)
    trainable_params(model, job)
