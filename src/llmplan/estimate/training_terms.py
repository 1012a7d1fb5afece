"""The records of a training estimate: every memory component of a phase as a `Term` (bytes, the formula with
this job's numbers, the source it cites), the parameter counts and the counters.

`estimate.training` computes the values (formulas/ do the arithmetic) and calls `phase_terms` with them; the
formula text is written here, next to the numbers it shows, once. `--explain`, the JSON and the accuracy pages
read these records (nothing restates a formula elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from llmplan.breakdown import (
    ACTIVATIONS,
    ALLOCATOR_GAP,
    COMM_BUFFERS,
    CUBLAS_WORKSPACE,
    CUDA_CONTEXT,
    GRADIENTS,
    LOGITS,
    MASTER_WEIGHTS,
    NCCL_BUFFERS,
    OPTIMIZER_STATES,
    OVERHEADS,
    TEMPORARIES,
    WEIGHTS,
    Breakdown,
    Term,
    Unit,
)
from llmplan.formulas import overheads as ovf
from llmplan.formulas.activations import ActivationBreakdown
from llmplan.formulas.model_states import (
    MIXED,
    PURE_16,
    WEIGHT_BYTES,
    ModelStates,
    RankInventory,
)
from llmplan.formulas.overheads import Overheads
from llmplan.formulas.peft import TrainableParams
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, Method, Optimizer, OptimizerImpl, TrainingJob
from llmplan.stacks import StackSettings

FORWARD_END = "forward-end"
BACKWARD_START = "backward-start"
BACKWARD_END = "backward-end"
OPTIMIZER_STEP = "optimizer-step"


@dataclass(frozen=True, slots=True)
class TermInputs:
    """What the formula text of a training term shows: the job and the formula results of the rank."""

    model: ModelSpec
    job: TrainingJob
    layout: Layout
    stage: int
    inv: RankInventory
    split: TrainableParams
    ms: ModelStates
    act: ActivationBreakdown
    stack: StackSettings
    weight_copies_bytes: int
    backward_transient_bytes: int


@dataclass(frozen=True, slots=True)
class PhaseValues:
    """Bytes of the eight tensor components at one moment of the step."""

    gradients: int
    activations: int
    logits: int
    temporaries: int
    comm_buffers: int
    optimizer_states: int


def _b(value: int) -> str:
    return f"{value:,} B"


def phase_terms(x: TermInputs, moment: str, v: PhaseValues) -> Breakdown:
    """The tensor terms of one moment (forward-end, backward-start / -end, optimizer-step)."""
    job, layout, ms = x.job, x.layout, x.ms
    w = WEIGHT_BYTES[job.precision]
    n, zk = ms.sharding_group, layout.sharding_stage
    shard = lambda k: f" ÷ {n} GPUs (ZeRO-{k})" if zk >= k and n > 1 else ""  # noqa: E731
    weights = Term(
        WEIGHTS,
        ms.weights_bytes,
        Unit.BYTES,
        f"{x.inv.total:,} parameters on this GPU (tp {layout.tp}, pp stage {x.stage} of {layout.pp}, "
        f"ep {layout.ep}) × {w} B ({job.precision.value})"
        + (f", decoder linears in NF4 ({_b(x.inv.nf4_bytes)})" if job.method is Method.QLORA else "")
        + (f" + {x.split.adapter:,} adapter parameters × {job.peft.adapter_bytes} B" if x.split.adapter else "")
        + shard(3)
        + (" (offloaded)" if layout.offload_params.value != "none" else "")
        + f" = {_b(ms.weights_bytes)}",
        "ZeRO paper §3.1 (Rajbhandari et al. 2020); Megatron column/row splits (Shoeybi et al. 2019 §3); "
        "QLoRA §3 (Dettmers et al. 2023); formulas/model_states.py",
    )
    master = Term(
        MASTER_WEIGHTS,
        ms.master_weights_bytes,
        Unit.BYTES,
        (
            f"4 B × {x.split.base_trainable:,} trainable base parameters"
            + (f" + 4 B × {x.split.adapter:,} 16-bit adapters" if x.split.adapter and job.peft.adapter_bytes < 4 else "")
            + f"{shard(1)} = {_b(ms.master_weights_bytes)}"
            if job.precision in MIXED
            else f"{job.precision.value} keeps no fp32 master copy = 0 B"
        ),
        "Micikevicius et al. 2018 §3.1; ZeRO paper §5.1",
    )
    grads = Term(
        GRADIENTS, v.gradients, Unit.BYTES, _gradients_formula(x, moment, v.gradients), "ZeRO paper §5.2"
    )
    s = 2 if job.precision in PURE_16 else 4
    states = Term(
        OPTIMIZER_STATES,
        v.optimizer_states,
        Unit.BYTES,
        f"{_states_formula(job.optimizer)}, s = {s} B (adapters {job.peft.adapter_bytes} B), trainable "
        f"{x.split.total:,}{shard(1)}"
        + (
            f", {_b(ms.optimizer_states_bytes - v.optimizer_states)} paged out"
            if v.optimizer_states < ms.optimizer_states_bytes
            else ""
        )
        + f" = {_b(v.optimizer_states)}",
        "torch/optim/adamw.py; bitsandbytes optim/optimizer.py (8-bit, paged); Shazeer & Stern 2018 (Adafactor)",
    )
    acts = Term(
        ACTIVATIONS,
        v.activations,
        Unit.BYTES,
        _activations_formula(x, moment, v.activations),
        "formulas/activations.py (Korthikanti et al. 2022 eq. 1, table 2, per-tensor HF accounting); "
        "Narayanan et al. 2021 (in-flight micro-batches)",
    )
    logits = Term(LOGITS, v.logits, Unit.BYTES, _logits_formula(x, moment, v.logits), "formulas/logits.py")
    temps = Term(
        TEMPORARIES,
        v.temporaries,
        Unit.BYTES,
        _temporaries_formula(x, moment, v.temporaries),
        "torch/optim/adamw.py _multi_tensor_adamw (_foreach_sqrt); aten autocast_mode.cpp cached_cast; "
        "formulas/activations.py backward transients",
    )
    comm = Term(
        COMM_BUFFERS,
        v.comm_buffers,
        Unit.BYTES,
        _comm_formula(x, moment, v.comm_buffers),
        "DeepSpeed partitioned_param_coordinator.py and stage3.py; torch DDP gradient_as_bucket_view; "
        "FSDP2 prefetch; sizes from llmplan.stacks",
    )
    return Breakdown(Unit.BYTES, (weights, master, grads, states, acts, logits, temps, comm))


def _gradients_formula(x: TermInputs, moment: str, value: int) -> str:
    ms, job = x.ms, x.job
    n, zk = ms.sharding_group, x.layout.sharding_stage
    full = f"{WEIGHT_BYTES[job.precision]} B × trainable base + {job.peft.adapter_bytes} B × adapters" + (
        f" ÷ {n} GPUs (ZeRO-2)" if zk >= 2 and n > 1 else ""
    )
    if moment == OPTIMIZER_STEP:
        how = "fp32 casts of the 16-bit gradients for the master update" if job.precision in MIXED else full
        return f"at the optimizer step: {how} = {_b(value)}"
    if moment == BACKWARD_END:
        if job.optimizer_impl is OptimizerImpl.IN_BACKWARD:
            return f"step in backward: one parameter's gradient at a time = {_b(value)}"
        return f"all gradients at the end of backward: {full} = {_b(value)}"
    if value:
        return f"accumulation buffers alive from the first micro-batch (grad_accum {job.grad_accum_steps}): {full} = {_b(value)}"
    return "no gradient exists yet (grad_accum 1) = 0 B"


def _activations_formula(x: TermInputs, moment: str, value: int) -> str:
    job, act = x.job, x.act
    if moment == OPTIMIZER_STEP:
        return "freed by the end of backward = 0 B"
    if moment == BACKWARD_END:
        return f"input side {_b(act.embedding_bytes)} + the last layer's saved tensors = {_b(value)}"
    offload = f", {_b(act.host_bytes)} offloaded to host" if act.host_bytes else ""
    return (
        f"saved layers of this stage {_b(act.layers_bytes)} (micro-batch {job.micro_batch_size} × {job.seq_len} "
        f"tokens, recompute {job.recompute.value}, attention {job.attention.value}, one layer "
        f"{_b(act.per_layer_bytes)}{offload}) + input side {_b(act.embedding_bytes)} = {_b(value)}"
    )


def _logits_formula(x: TermInputs, moment: str, value: int) -> str:
    act, job, model = x.act, x.job, x.model
    if moment in (OPTIMIZER_STEP, BACKWARD_END):
        return "freed by the loss backward = 0 B"
    if not act.logits_loss_bytes:
        return "this pipeline stage holds no head = 0 B"
    loss = "fp32" if (x.stack.autocast or x.stack.loss_fp32 or model.loss_fp32_upcast) else "compute-dtype"
    head = (
        f"final norm, logits and {loss} loss tensors of {job.micro_batch_size} × {job.seq_len} tokens × "
        f"V {model.vocab_size:,}{' (chunked cross-entropy)' if job.chunked_ce else ''} = {_b(act.logits_loss_bytes)}"
    )
    if moment == BACKWARD_START:
        return f"{head}, less the returned logits freed before the loss backward ({_b(act.logits_freed_bytes)}) = {_b(value)}"
    return head


def _temporaries_formula(x: TermInputs, moment: str, value: int) -> str:
    job = x.job
    copies = (
        f"weight copies alive through forward (autocast bf16 casts / fp8 caches) {_b(x.weight_copies_bytes)}"
    )
    if moment == OPTIMIZER_STEP:
        return f"optimizer-step temporaries ({job.optimizer_impl.value}, {job.optimizer.value}) = {_b(value)}"
    if moment == FORWARD_END:
        return f"{copies} = {_b(value)}"
    step = (
        " (with the step's temporaries: step in backward)"
        if job.optimizer_impl is OptimizerImpl.IN_BACKWARD
        else ""
    )
    if moment == BACKWARD_START:
        return (
            f"{copies} + the largest backward transient {_b(x.backward_transient_bytes)}{step} = {_b(value)}"
        )
    return (
        f"one layer's backward transient at the end of backward (at most one layer's saved bytes){step} "
        f"= {_b(value)}"
    )


def _comm_formula(x: TermInputs, moment: str, value: int) -> str:
    ms, layout, st = x.ms, x.layout, x.stack
    if not value:
        return "no gathered parameters or gradient buckets at this moment = 0 B"
    sizes = (
        f"DeepSpeed reduce bucket {st.ds_reduce_bucket_elems:,} and prefetch {st.ds_prefetch_elems:,} elements"
        if layout.fsdp is None and layout.zero > 0
        else f"FSDP root + {1 + st.fsdp_prefetch_units} units"
        if layout.fsdp is not None
        else "DDP bucket copy of the gradients"
    )
    return (
        f"gathered parameters {_b(ms.gather_buffers_bytes)}, gradient reduce buffers {_b(ms.reduce_buffers_bytes)} "
        f"({sizes}; stack {st.stack.value}); alive at {moment} = {_b(value)}"
    )


def _states_formula(optimizer: Optimizer) -> str:
    return {
        Optimizer.ADAMW: "2 states (m, v) × s × trainable",
        Optimizer.PAGED_ADAMW: "2 states × s × trainable, in unified memory (evictable)",
        Optimizer.ADAM8BIT: "2 × (1 B + 4 B / 256) × trainable (block-wise absmax)",
        Optimizer.PAGED_ADAMW_8BIT: "2 × (1 B + 4 B / 256) × trainable, paged",
        Optimizer.SGD: "no state",
        Optimizer.SGD_MOMENTUM: "1 state × s × trainable",
        Optimizer.LION: "1 state × s × trainable",
        Optimizer.ADAFACTOR: "(rows + cols) per matrix, numel per vector, × s",
    }[optimizer]


def overhead_term(ov: Overheads, communicators: int, stack: StackSettings) -> Term:
    """The memory outside the model's tensors, its four parts."""
    return Term(
        OVERHEADS,
        ov.total,
        Unit.BYTES,
        "cuBLAS workspace + allocator gap + CUDA context + NCCL buffers",
        "formulas/overheads.py",
        (
            Term(
                CUBLAS_WORKSPACE,
                ov.cublas_workspace_bytes,
                Unit.BYTES,
                f"one workspace per handle = {_b(ov.cublas_workspace_bytes)}",
                "aten/src/ATen/cuda/CublasHandlePool.cpp getChosenWorkspaceSize",
            ),
            Term(
                ALLOCATOR_GAP,
                ov.allocator_gap_bytes,
                Unit.BYTES,
                f"{ovf.FRAGMENTATION} × allocated (512 B rounding, fragmentation) = {_b(ov.allocator_gap_bytes)}",
                "c10/cuda/CUDACachingAllocator.cpp; fraction assumed (formulas/overheads.py)",
            ),
            Term(
                CUDA_CONTEXT,
                ov.cuda_context_bytes,
                Unit.BYTES,
                f"CUDA context and kernel images of the architecture = {_b(ov.cuda_context_bytes)}",
                "formulas/overheads.py CUDA_CONTEXT_BYTES_BY_ARCH",
            ),
            Term(
                NCCL_BUFFERS,
                ov.nccl_bytes,
                Unit.BYTES,
                f"{communicators} communicator(s) × {_b(stack.nccl_bytes_per_communicator)} = {_b(ov.nccl_bytes)}",
                "NCCL docs (NCCL_BUFFSIZE); formulas/overheads.py; llmplan.stacks",
            ),
        ),
    )


