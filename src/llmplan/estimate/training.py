"""Memory of one training or fine-tuning step per GPU: a maximum over the phases of the step.

The peak is not the sum of everything. Three phases are evaluated on the busiest GPU (with pipeline
parallelism the stage `formulas.activations` reports as busiest, the first or the last; its model states are
that stage's):

- end of forward: weights + master + optimizer states (they exist from the second step on: the estimate is the
  peak of a run, not of its first step) + gradient accumulation buffers (when grad_accum > 1) + saved
  activations of the in-flight micro-batches + logits and loss + gathered parameters (ZeRO-3 / FSDP);
- backward: activations are freed layer by layer while gradients appear; both move linearly through the
  layers, so the maximum of saved-remaining + gradients-so-far sits at one of the two ends: at the start
  (activations + the loss's saved tensors, without the returned logits: `ActivationBreakdown.
  logits_freed_bytes`, + accumulation buffers) or at the end (all gradients + the embedding's activations),
  plus one layer's backward transients and the gradient communication buckets;
- optimizer step: weights + master + gradients (fp32 under mixed precision: the 16-bit gradients are cast one
  by one for the update of the masters) + states + the step's temporaries (foreach / for-loop) — the first
  step creates the states while the gradients are alive (design.md: Llama-2-7B bf16 AdamW foreach peaks here
  at 62.76 GiB). With the step in backward there is no separate step phase: the
  gradients are freed one by one and the temporaries join the backward phase.

Counters (design.md): allocated = the maximum above + cuBLAS workspace; reserved = allocated + the allocator's
gap; device = reserved + CUDA context + NCCL buffers. The verdict compares device with the accelerator memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from llmplan.breakdown import (
    ACTIVATIONS,
    COMM_BUFFERS,
    GRADIENTS,
    LOGITS,
    MASTER_WEIGHTS,
    OPTIMIZER_STATES,
    OVERHEADS,
    TEMPORARIES,
    WEIGHTS,
    Breakdown,
    Term,
    Unit,
)
from llmplan.estimate.training_terms import (
    BACKWARD_END,
    BACKWARD_START,
    FORWARD_END,
    OPTIMIZER_STEP,
    PhaseValues,
    TermInputs,
    count_terms,
    counter_terms,
    moment_of,
    overhead_term,
    phase_terms,
    values_of,
)
from llmplan.formulas.activations import ActivationBreakdown, training_activations
from llmplan.formulas.model_states import (
    MIXED,
    WEIGHT_BYTES,
    ModelStates,
    memo_by_model,
    model_states,
    param_total,
    rank_inventory,
    stage_layers,
    trainable_split,
)
from llmplan.formulas.overheads import Overheads, overheads
from llmplan.formulas.peft import LORA_FAMILY, TrainableParams, lora_target_linears
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    Layout,
    Method,
    OffloadTarget,
    OptimizerImpl,
    Precision,
    Recompute,
    TrainingJob,
)
from llmplan.stacks import StackSettings
from llmplan.stacks import resolve as resolve_stack


class Phase(str, Enum):
    """Where in the training step the memory peak sits."""

    FORWARD_END = "forward-end"
    """After the forward pass and the loss: every saved activation alive."""
    BACKWARD = "backward"
    """During the backward pass: activations shrinking while gradients grow."""
    OPTIMIZER_STEP = "optimizer-step"
    """The (first) optimizer step: states created and temporaries allocated while gradients are alive."""


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    """Bytes on one GPU at the peak, by component; `total` is the device counter (what nvidia-smi shows)."""

    weights_bytes: int
    master_weights_bytes: int
    gradients_bytes: int
    optimizer_states_bytes: int
    activations_bytes: int
    """Saved activations alive at the peak (all in-flight micro-batches of the stage)."""
    logits_loss_bytes: int
    temporaries_at_peak_bytes: int
    """Optimizer-step temporaries, backward transients, autocast weight copies, fp8 weight caches."""
    comm_buffers_bytes: int
    """ZeRO-3 / FSDP gathered parameters and gradient reduce buckets."""
    overheads_bytes: int
    """cuBLAS workspace + allocator gap + CUDA context + NCCL buffers."""

    @classmethod
    def of(cls, terms: Breakdown) -> MemoryBreakdown:
        """The components of a breakdown's records (a missing term is 0)."""
        return cls(
            weights_bytes=int(terms.value(WEIGHTS)),
            master_weights_bytes=int(terms.value(MASTER_WEIGHTS)),
            gradients_bytes=int(terms.value(GRADIENTS)),
            optimizer_states_bytes=int(terms.value(OPTIMIZER_STATES)),
            activations_bytes=int(terms.value(ACTIVATIONS)),
            logits_loss_bytes=int(terms.value(LOGITS)),
            temporaries_at_peak_bytes=int(terms.value(TEMPORARIES)),
            comm_buffers_bytes=int(terms.value(COMM_BUFFERS)),
            overheads_bytes=int(terms.value(OVERHEADS)),
        )

    @property
    def total(self) -> int:
        return (
            self.weights_bytes
            + self.master_weights_bytes
            + self.gradients_bytes
            + self.optimizer_states_bytes
            + self.activations_bytes
            + self.logits_loss_bytes
            + self.temporaries_at_peak_bytes
            + self.comm_buffers_bytes
            + self.overheads_bytes
        )


