"""Saved bytes of the attention core of one decoder layer (rows "attention" and "fused qkv" of the table in
`formulas.layer_activations`): q, k, v after RoPE, the output, the logsumexp of sdpa / flash, or the eager
scores and probabilities; masks when a mask is passed."""

from __future__ import annotations

from llmplan.formulas.layer_context import DROPOUT_MASK_BYTES, FP32, LayerContext
from llmplan.specs.model import AttentionKind, Block, ModelSpec, PositionKind, Role
from llmplan.specs.training import AttentionImpl, Method


def fused_qkv(ctx: LayerContext, block: Block) -> bool:
    return any(lin.role is Role.QKV for lin in block.linears)


def head_dims(model: ModelSpec) -> tuple[int, int, int]:
    """(kv heads, q/k head dim, v head dim); MLA decompresses to full heads of nope + rope / v_head_dim."""
    if model.mla is not None:
        mla = model.mla
        return model.num_attention_heads, mla.qk_nope_head_dim + mla.qk_rope_head_dim, mla.v_head_dim
    return model.num_key_value_heads, model.head_dim, model.head_dim


def attention_terms(ctx: LayerContext, block: Block, *, selective: bool) -> tuple[int, int, int]:
    """(tp-sharded per token, replicated per token, tp-sharded per sequence) bytes of the attention core."""
    model, job, e = ctx.model, ctx.job, ctx.e
    a = model.num_attention_heads
    kv, dqk, dv = head_dims(model)
    ratio_num, ratio_den = ctx.s_k, ctx.s_q * ctx.layout.cp  # key length over the full query length
    eager = job.attention is AttentionImpl.EAGER
    window = model.sliding_window if block.attention is AttentionKind.SLIDING else None
    masked = (window is not None and window < ctx.s_k) or (
        job.packing and job.attention is AttentionImpl.SDPA
    )
    masked = masked or job.method in (Method.PREFIX, Method.PTUNING_V2)
    if eager or (masked and job.attention is AttentionImpl.SDPA):
        kv = a  # repeat_kv copies k and v to every head (no enable_gqa when a mask is passed)
    q = e * a * dqk
    k = e * kv * dqk * ratio_num // ratio_den
    v = e * kv * dv * ratio_num // ratio_den
    if fused_qkv(ctx, block) and not eager and model.position is not PositionKind.ROPE:
        k = v = 0
        q += e * (a * dqk + 2 * model.num_key_value_heads * dqk)  # k, v: views of the fused output (GPT-2)
    sharded = q + k + v
    replicated = 0
    per_sequence = 0
    if eager and not selective:
        per_score = (FP32 + (e if e < FP32 else 0)) if model.softmax_fp32 else e
        if model.attn_logit_softcap:
            per_score += e  # tanh output of the softcapping
        if model.dropout.attention > 0:
            per_score += DROPOUT_MASK_BYTES
        sharded += a * ctx.s_k * per_score
    else:
        # the output (o_proj's input; with selective recompute of eager attention the core's output is kept)
        # and, for sdpa / flash, the fp32 logsumexp per row
        sharded += e * a * dv + (0 if eager else FP32 * a)
        if masked and job.attention is AttentionImpl.SDPA and not eager:
            per_sequence = e * ctx.s_q * ctx.s_k * ctx.layout.tp  # one mask for all heads: not split
    return sharded, replicated, per_sequence
