"""Adapter for model_type "internlm2" (remote code; not in transformers), following InternLM's
`modeling_internlm2.py` (InternLM2 / InternLM2.5).

Llama-shaped with other names: `model.tok_embeddings`; per layer `attention.wqkv`, one fused GQA projection of
(heads + 2·kv_heads)·head_dim laid out group by group (q heads of a group, then its k, then its v), and
`attention.wo`, both biased when `bias` (the config class defaults to true; published configs set false);
SwiGLU `feed_forward.w1` (gate), `w3` (up), `w2` (down), bias-free; RMSNorm `attention_norm`, `ffn_norm`,
`model.norm`; untied head `output`.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.adapters.llama import read_shape
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind


def internlm2(cfg: ConfigView) -> ModelSpec:
    """InternLM2ForCausalLM."""
    shape = read_shape(cfg)
    bias = cfg.bool("bias", True)
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "attention",
                shape.hidden,
                shape.heads,
                shape.kv_heads,
                shape.head_dim,
                qkv_bias=bias,
                o_bias=bias,
                names=("wqkv", "wo"),
            ),
            *b.gated_mlp("feed_forward", shape.hidden, shape.intermediate, names=("w1", "w3", "w2")),
        ),
        tensors=(
            *b.norm("attention_norm", shape.hidden, NormKind.RMS),
            *b.norm("ffn_norm", shape.hidden, NormKind.RMS),
        ),
    )
    theta, scaling = cfg.rope()
    return ModelSpec(
        name=cfg.source,
        model_type="internlm2",
        architecture=cfg.architecture("InternLM2ForCausalLM"),
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate,
        mlp_kind=MlpKind.GATED,
        hidden_act=cfg.str("hidden_act", "silu"),
        norm_kind=NormKind.RMS,
        position=PositionKind.ROPE,
        max_position_embeddings=cfg.int("max_position_embeddings", 2048),
        rope_theta=theta,
        rope_scaling=scaling,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", False),
        native_transformers=False,
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(b.embedding("model.tok_embeddings.weight", shape.vocab, shape.hidden),),
        layers=(block,) * shape.layers,
        final=b.norm("model.norm", shape.hidden, NormKind.RMS),
        lm_head=b.lm_head(shape.vocab, shape.hidden, name="output"),
        config=dict(cfg.data),
    )
