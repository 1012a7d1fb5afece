"""Saved-for-backward bytes of one decoder layer, term by term, as the HF transformers implementation saves them.

Measured with `torch.autograd.graph.saved_tensors_hooks` on the real models built on fake tensors (storages
deduplicated, parameters excluded; torch 2.13, transformers 5.23, peft 0.21); tests/test_activations.py holds the
traced values as data and repeats the measurement. Per token of one micro-batch (e = bytes of the compute dtype,
f = bytes of a saved GEMM input: e, or 1 under fp8; w = a norm's width; I = MLP width; a, kv = heads; d = head
dim; s_k = key length):

    RMSNorm, Llama style   4·w + 4 (+ e·w)   fp32 upcast of the input and 1/rms, saved by the mul that
                                             normalises; + the normalised tensor in the input dtype, saved
                                             by `weight * x` only when the weight trains
    RMSNorm, Gemma style   4·w + 4 (+ 4·w)   `x.float() * (1 + w.float())`: all fp32 (+ 4·w per layer for 1 + w)
    LayerNorm              e·w + 8           input + fp32 mean and rstd (native_layer_norm on CUDA; the CPU
                                             trace keeps them in bf16, 4 bytes less)
    GEMM inputs            f·in              once per distinct input tensor (q/k/v share one, gate/up share
                                             one), only when the linear's weight trains (dW = x^T·dY); a
                                             frozen linear saves nothing for its input gradient
    attention, sdpa/flash  e·(2·a·d + 2·kv·d) + 4·a   q and k after RoPE, v, the output (also o_proj's
                                             input) and the fp32 logsumexp; k/v at kv heads (transformers
                                             passes `enable_gqa`); no s² tensor. With a mask (sliding window
                                             shorter than the sequence, prefix tokens, packing under sdpa):
                                             repeat_kv copies k/v to all heads and the mask (e·s·s_k per
                                             sequence) is saved
    attention, eager       3·e·a·d + a·s_k·(4 + e)   q, k, v (repeat_kv copies at full heads), the fp32
                                             softmax output and its cast to the compute dtype: 6 bytes per
                                             score in bf16 (design.md), 4 in fp32; o_proj's input is a copy.
                                             GPT-2 / Falcon keep the softmax in the compute dtype (e per
                                             score); Gemma 2 softcapping adds the tanh output (e); attention
                                             dropout its mask (1)
    fused qkv, no RoPE     k, v are views of the c_attn output, which stays whole: e·(a + 2·kv)·d (GPT-2)
    gated MLP (SwiGLU)     3·e·I             gate output (silu's input), up output and act output (the mul
                                             saves both factors); the product is down_proj's GEMM input
    plain MLP (GELU)       e·I               fc1 output; its activation output is fc2's GEMM input;
                                             gelu_new (Python NewGELU) keeps 3 more tensors of I
    MoE layer              router: 4·E + 4 + 40·k (fp32 softmax, top-k indices and weights, sort and scatter
                           indices); routed experts: k·(e·h [routed copy] + 2·e·I + e·I + e·I [grouped_mm
                           inputs] + e·h [expert output, scaled by its weight]); the first and the fourth only
                           when the experts train; DeepSeek's fp32 router adds 4·h (+ 4·E·h per layer);
                           Qwen2-MoE's gated shared expert adds e·h + e
    MLA                    as attention with kv = a heads of qk_nope + qk_rope (q, k) and v_head_dim (v, out)

Llama (RMSNorm, SwiGLU, sdpa), bf16, full training: 2·(4h+4+2h) + 2h + 2·(a·d + 2·kv·d) + 4a + 3·2I + 2I
= 20h + 4·kv·d + 8I + 4a + 8 per token; Llama-2-7B (h 4096, I 11008) at 2048 tokens: 381,960,192 bytes per
layer (45.5 bytes per token per hidden unit), equal to the trace to the byte.

PEFT on a frozen base (peft 0.21, peft/tuners/lora/layer.py `Linear.forward`): each adapted linear casts its
input to the adapter dtype (fp32 by default) separately, so q, k and v save three fp32 copies: 4·in + 4·r
(lora_A's output) per adapted linear, + 1·in with lora_dropout > 0 (mask, and the dropped copy replaces the
cast one); adapters in the compute dtype (`--adapter-dtype bf16`) cast nothing, so without dropout lora_A saves
the linear's own input, once per distinct input (`_lora_input_bytes`); frozen linears save no input. DoRA
(peft/tuners/lora/dora.py `DoraLinearLayer.forward`) also saves the base and LoRA results (e·out + 4·out per
token) and the fp32 column norm and magnitude scales (3·4·out per layer); the eye(in) it pushes through lora_A
and lora_B to form B·A, and the fp32 copies of W and W + s·B·A, are freed when the module returns (a
transient of 4·(in² + in·r + 3·in·out) for the largest adapted linear). LoRA on transformers v5's fused experts
(peft `target_parameters`) saves the merged weight W + B·A in the compute dtype and the casts of A and B.
QLoRA: bitsandbytes' MatMul4Bit keeps its bf16 input (e·in per distinct input) besides the LoRA fp32 copies
(not traceable here: bitsandbytes cannot build its 4-bit parameters on fake tensors). Prompt tuning and
p-tuning lengthen the sequence by the virtual tokens; prefix tuning lengthens the keys. Nothing before the
first trained tensor needs a gradient, so the first layer's input norm saves no upcast.

Precision: fp32 doubles every term but the fp32 ones; the eager scores cost 4 bytes (the cast is a no-op).
torch.autocast over fp32 weights (AMP_BF16) keeps fp32 norm outputs, casts them to bf16 once per consuming
linear (q, k, v: three copies) and saves the bf16 copy of every weight for the input gradient (2 bytes per
parameter of the layer, per micro-batch; frozen weights included: the GEMM saves the cast for the input
gradient whether or not autocast caches it, traced with LoRA); LoRA's adapters then run in bf16 (2·in + 2·r
per adapted linear, + bf16 copies of A and B). fp8 (Transformer Engine) saves the GEMM inputs in fp8 (f = 1).
"""