def count_terms(x: TermInputs, params: int) -> tuple[Term, ...]:
    """Parameters on this GPU and trainable parameters."""
    layout, split = x.layout, x.split
    return (
        Term(
            "params_on_gpu",
            x.inv.total,
            Unit.COUNT,
            f"tp {layout.tp}, pp {layout.pp} (stage {x.stage}), ep {layout.ep}: {x.inv.total:,} of {params:,}",
            "formulas/inventory.py rank_inventory (Megatron column/row splits, Shoeybi et al. 2019 §3)",
        ),
        Term(
            "trainable_params",
            split.total,
            Unit.COUNT,
            f"{split.base_trainable:,} base + {split.adapter:,} adapter trainable, {split.frozen:,} frozen",
            "formulas/peft.py (Hu et al. 2021 §4.1; equals peft get_nb_trainable_parameters)",
        ),
    )


def moment_of(phase: Enum, at_start: bool) -> str:
    """The moment of a phase (`estimate.training.Phase`) whose terms `phase_terms` writes."""
    if phase.value == "backward":
        return BACKWARD_START if at_start else BACKWARD_END
    return FORWARD_END if phase.value == FORWARD_END else OPTIMIZER_STEP


def values_of(terms: Breakdown, states: int) -> PhaseValues:
    v = terms.value
    return PhaseValues(
        int(v(GRADIENTS)),
        int(v(ACTIVATIONS)),
        int(v(LOGITS)),
        int(v(TEMPORARIES)),
        int(v(COMM_BUFFERS)),
        states,
    )


def counter_terms(
    phase: Enum, ov: Overheads, allocated: int, reserved: int, device: int, capacity: int
) -> tuple[Term, ...]:
    return (
        Term(
            "allocated",
            allocated,
            Unit.BYTES,
            f"peak at {phase.value} + cuBLAS workspace {ov.cublas_workspace_bytes:,} B = {allocated:,} B",
            "torch.cuda.max_memory_allocated; estimate/training.py (the maximum over phases, not a sum)",
        ),
        Term(
            "reserved",
            reserved,
            Unit.BYTES,
            f"allocated + allocator gap {ov.allocator_gap_bytes:,} B = {reserved:,} B",
            "torch.cuda.max_memory_reserved; c10/cuda/CUDACachingAllocator.cpp",
        ),
        Term(
            "device",
            device,
            Unit.BYTES,
            f"reserved + CUDA context {ov.cuda_context_bytes:,} B + NCCL {ov.nccl_bytes:,} B = {device:,} B",
            "nvidia-smi; formulas/overheads.py",
        ),
        Term(
            "headroom",
            capacity - device,
            Unit.BYTES,
            f"capacity {capacity:,} B - device {device:,} B = {capacity - device:,} B",
            "accelerator catalog",
        ),
    )
