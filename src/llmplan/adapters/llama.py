"""Adapters for the Llama-shaped families: pre-norm decoder, RoPE, RMSNorm, gated MLP, q/k/v/o projections.

Covers llama (1/2/3/3.x), mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, gemma3_text,
phi3, glm and glm4. Each mirrors the `__init__` of transformers' `models/<type>/modeling_<type>.py` (v5.23):
which projections exist, their biases, the norms per layer, which layers are MoE or sliding-window.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import (
    AttentionKind,
    Block,
    Group,
    Linear,
    ModelSpec,
    MoeSpec,
    NormKind,
    NormScope,
    Role,
    Tensor,
)

FUSED_GATE_UP = ("gate_up_proj", "", "down_proj")
"""Module names of a fused gate|up MLP (Phi-3, GLM)."""


def read_shape(cfg: ConfigView, *, head_dim_default: int | None = None) -> b.Dims:
    """Validated shape; `head_dim` defaults to hidden / heads unless the config class says otherwise (GLM: 128)."""
    hidden = cfg.int("hidden_size")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    if cfg.has("head_dim") or head_dim_default is not None:
        head_dim = cfg.int("head_dim", head_dim_default)
    else:
        cfg.divides("hidden_size", hidden, "num_attention_heads", heads)
        head_dim = hidden // heads
    cfg.divides("num_attention_heads", heads, "num_key_value_heads", kv_heads)
    return b.Dims(
        vocab=cfg.int("vocab_size"),
        hidden=hidden,
        layers=cfg.int("num_hidden_layers"),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=cfg.int("intermediate_size"),
    )


def layer_attention_kinds(
    cfg: ConfigView, layers: int, *, default_pattern: int | None = None
) -> list[AttentionKind]:
    """Full or sliding attention per layer.

    Order of precedence, as in transformers v5 configs: an explicit `layer_types` list; a sliding pattern
    (Gemma 2: every other layer, `(i + 1) % 2`; Gemma 3: `(i + 1) % sliding_window_pattern`); Qwen2's
    `use_sliding_window` with `max_window_layers`; otherwise every layer slides when `sliding_window` is set.
    """
    types = cfg.raw("layer_types")
    if isinstance(types, list) and len(types) == layers:
        return [AttentionKind.SLIDING if t == "sliding_attention" else AttentionKind.FULL for t in types]
    window = cfg.raw("sliding_window")
    if window is None:
        return [AttentionKind.FULL] * layers
    pattern = cfg.int("sliding_window_pattern", default_pattern or 0, minimum=0)
    if pattern:
        return [AttentionKind.SLIDING if (i + 1) % pattern else AttentionKind.FULL for i in range(layers)]
    if cfg.has("use_sliding_window"):
        if not cfg.bool("use_sliding_window", False):
            return [AttentionKind.FULL] * layers
        first = cfg.int("max_window_layers", layers, minimum=0)
        return [AttentionKind.SLIDING if i >= first else AttentionKind.FULL for i in range(layers)]
    return [AttentionKind.SLIDING] * layers


def spec(
    cfg: ConfigView,
    shape: b.Dims,
    blocks: list[Block],
    *,
    hidden_act_default: str = "silu",
    tie_default: bool = False,
    norm_kind: NormKind = NormKind.RMS,
    **fields: object,
) -> ModelSpec:
    """Assemble a ModelSpec for a Llama-shaped model with embeddings, final RMSNorm and the head; `fields`
    are further ModelSpec fields (moe, softcaps)."""
    kinds = {blk.attention for blk in blocks}
    window = cfg.optional_int("sliding_window") if AttentionKind.SLIDING in kinds else None
    act = cfg.str("hidden_act", cfg.str("hidden_activation", hidden_act_default))
    family = b.Family("LlamaForCausalLM", b.GATED, norm_kind, b.ROPE, ("", act), tie_default)
    embedding = (b.embedding("model.embed_tokens.weight", shape.vocab, shape.hidden),)
    final = b.norms(norm_kind, shape.hidden, "model.norm")
    return b.decoder(cfg, family, shape, blocks, embedding, final, sliding_window=window, **fields)


def _rms(*names: str, dim: int, kind: NormKind = NormKind.RMS) -> tuple[Tensor, ...]:
    return tuple(t for n in names for t in b.norm(n, dim, kind))


def _qk_norms(head_dim: int, kind: NormKind = NormKind.RMS) -> tuple[Tensor, ...]:
    """Per-head RMSNorm of queries and keys (Qwen3, Gemma 3): counted with attention."""
    att = Group.ATTENTION
    return (
        *b.norm("self_attn.q_norm", head_dim, kind, group=att, scope=NormScope.Q_HEADS),
        *b.norm("self_attn.k_norm", head_dim, kind, group=att, scope=NormScope.K_HEADS),
    )


def llama(cfg: ConfigView) -> ModelSpec:
    """LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (modeling_llama.py & co.).

    llama: q/k/v/o bias = `attention_bias`, MLP bias = `mlp_bias`. qwen2: q/k/v biased, o not. qwen3: adds
    q_norm / k_norm. mistral: no biases, optional sliding window.
    """
    model_type = cfg.str("model_type", "llama")
    shape = read_shape(cfg)
    att_bias = cfg.bool("attention_bias", False)
    qkv_bias, o_bias = (True, False) if model_type == "qwen2" else (att_bias, att_bias)
    kinds = layer_attention_kinds(cfg, shape.layers)
    extra = _qk_norms(shape.head_dim) if model_type == "qwen3" else ()
    blocks = [
        Block(
            linears=(
                *b.qkvo("self_attn", shape, qkv_bias=qkv_bias, o_bias=o_bias),
                *b.gated_mlp("mlp", shape.hidden, shape.intermediate, bias=cfg.bool("mlp_bias", False)),
            ),
            tensors=(*extra, *_rms("input_layernorm", "post_attention_layernorm", dim=shape.hidden)),
            attention=kind,
        )
        for kind in kinds
    ]
    return spec(cfg, shape, blocks)


def _moe_layer_flags(cfg: ConfigView, layers: int) -> list[bool]:
    """Which layers are sparse in Qwen2-MoE / Qwen3-MoE: not in `mlp_only_layers`, every `decoder_sparse_step`."""
    step = cfg.int("decoder_sparse_step", 1)
    dense_only = set(cfg.int_list("mlp_only_layers"))
    return [(i not in dense_only) and (i + 1) % step == 0 for i in range(layers)]


def qwen_moe(cfg: ConfigView) -> ModelSpec:
    """Qwen2MoeForCausalLM and Qwen3MoeForCausalLM.

    Sparse layers: router `mlp.gate` (h -> E), routed experts `mlp.experts` (E x SwiGLU of
    `moe_intermediate_size`); Qwen2-MoE adds one shared expert `mlp.shared_expert` of
    `shared_expert_intermediate_size` and its scalar gate `mlp.shared_expert_gate` (h -> 1).
    """
    model_type = cfg.str("model_type", "qwen2_moe")
    is_qwen2 = model_type == "qwen2_moe"
    shape = read_shape(cfg)
    experts = cfg.int("num_experts")
    top_k = cfg.int("num_experts_per_tok")
    expert_size = cfg.int("moe_intermediate_size")
    shared_size = cfg.int("shared_expert_intermediate_size", minimum=0) if is_qwen2 else 0
    if is_qwen2:
        qkv_bias = cfg.bool("qkv_bias", True)
        o_bias = False
        extra: tuple[Tensor, ...] = ()
    else:
        qkv_bias = o_bias = cfg.bool("attention_bias", False)
        extra = _qk_norms(shape.head_dim)
    kinds = layer_attention_kinds(cfg, shape.layers)
    blocks = []
    for kind, sparse in zip(kinds, _moe_layer_flags(cfg, shape.layers), strict=True):
        attn = b.qkvo("self_attn", shape, qkv_bias=qkv_bias, o_bias=o_bias)
        if sparse:
            ffn: tuple[Linear, ...] = (
                b.router("mlp.gate", shape.hidden, experts),
                *b.routed_experts("mlp.experts", shape.hidden, expert_size, experts, top_k),
            )
            if shared_size:
                ffn += (
                    *b.gated_mlp("mlp.shared_expert", shape.hidden, shared_size, group=Group.SHARED_EXPERTS),
                    Linear(
                        "mlp.shared_expert_gate",
                        shape.hidden,
                        1,
                        False,
                        Group.SHARED_EXPERTS,
                        b.REP,
                        Role.SHARED_EXPERT_GATE,
                    ),
                )
        else:
            ffn = b.gated_mlp("mlp", shape.hidden, shape.intermediate)
        blocks.append(
            Block(
                linears=(*attn, *ffn),
                tensors=(*extra, *_rms("input_layernorm", "post_attention_layernorm", dim=shape.hidden)),
                attention=kind,
                moe=sparse,
            )
        )
    moe = MoeSpec(
        num_experts=experts,
        experts_per_token=top_k,
        expert_intermediate_size=expert_size,
        num_shared_experts=1 if shared_size else 0,
        shared_intermediate_size=shared_size,
    )
    return spec(cfg, shape, blocks, moe=moe)


def mixtral(cfg: ConfigView) -> ModelSpec:
    """MixtralForCausalLM: every layer is sparse, `num_local_experts` SwiGLU experts, top-`num_experts_per_tok`."""
    shape = read_shape(cfg)
    experts = cfg.int("num_local_experts")
    top_k = cfg.int("num_experts_per_tok")
    kinds = layer_attention_kinds(cfg, shape.layers)
    blocks = [
        Block(
            linears=(
                *b.qkvo("self_attn", shape, qkv_bias=False, o_bias=False),
                b.router("mlp.gate", shape.hidden, experts),
                *b.routed_experts("mlp.experts", shape.hidden, shape.intermediate, experts, top_k),
            ),
            tensors=_rms("input_layernorm", "post_attention_layernorm", dim=shape.hidden),
            attention=kind,
            moe=True,
        )
        for kind in kinds
    ]
    moe = MoeSpec(num_experts=experts, experts_per_token=top_k, expert_intermediate_size=shape.intermediate)
    return spec(cfg, shape, blocks, moe=moe)


def gemma(cfg: ConfigView) -> ModelSpec:
    """GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM (text): GeGLU MLP, tied head by default.

    Gemma 2 and 3 have four RMSNorms per layer (input, post-attention, pre- and post-feed-forward); Gemma 3 adds
    q/k norms. Local (sliding) and global layers alternate: Gemma 2 every other layer, Gemma 3 five local to
    one global (`sliding_window_pattern` = 6).
    """
    model_type = cfg.str("model_type", "gemma")
    shape = read_shape(cfg)
    bias = cfg.bool("attention_bias", False)
    gemma_rms = NormKind.RMS_GEMMA
    if model_type == "gemma":
        norms = _rms("input_layernorm", "post_attention_layernorm", dim=shape.hidden, kind=gemma_rms)
        kinds = [AttentionKind.FULL] * shape.layers
    else:
        norms = _rms(
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
            dim=shape.hidden,
            kind=gemma_rms,
        )
        if model_type.startswith("gemma3"):
            norms = (*_qk_norms(shape.head_dim, gemma_rms), *norms)
        kinds = layer_attention_kinds(cfg, shape.layers, default_pattern=2 if model_type == "gemma2" else 6)
    blocks = [
        Block(
            linears=(
                *b.qkvo("self_attn", shape, qkv_bias=bias, o_bias=bias),
                *b.gated_mlp("mlp", shape.hidden, shape.intermediate),
            ),
            tensors=norms,
            attention=kind,
        )
        for kind in kinds
    ]
    gemma2 = model_type == "gemma2"  # Gemma2Config defaults the softcaps to 50 and 30; Gemma 3 has none
    return spec(
        cfg,
        shape,
        blocks,
        hidden_act_default="gelu_pytorch_tanh",
        tie_default=True,
        norm_kind=gemma_rms,
        attn_logit_softcap=cfg.float("attn_logit_softcapping", 50.0 if gemma2 else None),
        final_logit_softcap=cfg.float("final_logit_softcapping", 30.0 if gemma2 else None),
    )


def phi3(cfg: ConfigView) -> ModelSpec:
    """Phi3ForCausalLM: fused `qkv_proj` and `gate_up_proj`, no biases."""
    shape = read_shape(cfg)
    kinds = layer_attention_kinds(cfg, shape.layers)
    blocks = [
        Block(
            linears=(
                *b.fused_qkv_o("self_attn", shape, qkv_bias=False, o_bias=False),
                *b.gated_mlp("mlp", shape.hidden, shape.intermediate, fused=True, names=FUSED_GATE_UP),
            ),
            tensors=_rms("input_layernorm", "post_attention_layernorm", dim=shape.hidden),
            attention=kind,
        )
        for kind in kinds
    ]
    return spec(cfg, shape, blocks)


def glm(cfg: ConfigView) -> ModelSpec:
    """GlmForCausalLM and Glm4ForCausalLM (GLM-4-9B in its transformers-native form).

    q/k/v biased (`attention_bias`, true in the published configs), o not; fused `gate_up_proj`; GLM-4 adds
    `post_self_attn_layernorm` and `post_mlp_layernorm` (four norms per layer).
    """
    shape = read_shape(cfg, head_dim_default=128)  # GlmConfig.head_dim defaults to 128
    bias = cfg.bool("attention_bias", True)
    names = ["input_layernorm", "post_attention_layernorm"]
    if cfg.str("model_type", "glm") == "glm4":
        names += ["post_self_attn_layernorm", "post_mlp_layernorm"]
    blocks = [
        Block(
            linears=(
                *b.qkvo("self_attn", shape, qkv_bias=bias, o_bias=False),
                *b.gated_mlp("mlp", shape.hidden, shape.intermediate, fused=True, names=FUSED_GATE_UP),
            ),
            tensors=_rms(*names, dim=shape.hidden),
        )
        for _ in range(shape.layers)
    ]
    return spec(cfg, shape, blocks)