from __future__ import annotations

from llmplan.formulas.attention_activations import attention_terms, fused_qkv
from llmplan.formulas.layer_context import (
    BASE_TRAINS,
    DROPOUT_MASK_BYTES,
    FP32,
    NORMS_TRAIN,
    LayerContext,
    is_adapted,
    norm_out_bytes,
    param_wrapped,
    tokens_per_micro_batch,
)
from llmplan.formulas.parallel.tensor import sequence_split
from llmplan.formulas.peft import LORA_FAMILY, lora_rank
from llmplan.specs.model import (
    ActivationImpl,
    Block,
    Group,
    Linear,
    MlpKind,
    NormKind,
    NormScope,
    Role,
    TpSplit,
)
from llmplan.specs.training import AttentionImpl, Method, Precision, Recompute

ACTIVATION_EXTRA_TENSORS = {
    ActivationImpl.NEW_GELU: 3,
    ActivationImpl.FAST_GELU: 3,
    ActivationImpl.QUICK_GELU: 1,
}
"""Activations written as Python compositions (transformers/activations.py) save intermediates besides their
input: NewGELU keeps tanh(.), 0.5·x and 1 + tanh(.) (traced on GPT-2); QuickGELU sigmoid(1.702x)."""
MOE_ROUTING_BYTES_PER_K = 40
"""Per token and routed expert: top-k index (8), top-k weight (4), two int64 sort/scatter indices (16), the
routed copy's weight (4) and its scatter index (8); traced on transformers 5 Mixtral (grouped_mm experts)."""


NORM_ROWS_PER_TOKEN = {
    NormScope.HIDDEN: lambda model: 1,
    NormScope.LATENT: lambda model: 1,
    NormScope.Q_HEADS: lambda model: model.num_attention_heads,
    NormScope.K_HEADS: lambda model: model.num_key_value_heads,
}
"""Rows one norm normalises per token: per-head q / k norms see one row of head_dim per head."""


def norm_bytes(kind: NormKind, width: int, *, e: int, trains: bool) -> int:
    """Saved bytes per token of one norm of `kind` and `width` features (formulas in the module docstring)."""
    if kind is NormKind.LAYER:
        return e * width + 2 * FP32
    kept = (FP32 if kind is NormKind.RMS_GEMMA else e) * width if trains else 0
    return FP32 * width + FP32 + kept


def first_norm_bytes(ctx: LayerContext, block: Block) -> int:
    """The input norm's saved bytes that vanish when the layer's input needs no gradient (first trained layer
    of a frozen-embedding method): its fp32 upcast and 1/rms (or LayerNorm input and statistics)."""
    norms = [t for t in block.tensors if t.group is Group.NORM and not t.is_bias and t.norm is not None]
    if not norms:
        return 0
    per_token = norm_bytes(norms[0].norm, norms[0].numel, e=norm_out_bytes(ctx), trains=False)
    return tokens_per_micro_batch(ctx) * per_token // sequence_split(ctx.layout)


