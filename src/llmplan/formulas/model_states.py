"""Model states per GPU: weights, fp32 master weights, gradients, optimizer states and the optimizer step's
temporaries, with tensor / pipeline / expert splits, ZeRO / FSDP sharding and offload.

Accounting (Rajbhandari et al. 2020, "ZeRO", section 3.1 and figure 1): mixed-precision Adam keeps 2 bytes of
weights, 2 bytes of gradients and K = 12 bytes of optimizer state (fp32 master copy 4 + momentum 4 + variance
4) per trainable parameter: 16 bytes. Here the master copy is its own term (`master_weights_bytes`), and the
bytes per element follow the precision:

| precision | weights | grads | master | optimizer states |
|---|---|---|---|---|
| fp32, amp-bf16 (autocast over fp32 weights) | 4 | 4 | 0 | 4 per state |
| fp16-mixed, bf16-mixed, fp8-mixed | 2 | 2 | 4 | 4 per state |
| bf16, fp16 (pure) | 2 | 2 | 0 | 2 per state (torch creates states like the parameter) |

States per trainable element and the step's temporaries: `formulas.optimizer`.

PEFT: adapters are kept in `job.peft.adapter_dtype` (peft 0.21 `autocast_adapter_dtype=True`: fp32 whatever
the base dtype; the stack's default fills it, `llmplan.stacks`), so their weights, gradients and states take
a = 4 (fp32) or 2 (bf16 / fp16) bytes each — torch's optimizers create their states like the parameter; fp32
adapters need no master copy, 16-bit adapters under a master-weight precision (bf16-mixed: DeepSpeed's bf16
engine casts the whole module, adapters included, and keeps fp32 masters) get fp32 masters and states. QLoRA: the frozen linears of the
decoder blocks are NF4 (`formulas.quant.linear_weight_bytes`: 0.5 byte per weight + uint8 absmax per 64 + fp32
per 256 absmax blocks under double quantization, Dettmers et al. 2023 section 3, ≈ 0.127 bit per weight of
constants); embeddings, lm_head, norms, biases and routers stay in the 16-bit compute dtype.

Splits (one module per parallelism, `formulas.parallel`): tensor parallel (`parallel.tensor`: column / row /
replicated, whole kv heads), pipeline stages owning their layers, embeddings and head, trained or frozen
(`parallel.pipeline`, counted by `formulas.inventory`), expert parallel (`parallel.expert`), ZeRO / FSDP
sharding over the data-parallel group and its buffers (`parallel.data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmplan.formulas.inventory import (
    RankInventory,
    adapter_on_rank,
    memo_by_model,
    param_total,
    rank_inventory,
    rank_trainable,
    trainable_split,
)
from llmplan.formulas.optimizer import (
    EIGHT_BIT,
    PAGED,
    STATES_PER_PARAM,
    optimizer_temporaries,
    state_bytes_per_elem,
)
from llmplan.formulas.parallel.data import (
    ceil_div,
    comm_buffers,
    ds_persistent_elems,
    sharding_group,
)
from llmplan.formulas.parallel.expert import expert_sharding_group
from llmplan.formulas.parallel.pipeline import stage_layers
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.formulas.peft import TrainableParams
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Method, OffloadTarget, Optimizer, OptimizerImpl, Precision
from llmplan.stacks import StackSettings
from llmplan.stacks import resolve as resolve_stack

if TYPE_CHECKING:
    from llmplan.specs.training import Layout, TrainingJob

__all__ = [  # moved to their own modules; importable from here as before
    "EIGHT_BIT",
    "PAGED",
    "STATES_PER_PARAM",
    "RankInventory",
    "ds_persistent_elems",
    "memo_by_model",
    "param_total",
    "rank_inventory",
    "shard_linear",
    "sharding_group",
    "stage_layers",
    "trainable_split",
    "ModelStates",
    "model_states",
]

WEIGHT_BYTES = {
    Precision.FP32: 4,
    Precision.AMP_BF16: 4,
    Precision.FP16_MIXED: 2,
    Precision.BF16_MIXED: 2,
    Precision.FP8_MIXED: 2,
    Precision.BF16: 2,
    Precision.FP16: 2,
}
"""Bytes per weight (and per gradient) of the trainable base model."""
MIXED = frozenset({Precision.FP16_MIXED, Precision.BF16_MIXED, Precision.FP8_MIXED})
"""Precisions with an fp32 master copy of the trainable weights (Micikevicius et al. 2018, section 3.1)."""
PURE_16 = frozenset({Precision.BF16, Precision.FP16})


@dataclass(frozen=True, slots=True)
class ModelStates:
    """Model states on one GPU (the rank of pipeline stage `stage`), in bytes, and what went to host or
    NVMe."""

    weights_bytes: int
    """GPU-resident weights: trainable and frozen base (NF4 for QLoRA) and adapters (ZeRO-3 shard when
    sharded)."""
    master_weights_bytes: int
    """fp32 master copy of the trainable weights (mixed precision), on the GPU."""
    gradients_bytes: int
    """Gradient buffers on the GPU (they persist across micro-batches when accumulating)."""
    step_gradients_bytes: int
    """Gradients alive during the optimizer step: with mixed precision the fp32 casts the masters are updated
    with (4 B per trainable element; the 16-bit gradients are freed one by one as they are cast — apex amp O2,
    Megatron's fp32 `main_grad`); DeepSpeed ZeRO-3 keeps its 16-bit gradient partition and casts one
    `sub_group_size` sub-group at a time to fp32; otherwise `gradients_bytes`."""
    optimizer_states_bytes: int
    """Optimizer states on the GPU (paged states included; see `paged_bytes`)."""
    optimizer_temporaries_bytes: int
    """Transient tensors of the optimizer step (foreach / for-loop, fp32 gradient copy of mixed precision)."""
    gather_buffers_bytes: int
    """ZeRO-3 / FSDP all-gathered parameters alive at once (current unit + prefetch)."""
    reduce_buffers_bytes: int
    """Gradient communication buffers: DDP buckets, DeepSpeed reduce bucket, FSDP's unsharded unit
    gradient."""
    host_bytes: int
    """Host RAM this GPU's offload needs (states, master, fp32 gradients, pinned swap buffers)."""
    nvme_bytes: int
    paged_bytes: int
    """Part of `optimizer_states_bytes` in CUDA unified memory (bitsandbytes paged optimizers): evictable."""
    trainable_on_rank: int
    """Trainable elements held by this GPU after sharding (for in-backward and for-loop temporaries)."""
    largest_param: int
    sharding_group: int
    """GPUs the dense model states are sharded over (1 without ZeRO / FSDP)."""

    @property
    def total(self) -> int:
        """weights + master + gradients + optimizer states (the persistent model states)."""
        return sum(
            (self.weights_bytes, self.master_weights_bytes, self.gradients_bytes, self.optimizer_states_bytes)
        )


def model_states(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    *,
    stage: int = 0,
    gpus_per_node: int = 8,
    split: TrainableParams | None = None,
    stack: StackSettings | None = None,
) -> ModelStates:
    """Model states of one GPU of pipeline `stage` (formulas in the module docstring). `split` is
    `trainable_params(model, job)` when the caller has it already; `stack` the resolved defaults of the
    training stack (buckets, prefetch; `llmplan.stacks.resolve`, which the estimate calls), else those of
    `layout.stack`."""
    st = stack or resolve_stack(layout, model.hidden_size)
    inv = rank_inventory(model, layout.tp, layout.ep, layout.pp, stage)
    split = split or trainable_split(model, job)
    trained_d, trained_e = rank_trainable(model, job, layout.tp, layout.ep, layout.pp, stage)
    adapter, adapter_factored = adapter_on_rank(model, job, layout.tp, layout.pp, stage, split.adapter)
    prec = job.precision
    w, s_bytes = WEIGHT_BYTES[prec], (2 if prec in PURE_16 else 4)
    master = 4 if prec in MIXED else 0
    n = sharding_group(layout, gpus_per_node)
    n_exp = expert_sharding_group(n, layout.ep)
    stage_k = layout.sharding_stage

    # FSDP2 mixed precision (`MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`): the fp32 shards are
    # the masters, no 16-bit shard exists (the 16-bit copies are the gathered units), gradients are fp32.
    fsdp_mp = layout.fsdp is not None and master > 0
    w_train, g_train = (0, 4) if fsdp_mp else (w, w)

    def parts(elems: int, trainable: int) -> tuple[int, int, int, int, int]:
        """(trainable elems, weights, master, grads, frozen weights) of one sharding class, unsharded."""
        frozen = elems - trainable
        return trainable, trainable * w_train, trainable * master, trainable * g_train, frozen

    t_d, w_d, m_d, g_d, f_d = parts(inv.dense, trained_d)
    t_e, w_e, m_e, g_e, f_e = parts(inv.expert, trained_e)
    if job.method is Method.QLORA:
        hp = 2 if prec is not Precision.FP32 else 4
        frozen_bytes = inv.nf4_bytes + (inv.total - inv.block_linear_weights) * hp
        dense_share = inv.dense / inv.total if inv.total else 1.0
        fw_d, fw_e = round(frozen_bytes * dense_share), frozen_bytes - round(frozen_bytes * dense_share)
    else:
        fw_d, fw_e = f_d * w, f_e * w
    states_per = state_bytes_per_elem(job.optimizer, s_bytes)
    if job.optimizer is Optimizer.ADAFACTOR:
        fact = inv.factored / inv.total if inv.total else 0.0
        st_d, st_e = round(t_d * fact) * s_bytes, round(t_e * fact) * s_bytes
    else:
        st_d, st_e = round(t_d * states_per), round(t_e * states_per)
    # adapters: weights and gradients in the adapter dtype; 16-bit adapters under a master-weight precision
    # get fp32 masters and fp32 states like any 16-bit trainable weight, fp32 adapters are their own master
    a_bytes = job.peft.adapter_bytes
    a_master = master if a_bytes < 4 else 0
    a_s = 4 if a_master else a_bytes
    if job.optimizer is Optimizer.ADAFACTOR:
        a_states = adapter_factored * a_s
    else:
        a_states = round(adapter * state_bytes_per_elem(job.optimizer, a_s))
    a_w = adapter * a_bytes

    def shard(x: int, group: int, from_stage: int) -> int:
        return ceil_div(x, group) if stage_k >= from_stage else x

    weights = shard(w_d + fw_d + a_w, n, 3) + shard(w_e + fw_e, n_exp, 3)
    deepspeed_z3 = stage_k == 3 and layout.fsdp is None
    if deepspeed_z3 and n > 1:
        persistent = (
            ds_persistent_elems(model, job, layout.tp, layout.pp, stage, st.ds_persistence_threshold_elems)
            * w
        )
        weights += persistent - ceil_div(persistent, n)
    master_b = shard(m_d + adapter * a_master, n, 1) + shard(m_e, n_exp, 1)
    grads = shard(g_d + a_w, n, 2) + shard(g_e, n_exp, 2)
    states = shard(st_d + a_states, n, 1) + shard(st_e, n_exp, 1)
    trainable_rank = shard(t_d + adapter, n, 1) + shard(t_e, n_exp, 1)
    if master and deepspeed_z3:
        # DeepSpeed ZeRO-3 keeps the 16-bit gradient partition (`grad_partitions_flat_buffer`, the model dtype
        # unless `grad_accum_dtype` says otherwise) through the step and casts one sub-group at a time to fp32
        # (stage3.py `_prepare_fp32_grad_for_sub_group`: flatten, then `.to(fp32)`; both copies exist for an
        # instant), freed after that sub-group's update
        step_grads = grads + min(st.ds_sub_group_elems, trainable_rank) * (4 + w)
    elif master:
        # the 16-bit gradients are cast to fp32 for the step on the masters, each freed once cast
        step_grads = shard(t_d * 4 + adapter * max(a_bytes, a_master), n, 2) + shard(t_e * 4, n_exp, 2)
    else:
        step_grads = grads
    widest = max(model.hidden_size, model.intermediate_size)
    largest = max(inv.largest if t_d + t_e else 0, min(adapter, job.peft.lora_rank * widest))

    temps = optimizer_temporaries(job, trainable_rank, largest, s_bytes)
    gather, reduce = comm_buffers(job, layout, inv, trainable_rank, w, n, st)
    host = nvme = 0
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD:
        grads = step_grads = largest * w
    if layout.offload_optimizer is not OffloadTarget.NONE:
        moved = master_b + states
        fp32_grads = trainable_rank * 4
        if layout.offload_optimizer is OffloadTarget.CPU:
            host += moved + fp32_grads
        else:
            nvme += moved
            host += fp32_grads + st.ds_nvme_optimizer_buffers * min(st.ds_sub_group_elems, trainable_rank) * 4
        master_b = states = temps = 0
        step_grads = grads
    if layout.offload_params is not OffloadTarget.NONE:
        if layout.offload_params is OffloadTarget.CPU:
            host += weights
        else:
            nvme += weights
            host += st.ds_nvme_param_buffers * st.ds_nvme_param_buffer_elems * w
        if layout.fsdp is not None:  # FSDP CPUOffload moves gradients and the optimizer step to the CPU too
            host += grads + master_b + states
            grads = step_grads = master_b = states = temps = 0
        weights = 0
    paged = states if job.optimizer in PAGED else 0
    return ModelStates(
        weights_bytes=weights,
        master_weights_bytes=master_b,
        gradients_bytes=grads,
        step_gradients_bytes=step_grads,
        optimizer_states_bytes=states,
        optimizer_temporaries_bytes=temps,
        gather_buffers_bytes=gather,
        reduce_buffers_bytes=reduce,
        host_bytes=host,
        nvme_bytes=nvme,
        paged_bytes=paged,
        trainable_on_rank=trainable_rank,
        largest_param=largest,
        sharding_group=n,
    )
