"""Adapter for model_type "baichuan" (remote code; not in transformers), following baichuan-inc's
`modeling_baichuan.py` (Baichuan2-7B/13B, also Baichuan-13B).

Llama-shaped: fused bias-free `self_attn.W_pack` (h -> 3h, full multi-head attention) and `self_attn.o_proj`,
SwiGLU `mlp.gate_proj` / `up_proj` / `down_proj`, RMSNorm `input_layernorm` / `post_attention_layernorm`,
`model.norm`, untied head. Baichuan 2's head is a `NormHead` (its weight rows are normalised in the forward
pass): one vocab x hidden matrix, no bias, the same count as a Linear.

Positions: the 7B files use RoPE and their configs hold `max_position_embeddings`; the 13B files use ALiBi and
their configs hold only `model_max_length`. That key is how the adapter tells them apart.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.adapters.llama import read_shape
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind


def baichuan(cfg: ConfigView) -> ModelSpec:
    """BaichuanForCausalLM (RoPE 7B or ALiBi 13B)."""
    shape = read_shape(cfg)
    rope = cfg.has("max_position_embeddings")
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "self_attn",
                shape.hidden,
                shape.heads,
                shape.heads,
                shape.head_dim,
                qkv_bias=False,
                o_bias=False,
                names=("W_pack", "o_proj"),
            ),
            *b.gated_mlp("mlp", shape.hidden, shape.intermediate),
        ),
        tensors=(
            *b.norm("input_layernorm", shape.hidden, NormKind.RMS),
            *b.norm("post_attention_layernorm", shape.hidden, NormKind.RMS),
        ),
    )
    return ModelSpec(
        name=cfg.source,
        model_type="baichuan",
        architecture=cfg.architecture("BaichuanForCausalLM"),
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate,
        mlp_kind=MlpKind.GATED,
        hidden_act=cfg.str("hidden_act", "silu"),
        norm_kind=NormKind.RMS,
        position=PositionKind.ROPE if rope else PositionKind.ALIBI,
        max_position_embeddings=cfg.int("max_position_embeddings", 4096, aliases=("model_max_length",)),
        rope_theta=10000.0 if rope else None,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", False),
        native_transformers=False,
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(b.embedding("model.embed_tokens.weight", shape.vocab, shape.hidden),),
        layers=(block,) * shape.layers,
        final=b.norm("model.norm", shape.hidden, NormKind.RMS),
        lm_head=b.lm_head(shape.vocab, shape.hidden),
        config=dict(cfg.data),
    )