def layer_bytes(ctx: LayerContext, block: Block, *, recompute: Recompute) -> int:
    """Saved bytes of one decoder layer for one micro-batch on one rank."""
    tokens = tokens_per_micro_batch(ctx)
    if recompute is Recompute.FULL:
        # torch.utils.checkpoint keeps the layer's input only (Chen et al. 2016): e·h per token.
        return tokens * ctx.e * ctx.model.hidden_size // sequence_split(ctx.layout)
    replicated, sharded, per_sequence = _per_token_terms(
        ctx, block, selective=recompute is Recompute.SELECTIVE
    )
    tp = ctx.layout.tp
    rep_split = sequence_split(ctx.layout)
    constant = _per_layer_constant(ctx, block) // tp
    return (
        tokens * replicated // rep_split
        + tokens * sharded // tp
        + ctx.job.micro_batch_size * per_sequence // tp
        + constant
    )


def _per_layer_constant(ctx: LayerContext, block: Block) -> int:
    """Saved bytes of one layer that do not scale with tokens (weight-sized tensors), before the tp split.

    - autocast (AMP_BF16): the bf16 copy of every fp32 weight is saved by its GEMM for the input gradient;
    - Gemma's fp32 (1 + weight) of each norm, saved by the multiply;
    - LoRA on parameters (peft `target_parameters`, used for transformers v5's fused MoE experts and routers,
      which are not nn.Linear): the merged weight W + B·A in the compute dtype is saved by the GEMM.
    """
    model, job, e = ctx.model, ctx.job, ctx.e
    total = 0
    if job.precision is Precision.AMP_BF16:
        # frozen weights too: the GEMM saves the cast for the input gradient whether or not autocast caches it
        total += 2 * sum(lin.weight_numel for lin in block.linears)
        if job.method in LORA_FAMILY:
            r = job.peft.lora_rank
            total += sum(
                2 * r * (lin.in_features + lin.out_features)
                for lin in block.linears
                if is_adapted(ctx, lin) and not param_wrapped(ctx, lin)
            )
    total += sum(
        FP32 * t.numel
        for t in block.tensors
        if t.group is Group.NORM and not t.is_bias and t.norm is NormKind.RMS_GEMMA
    )
    if block.moe and model.moe is not None and model.moe.router_fp32:
        total += FP32 * model.moe.num_experts * model.hidden_size  # fp32 copy of the router weight
    if job.method is Method.DORA:
        # the fp32 weight norm ||W + s·B·A||_c and the magnitude scale m / norm (and m / norm - 1), out each
        total += sum(3 * FP32 * lin.out_features for lin in block.linears if is_adapted(ctx, lin))
    if job.method in LORA_FAMILY:
        r = job.peft.lora_rank
        for lin in block.linears:
            if param_wrapped(ctx, lin):
                total += e * lin.weight_numel
            if param_wrapped(ctx, lin) and lin.group is Group.ROUTED_EXPERTS:
                # the compute-dtype casts of A and B of every expert; peft gives the fused gate_up (converted
                # from the two targets w1 and w3) rank 2r
                rank = lora_rank(model, lin, r)
                total += e * lin.copies * rank * (lin.in_features + lin.out_features)
    return total


def _per_token_terms(ctx: LayerContext, block: Block, *, selective: bool) -> tuple[int, int, int]:
    """(replicated, tp-sharded) bytes per token and tp-sharded bytes per sequence of one layer."""
    model, job = ctx.model, ctx.job
    base_trains = job.method in BASE_TRAINS
    norms_train = job.method in NORMS_TRAIN
    replicated = 0
    sharded = 0
    hidden_norms = 0
    for t in block.tensors:
        if t.is_bias or t.norm is None:
            continue
        width = t.numel
        heads = NORM_ROWS_PER_TOKEN[t.norm_scope](model)
        term = norm_bytes(t.norm, width, e=norm_out_bytes(ctx), trains=norms_train) * heads
        if model.parallel_attention and t.group is Group.NORM:
            hidden_norms += 1
            if hidden_norms > 1 and t.norm is NormKind.LAYER:
                term -= ctx.e * width  # attention and MLP norms read the same layer input (GPT-NeoX, GPT-J)
        if t.group is Group.ATTENTION:
            sharded += term
        else:
            replicated += term
    rep_in, sh_in = _gemm_input_terms(ctx, block, base_trains=base_trains, selective=selective)
    replicated += rep_in
    sharded += sh_in
    attn_sh, attn_rep, per_sequence = attention_terms(ctx, block, selective=selective)
    sharded += attn_sh
    replicated += attn_rep
    sharded += _mlp_terms(ctx, block, base_trains=base_trains)
    replicated += _dropout_terms(ctx)
    return replicated, sharded, per_sequence