@dataclass(frozen=True, slots=True)
class PhaseMemory:
    """Allocated bytes (live tensors, without the cuBLAS workspace) at one phase, with its components."""

    phase: Phase
    terms: Breakdown
    """The tensor terms at this phase (the overheads are added once, to the peak)."""

    @property
    def breakdown(self) -> MemoryBreakdown:
        return MemoryBreakdown.of(self.terms)

    @property
    def total(self) -> int:
        return int(self.terms.total)


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    """The answer to "will this job fit, and where does the memory go?" for one GPU."""

    model: str
    accelerator: str
    job: TrainingJob
    layout: Layout
    stage: int
    """Pipeline stage of the reported GPU (the busiest)."""
    params: int
    trainable_params: int
    terms: Breakdown
    """The records at the peak phase: tensor terms + overheads; terms.total == device_bytes."""
    counts: tuple[Term, ...]
    """Parameters on this GPU and trainable parameters, as records."""
    counters: tuple[Term, ...]
    """allocated, reserved, device and headroom bytes, each with its formula."""
    peak_phase: Phase
    phases: tuple[PhaseMemory, ...]
    allocated_bytes: int
    reserved_bytes: int
    device_bytes: int
    host_bytes: int
    """Host RAM for this GPU's offload (multiply by GPUs per node for a node)."""
    nvme_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    """capacity - device (negative when it does not fit)."""
    fits: bool
    model_states: ModelStates
    activations: ActivationBreakdown
    overheads: Overheads
    stack: StackSettings
    """The training stack's defaults as resolved for this model and layout (`llmplan.stacks`)."""
    notes: tuple[str, ...]

    @property
    def memory(self) -> MemoryBreakdown:
        """Components at the peak phase (from `terms`); memory.total == device_bytes."""
        return MemoryBreakdown.of(self.terms)

    @property
    def total(self) -> int:
        return self.device_bytes


def adapted_linears(model: ModelSpec, job: TrainingJob) -> frozenset[str]:
    """Module names (inside a block) of the linears carrying LoRA-family adapters or IA3 vectors (peft's IA3
    default targets for the model type, `ModelSpec.peft_defaults`); empty for other methods."""
    ia3_targets = model.peft_defaults.ia3_targets
    if job.method is Method.IA3 and ia3_targets is not None:
        return memo_by_model(_adapted, model, ia3_targets, False)
    if job.method not in LORA_FAMILY:
        return frozenset()
    return memo_by_model(_adapted, model, job.peft.lora_targets, job.method is not Method.ADALORA)


def _adapted(model: ModelSpec, targets: tuple[str, ...], convert_moe: bool) -> frozenset[str]:
    return frozenset(lin.name for _, lin in lora_target_linears(model, targets, convert_moe=convert_moe))


def estimate_training(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster
) -> TrainingEstimate:
    """Estimate the per-GPU memory of `job` on `layout` over `cluster` (module docstring for the phases).

    Raises InvalidInputError (a LayoutError and a SpecError) carrying every problem of the job and layout
    (`estimate.validation.problems`).
    """
    from llmplan.estimate.validation import validate_training

    validate_training(model, job, layout, cluster)
    stack = resolve_stack(layout, model.hidden_size)
    if job.method is not Method.FULL and job.peft.adapter_dtype is None:
        job = replace(job, peft=replace(job.peft, adapter_dtype=stack.adapter_dtype))
    split = trainable_split(model, job)
    adapted = adapted_linears(model, job)
    act = training_activations(model, job, layout, adapted, stack=stack)
    # formulas.activations reports the busier of the first stage (most micro-batches in flight) and the last
    # (the head); the model states are those of the same stage.
    stage = layout.pp - 1 if layout.pp > 1 and act.logits_loss_bytes else 0
    return _estimate_stage(model, job, layout, cluster, act, stage, split, stack)


