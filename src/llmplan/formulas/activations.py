"""Activation bytes of a training step on the busiest rank: decoder layers, input side, logits and loss.

The reference is Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models":
eq. 1, a GPT-3-style layer saves s·b·h·(34 + 5·a·s/h) bytes in 16-bit (s sequence, b micro-batch, h hidden,
a heads), and Table 2, what tensor / sequence parallelism and selective recomputation divide. llmplan counts
instead what the HF transformers implementation saves, tensor by tensor (formulas/layer_activations.py, checked
against traces to the byte for Llama, Mistral, Qwen2/3, Gemma 1/2, Mixtral, Qwen2-MoE, GPT-2, GPT-NeoX, Falcon).

Differences from eq. 1 for a Llama layer (20h + 4·kv·d + 8I + 4a + 8 per token with sdpa, 45.5·h for
Llama-2-7B against 34·h): (1) RMSNorm upcasts to fp32 and keeps 4h + 2h per norm where LayerNorm keeps 2h;
(2) SwiGLU keeps four tensors of I = 8/3 · 4h where the GELU MLP keeps two of 4h (eq. 1's 16h for the MLP
becomes 8I = 21.3h); (3) current LLMs have no dropout (eq. 1 counts three s·b·h masks and the a·s²·b one);
(4) HF's eager softmax keeps the fp32 probabilities and their bf16 cast (6 bytes per score where eq. 1 has
2 + 2 + 1 for scores, softmax and mask), while sdpa / flash keep no s² term and add a 4-byte logsumexp per
head and row; (5) GQA shrinks k and v. design.md's "about 48.5 bytes per token per hidden unit" divides the
whole step's activations (head and logits included) by layers·s·h; the layer alone is 45.5.

Parallelism (Korthikanti Table 2): tensor parallel splits what lies between the column-parallel and the
row-parallel GEMMs (heads, MLP width); the norms and the replicated GEMM inputs of q/k/v and gate/up are split
only with sequence parallel. Context parallel splits the sequence. Pipeline parallel: stage 0 holds its L/pp
layers for min(pp, m) micro-batches with 1F1B (Narayanan et al. 2021), all m with GPipe, and pp + (pp-1)/v
micro-batches' worth with the interleaved schedule (Korthikanti section 4.2.3); the last stage holds one
micro-batch (m with GPipe) and the head. Recompute: full keeps each layer's input (e·h per token, Chen et al.
2016) and adds one recomputed layer to the backward transient; selective drops the eager s² terms
(Korthikanti section 4.2) and changes nothing under sdpa / flash. Activation offload keeps the current layer on
the device and moves the others to host memory (`host_bytes`).

Counted as real memory but invisible to a saved-tensor trace: the bf16 logits (the model's output, alive
until the loss backward) and the RoPE tables under gradient checkpointing (held by the checkpoint closure).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.formulas.inventory import memo_by_model
from llmplan.formulas.layer_activations import first_norm_bytes, layer_bytes, layer_transient, norm_bytes
from llmplan.formulas.layer_context import (
    DROPOUT_MASK_BYTES,
    FP32,
    INPUT_NEEDS_GRAD,
    INT64,
    NORMS_TRAIN,
    LayerContext,
    layer_context,
    norm_out_bytes,
    tokens_per_micro_batch,
)
from llmplan.formulas.logits import HeadBytes, head_bytes
from llmplan.formulas.parallel.pipeline import micro_batches_in_flight, scale_by, stage_layers
from llmplan.specs.model import Block, ModelSpec, NormKind, PositionKind
from llmplan.specs.training import (
    Layout,
    Method,
    PipelineSchedule,
    Precision,
    Recompute,
    TrainingJob,
)
from llmplan.stacks import StackSettings
from llmplan.stacks import resolve as resolve_stack


@dataclass(frozen=True, slots=True)
class ActivationBreakdown:
    """Activation bytes on the busiest rank at the end of forward, and the backward transient above them."""

    layers_bytes: int
    """Saved-for-backward bytes of all decoder layers held on this rank at the end of forward (pipeline
    micro-batches in flight included)."""
    embedding_bytes: int
    """Saved by the input side: token ids, learned position ids, RoPE cos/sin tables, embedding dropout."""
    logits_loss_bytes: int
    """Final norm, logits and loss tensors alive at the end of forward (see formulas/logits.py)."""
    backward_transient_bytes: int
    """Largest transient above the saved set during backward (loss gradient, eager softmax backward, the
    recomputed layer under full recompute, QLoRA / DoRA full-size weight temporaries)."""
    per_layer_bytes: int
    """One decoder layer (the largest kind), one micro-batch, before recomputation or offload."""
    host_bytes: int = 0
    """Saved activations moved to host memory by activation offload (not on the device)."""
    logits_freed_bytes: int = 0
    """Part of `logits_loss_bytes` freed before the loss backward: one micro-batch's returned logits
    (formulas/logits.py `HeadBytes.freed_before_backward_bytes`); 0 on a rank without the head."""

    @property
    def total(self) -> int:
        return self.layers_bytes + self.embedding_bytes + self.logits_loss_bytes


def training_activations(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    adapted: frozenset[str] = frozenset(),
    *,
    stack: StackSettings | None = None,
) -> ActivationBreakdown:
    """Activation bytes of one training step on the busiest rank.

    `adapted`: leaf (or full) names of the linears carrying LoRA / DoRA / AdaLoRA / IA3 adapters
    (formulas/peft.py `lora_target_linears`). `stack`: the training stack's resolved defaults (autocast and
    loss dtype, `llmplan.stacks.resolve`, which the estimate calls), else those of `layout.stack`. Pipeline parallel: the breakdown is that of stage 0 (most
    micro-batches in flight) or of the last stage (the head), whichever is larger.
    """
    ctx = layer_context(model, job, layout, adapted)
    # each distinct block once (the per-layer formulas read only the block and ctx), then one value per layer
    kinds, kind_of_layer = memo_by_model(_layer_kinds, model)
    full = [layer_bytes(ctx, block, recompute=Recompute.NONE) for block in kinds]
    saved = (
        full
        if job.recompute is Recompute.NONE
        else [layer_bytes(ctx, block, recompute=job.recompute) for block in kinds]
    )
    per_layer = [full[k] for k in kind_of_layer]
    kept = [saved[k] for k in kind_of_layer]
    first_trained = job.peft.freeze_layers if job.method is Method.FREEZE else 0
    for i in range(min(first_trained, len(kept))):
        per_layer[i] = kept[i] = 0
    first = min(first_trained, len(kept) - 1)
    if job.method not in INPUT_NEEDS_GRAD and job.recompute is not Recompute.FULL and kept:
        # nothing before the first trained layer needs a gradient: its input norm saves no fp32 upcast
        first_norm = first_norm_bytes(ctx, model.layers[first])
        per_layer[first] -= first_norm
        kept[first] -= first_norm
    transient = max((layer_transient(ctx, b) for b in kinds), default=0)
    if job.recompute is not Recompute.NONE:
        transient += max(p - k for p, k in zip(per_layer, kept, strict=True)) if per_layer else 0
    st = stack or resolve_stack(layout, model.hidden_size)
    head = _head(ctx, st)
    embed = _embedding_bytes(ctx)
    stages = stage_layers(model.num_hidden_layers, layout.pp)
    m = job.grad_accum_steps
    first = stages[0]
    last = stages[-1]
    first_layers = sum(kept[i] for i in first)
    last_layers = sum(kept[i] for i in last)
    host = 0
    if job.activation_offload:
        resident = max(kept, default=0)
        host = sum(kept) - resident
        first_layers = last_layers = resident
        transient += resident  # prefetch of the next layer's tensors during backward
    in_flight_first = micro_batches_in_flight(layout, m)
    in_flight_last = m if layout.pp_schedule is PipelineSchedule.GPIPE and layout.pp > 1 else 1
    stage0 = ActivationBreakdown(
        layers_bytes=scale_by(first_layers, in_flight_first),
        embedding_bytes=scale_by(embed, in_flight_first),
        logits_loss_bytes=head.total if layout.pp == 1 else 0,
        backward_transient_bytes=max(transient, head.backward_transient_bytes if layout.pp == 1 else 0),
        per_layer_bytes=max(per_layer, default=0),
        host_bytes=scale_by(host, in_flight_first),
        logits_freed_bytes=head.freed_before_backward_bytes if layout.pp == 1 else 0,
    )
    if layout.pp == 1:
        return stage0
    last_stage = ActivationBreakdown(
        layers_bytes=last_layers * in_flight_last,
        embedding_bytes=0,
        logits_loss_bytes=head.total * in_flight_last,
        backward_transient_bytes=max(transient, head.backward_transient_bytes),
        per_layer_bytes=max(per_layer, default=0),
        host_bytes=host * in_flight_last,
        logits_freed_bytes=head.freed_before_backward_bytes,
    )
    return max(stage0, last_stage, key=lambda b: b.total + b.backward_transient_bytes)


def _layer_kinds(model: ModelSpec) -> tuple[tuple[Block, ...], tuple[int, ...]]:
    """The distinct decoder blocks and, for each layer, the index of its block among them."""
    kinds = model.block_kinds
    return kinds, tuple(kinds.index(block) for block in model.layers)


def _embedding_bytes(ctx: LayerContext) -> int:
    """Token ids (int64, when the embedding trains), position ids, RoPE cos/sin, embedding dropout mask."""
    model, job = ctx.model, ctx.job
    tokens = tokens_per_micro_batch(ctx)
    total = INT64 * tokens if job.method in (Method.FULL,) else 0
    if model.position is PositionKind.LEARNED and job.method is Method.FULL:
        total += INT64 * ctx.s_q
    if model.position is PositionKind.ROPE:
        rows = tokens if job.packing else ctx.s_q  # cos/sin follow position_ids: (1, s) unless packed
        rope_dim = model.mla.qk_rope_head_dim if model.mla is not None else model.head_dim
        # in the hidden states' dtype (fp32 under autocast)
        total += 2 * norm_out_bytes(ctx) * rows * rope_dim
    if model.dropout.embedding > 0:
        total += DROPOUT_MASK_BYTES * tokens * model.hidden_size
    return total


def _head(ctx: LayerContext, stack: StackSettings) -> HeadBytes:
    model, job = ctx.model, ctx.job
    trains = job.method in (Method.FULL, Method.FREEZE)
    return head_bytes(
        tokens=tokens_per_micro_batch(ctx),
        vocab=model.vocab_size,
        hidden=model.hidden_size,
        compute_bytes=ctx.e,
        norm_per_token_bytes=norm_bytes(
            model.norm_kind, model.hidden_size, e=norm_out_bytes(ctx), trains=job.method in NORMS_TRAIN
        ),
        constant_bytes=(2 * model.lm_head.weight_numel if job.precision is Precision.AMP_BF16 else 0)
        + (FP32 * model.hidden_size if model.norm_kind is NormKind.RMS_GEMMA else 0),
        softcapped=bool(model.final_logit_softcap),
        head_input_bytes=ctx.f * model.hidden_size if trains else 0,
        tp=ctx.layout.tp,
        sequence_parallel=ctx.layout.sequence_parallel,
        chunked=job.chunked_ce,
        loss_elem_bytes=FP32 if loss_in_fp32(ctx, stack) else ctx.e,
    )


def loss_in_fp32(ctx: LayerContext, stack: StackSettings) -> bool:
    """True when the cross-entropy runs in fp32: the model's loss upcasts the logits
    (`ModelSpec.loss_fp32_upcast`, transformers' ForCausalLMLoss), the stack's own loss does
    (`stack.loss_fp32`: torchtune, torchtitan, Megatron), the compute dtype is fp32, or the step runs under
    torch.autocast, whose fp32 list holds cross_entropy / log_softmax / nll_loss (torch.amp docs). Under
    autocast: amp-bf16, and pure 16-bit weights when the stack autocasts them (`stack.autocast`: the HF
    Trainer with `bf16=True` / `fp16=True` autocasts unless "deepspeed ... manage their own half precision",
    transformers trainer.py; Qwen's finetune_lora_single_gpu.sh). DeepSpeed's fp16 / bf16 engines and the
    master-weight precisions (Megatron, FSDP2 MixedPrecisionPolicy) cast the model and do not autocast."""
    job = ctx.job
    if ctx.model.loss_fp32_upcast or stack.loss_fp32 or ctx.e == FP32 or job.precision is Precision.AMP_BF16:
        return True
    return job.precision in (Precision.BF16, Precision.FP16) and stack.autocast