def _input_key(lin: Linear, shared_norm: bool) -> tuple[str, int, str]:
    """Linears with equal keys read the same input tensor (q/k/v; gate/up/router; shared experts; with one
    norm per parallel-attention layer, as in Falcon-7B, attention and MLP)."""
    side = "attention" if lin.group is Group.ATTENTION and not shared_norm else "mlp"
    if lin.tp is TpSplit.ROW:
        return (side, lin.in_features, lin.group.value)
    return (side, lin.in_features, "in")


def _gemm_input_terms(
    ctx: LayerContext, block: Block, *, base_trains: bool, selective: bool
) -> tuple[int, int]:
    """GEMM inputs saved for weight gradients, LoRA adapters' fp32 inputs, QLoRA's bf16 base inputs."""
    e, f, job = ctx.e, ctx.f, ctx.job
    sdpa_like = job.attention is not AttentionImpl.EAGER or selective
    fused = fused_qkv(ctx, block)
    hidden_norms = sum(1 for t in block.tensors if t.group is Group.NORM and not t.is_bias)
    shared_norm = ctx.model.parallel_attention and hidden_norms == 1
    replicated = sharded = 0
    seen: set[tuple[str, int, str]] = set()
    for lin in block.linears:
        if lin.group is Group.ROUTED_EXPERTS:
            continue
        key = _input_key(lin, shared_norm and lin.tp is not TpSplit.ROW)
        row = lin.tp is TpSplit.ROW
        adds = 0
        first = key not in seen
        seen.add(key)
        shares_core_out = row and lin.group is Group.ATTENTION and sdpa_like and not fused
        amp_cast = job.precision is Precision.AMP_BF16 and not row  # autocast casts the fp32 norm output
        input_saved = (first or amp_cast) and not shares_core_out
        if input_saved:
            if base_trains or param_wrapped(ctx, lin):
                adds += f * lin.in_features
            elif job.method is Method.QLORA:
                adds += e * lin.in_features  # bitsandbytes MatMul4Bit keeps its input A for grad_input
        if job.method in LORA_FAMILY and is_adapted(ctx, lin) and not param_wrapped(ctx, lin):
            adds += _lora_input_bytes(ctx, lin, input_saved=input_saved and not (base_trains or job.method is Method.QLORA))
            if job.method is Method.DORA:
                # (mag_norm_scale - 1) * base_result and mag_norm_scale * lora_result save both results
                adds += e * lin.out_features + FP32 * lin.out_features
        elif job.method is Method.IA3 and is_adapted(ctx, lin):
            # peft/tuners/ia3/layer.py Linear.forward: a feed-forward target casts its input to the dtype of
            # the fp32 vector l (`x.to(dtype)`) and scales it; the product saves that fp32 copy for l's
            # gradient. The other targets scale the base output y, saved in the compute dtype.
            adds += FP32 * lin.in_features if row else e * lin.out_features
        if row:
            sharded += adds
        else:
            replicated += adds
    return replicated, sharded


def _lora_input_bytes(ctx: LayerContext, lin: Linear, *, input_saved: bool) -> int:
    """What one adapted linear's LoRA branch saves per token (peft/tuners/lora/layer.py `Linear.forward`:
    `lora_B(lora_A(dropout(x)))` after `x = self._cast_input_dtype(x, lora_A.weight.dtype)`).

    lora_B saves lora_A's output (a·r, a = adapter dtype bytes). lora_A saves its input: a new tensor per
    adapted linear when x is cast (adapter dtype != compute dtype: `x.to(dtype)`; under autocast lora_A runs
    in bf16, a bf16 copy) or dropped (`nn.Dropout` with p > 0 returns a new tensor and saves its bool mask),
    else the linear's own input x itself — one copy per distinct input, none when another saver already
    keeps it (`input_saved` False: q/k/v share one normed input; o_proj's is the attention output)."""
    job, e = ctx.job, ctx.e
    amp = job.precision is Precision.AMP_BF16
    a = 2 if amp else job.peft.adapter_bytes
    dropout = job.peft.lora_dropout > 0
    total = a * job.peft.lora_rank
    if amp or a != e or dropout:
        total += a * lin.in_features
    elif input_saved:
        total += e * lin.in_features
    if dropout:
        total += DROPOUT_MASK_BYTES * lin.in_features
    return total