def _estimate_stage(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    cluster: Cluster,
    act: ActivationBreakdown,
    stage: int,
    split: TrainableParams,
    stack: StackSettings,
) -> TrainingEstimate:
    notes: list[str] = []
    ms = model_states(
        model, job, layout, stage=stage, gpus_per_node=cluster.gpus_per_node, split=split, stack=stack
    )
    saved = act.layers_bytes + act.embedding_bytes
    logits = act.logits_loss_bytes
    host, nvme = ms.host_bytes + act.host_bytes, ms.nvme_bytes
    last_layer = min(act.layers_bytes, act.per_layer_bytes)
    extra = _weight_copies(model, job, layout, stage, stack)
    accum = ms.gradients_bytes if job.grad_accum_steps > 1 else 0
    # DDP's bucket copies and DeepSpeed ZeRO-3's contiguous reduce bucket exist from the first step to the last
    deepspeed_z3 = layout.sharding_stage == 3 and layout.fsdp is None
    persistent_bucket = ms.reduce_buffers_bytes if layout.sharding_stage == 0 or deepspeed_z3 else 0
    in_backward = job.optimizer_impl is OptimizerImpl.IN_BACKWARD
    step_temps = ms.optimizer_temporaries_bytes
    bt = act.backward_transient_bytes + (step_temps if in_backward else 0)

    inv = rank_inventory(model, layout.tp, layout.ep, layout.pp, stage)
    inputs = TermInputs(model, job, layout, stage, inv, split, ms, act, stack, extra, bt)

    def brk(moment: str, grads: int, acts: int, lg: int, temps: int, comm: int) -> Breakdown:
        values = PhaseValues(grads, acts, lg, temps, comm, ms.optimizer_states_bytes)
        return phase_terms(inputs, moment, values)

    fwd = brk(FORWARD_END, accum, saved, logits, extra, ms.gather_buffers_bytes + persistent_bucket)
    comm_b = ms.gather_buffers_bytes + ms.reduce_buffers_bytes
    head_live = logits - min(logits, act.logits_freed_bytes)
    # no gradient has been reduced when backward starts: the reduce buckets join later (DDP's persist)
    start_comm = ms.gather_buffers_bytes + persistent_bucket
    bwd_start = brk(BACKWARD_START, accum, saved, head_live, extra + bt, start_comm)
    # at the end of backward the loss-side transient (the largest for big vocabularies) is long gone: one
    # layer's backward transient, taken as at most one layer's saved bytes (a recomputed layer)
    bt_end = min(bt, act.per_layer_bytes + (step_temps if in_backward else 0))
    bwd_end = brk(BACKWARD_END, ms.gradients_bytes, act.embedding_bytes + last_layer, 0, bt_end, comm_b)
    bwd = bwd_start if bwd_start.total >= bwd_end.total else bwd_end
    phases = [PhaseMemory(Phase.FORWARD_END, fwd), PhaseMemory(Phase.BACKWARD, bwd)]
    if not in_backward:
        step = brk(OPTIMIZER_STEP, ms.step_gradients_bytes, 0, 0, step_temps, persistent_bucket)
        phases.append(PhaseMemory(Phase.OPTIMIZER_STEP, step))
    peak = max(phases, key=lambda p: p.total)
    acc = cluster.accelerator
    communicators = sum(1 for d in (layout.dp, layout.tp, layout.pp, layout.cp, layout.ep) if d > 1)
    ov = overheads(
        acc, peak.total, communicators, nccl_per_communicator_bytes=stack.nccl_bytes_per_communicator
    )
    allocated = peak.total + ov.cublas_workspace_bytes
    reserved = allocated + ov.allocator_gap_bytes
    device = reserved + ov.cuda_context_bytes + ov.nccl_bytes
    terms = peak.terms
    if ms.paged_bytes:
        resident = max(0, min(ms.paged_bytes, acc.memory_bytes - (device - ms.paged_bytes)))
        evicted = ms.paged_bytes - resident
        if evicted:
            host += evicted
            device -= evicted
            allocated -= evicted
            reserved -= evicted
            notes.append(f"paged optimizer: {evicted:,} B of states evicted to host RAM (slower steps)")
            terms = phase_terms(
                inputs,
                moment_of(peak.phase, bwd is bwd_start),
                values_of(peak.terms, ms.optimizer_states_bytes - evicted),
            )
    terms = Breakdown(Unit.BYTES, (*terms.terms, overhead_term(ov, communicators, stack)))
    notes.extend(_assumptions(job, layout, ms))
    return TrainingEstimate(
        model=model.name,
        accelerator=acc.name,
        job=job,
        layout=layout,
        stage=stage,
        params=param_total(model),
        trainable_params=split.total,
        terms=terms,
        counts=count_terms(inputs, param_total(model)),
        counters=counter_terms(peak.phase, ov, allocated, reserved, device, acc.memory_bytes),
        peak_phase=peak.phase,
        phases=tuple(phases),
        allocated_bytes=allocated,
        reserved_bytes=reserved,
        device_bytes=device,
        host_bytes=host,
        nvme_bytes=nvme,
        capacity_bytes=acc.memory_bytes,
        headroom_bytes=acc.memory_bytes - device,
        fits=device <= acc.memory_bytes,
        model_states=ms,
        activations=act,
        overheads=ov,
        stack=stack,
        notes=tuple(notes),
    )