def _mlp_terms(ctx: LayerContext, block: Block, *, base_trains: bool) -> int:
    """Saved MLP intermediates per token (tp-sharded), dense, shared-expert and routed-expert parts."""
    model, e = ctx.model, ctx.e
    extra = ACTIVATION_EXTRA_TENSORS.get(model.activation_impl, 0)
    per_gated = 3 + extra if model.mlp_kind is MlpKind.GATED else 1 + extra
    total = 0
    for lin in block.linears:
        if lin.tp is TpSplit.ROW and lin.group in (Group.MLP, Group.SHARED_EXPERTS):
            total += per_gated * e * lin.in_features
    if block.moe and model.moe is not None:
        moe = model.moe
        k, width, h = moe.experts_per_token, moe.expert_intermediate_size, model.hidden_size
        experts_train = base_trains or any(
            is_adapted(ctx, lin) for lin in block.linears if lin.group is Group.ROUTED_EXPERTS
        )
        routed = k * (per_gated * e * width + e * h)  # intermediates + down output (scaled by the weight)
        if experts_train:
            routed += k * (e * h + e * width)  # grouped_mm inputs: routed tokens, down's input
        total += routed + FP32 * moe.num_experts + FP32 + MOE_ROUTING_BYTES_PER_K * k
        if moe.router_fp32:
            total += FP32 * h  # the router's fp32 copy of its input
    if any(lin.role is Role.SHARED_EXPERT_GATE for lin in block.linears):
        total += (
            e * model.hidden_size + e
        )  # shared expert output and its sigmoid gate, saved by their product
    return total


def _dropout_terms(ctx: LayerContext) -> int:
    """Residual-dropout masks per token (GPT-2's resid_pdrop after attention and after the MLP)."""
    if ctx.model.dropout.residual > 0:
        return 2 * DROPOUT_MASK_BYTES * ctx.model.hidden_size
    return 0


def layer_transient(ctx: LayerContext, block: Block) -> int:
    """Largest backward transient of one layer above the saved set."""
    model, job, e = ctx.model, ctx.job, ctx.e
    tokens = tokens_per_micro_batch(ctx)
    tp = ctx.layout.tp
    widths = [lin.in_features for lin in block.linears if lin.tp is TpSplit.ROW and lin.group is Group.MLP]
    mlp = 3 * e * max(widths, default=model.intermediate_size) * tokens // tp  # grads of gate, up, act
    scores = 0
    if job.attention is AttentionImpl.EAGER:
        # softmax backward: fp32 gradient of the probabilities and the compute-dtype gradient of the scores
        scores = job.micro_batch_size * model.num_attention_heads * ctx.s_q * ctx.s_k * (FP32 + 2 * e) // tp
    weights = 0
    adapted = [lin for lin in block.linears if is_adapted(ctx, lin)]
    if job.method is Method.QLORA:
        # NF4 dequantised to the compute dtype for the GEMM, forward and backward: the largest linear
        weights = max((e * lin.in_features * lin.out_features // tp for lin in block.linears), default=0)
    if job.method is Method.DORA and adapted:
        # DoraLinearLayer.forward: B·A formed as lora_B(lora_A(eye(in))) (eye in², A's output in·r), the base
        # weight cast to fp32 and W + s·B·A for the column norm; freed when the module returns
        weights = max(
            FP32
            * (
                lin.in_features * (lin.in_features + job.peft.lora_rank)
                + 3 * lin.in_features * lin.out_features
            )
            // tp
            for lin in adapted
        )
    if job.method is Method.IA3:
        # backward of IA3's fp32 scaling of a feed-forward input (peft/tuners/ia3/layer.py): the fp32 gradient
        # of the product (the bf16 cast's backward), the fp32 input gradient and the (T, in) product summed
        # into l's gradient, alive together in the multiplication's backward
        ff = [lin.in_features for lin in block.linears if lin.tp is TpSplit.ROW and is_adapted(ctx, lin)]
        weights = max(weights, 3 * FP32 * max(ff, default=0) * tokens // tp)
    return max(mlp, scores, weights)