def _weight_copies(
    model: ModelSpec, job: TrainingJob, layout: Layout, stage: int, stack: StackSettings
) -> int:
    """Transient weight copies alive from forward into backward.

    amp-bf16: every fp32 linear weight cast to bf16 inside the autocast region is saved for backward (the
    matmul needs it for the input gradient; trainable leaves are also in autocast's cast cache,
    aten/src/ATen/autocast_mode.cpp `cached_cast`): 2 bytes per linear weight on the rank. With full
    recomputation a layer's casts die with its forward, so one layer's worth is alive at a time. Under FSDP
    with a bf16 mixed-precision policy (`stack.fsdp_gather_16bit`) the parameters are all-gathered in bf16
    already: no copies (the gathered units are
    the communication buffers). fp8-mixed: Transformer Engine keeps an fp8 copy of each linear weight and its
    transpose (1 + 1 bytes per weight).
    """
    if job.precision not in (Precision.AMP_BF16, Precision.FP8_MIXED):
        return 0
    if job.precision is Precision.AMP_BF16 and layout.fsdp is not None and stack.fsdp_gather_16bit:
        return 0
    inv = rank_inventory(model, layout.tp, layout.ep, layout.pp, stage)
    if job.precision is Precision.AMP_BF16 and job.recompute is Recompute.FULL:
        layers = max(1, len(stage_layers(model.num_hidden_layers, layout.pp)[stage]))
        return 2 * -(-inv.block_linear_weights // layers)
    return 2 * inv.block_linear_weights


def _assumptions(job: TrainingJob, layout: Layout, ms: ModelStates) -> list[str]:
    out = []
    if job.precision in MIXED:
        out.append(
            "mixed precision: 16-bit weights and gradients, fp32 master weights and states "
            "(ZeRO paper's 16 B/param)"
        )
    if job.method is not Method.FULL:
        dtype = job.peft.adapter_dtype.value if job.peft.adapter_dtype else "fp32"
        out.append(
            f"adapters kept in {dtype} (--adapter-dtype; stack default in llmplan.stacks): "
            f"{job.peft.adapter_bytes} B weights, grads, per state"
        )
    if job.method is Method.QLORA:
        out.append("QLoRA base: NF4 with double quantization; embeddings, lm_head and norms in 16-bit")
    if ms.sharding_group > 1:
        out.append(f"ZeRO/FSDP shard over the data-parallel group only: {ms.sharding_group} GPUs (dp·cp)")
    if layout.offload_optimizer is not OffloadTarget.NONE or layout.offload_params is not OffloadTarget.NONE:
        out.append("host RAM is per GPU; a node needs it times its GPUs")
    if job.grad_accum_steps > 1:
        out.append("gradient accumulation: gradient buffers stay alive through every micro-batch's forward")
    out.append(f"weights/grads {WEIGHT_BYTES[job.precision]} B per trainable element")
    return out
