"""Adapter for StarCoder2 (transformers `models/starcoder2/modeling_starcoder2.py`, v5.23).

GQA q/k/v/o projections and a plain GELU MLP (`c_fc`, `c_proj`), all biased when `use_bias` (default true);
LayerNorms with bias (two per layer and the final `model.norm`); rotary positions; every layer uses the
sliding window when `sliding_window` is set. The head is tied to the embedding by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.adapters.llama import read_shape
from llmplan.specs.model import AttentionKind, Block, MlpKind, ModelSpec, NormKind, PositionKind


def starcoder2(cfg: ConfigView) -> ModelSpec:
    """Starcoder2ForCausalLM."""
    shape = read_shape(cfg)
    bias = cfg.bool("use_bias", True)
    window = cfg.optional_int("sliding_window")
    block = Block(
        linears=(
            *b.qkvo(
                "self_attn",
                shape.hidden,
                shape.heads,
                shape.kv_heads,
                shape.head_dim,
                qkv_bias=bias,
                o_bias=bias,
            ),
            *b.plain_mlp("mlp", shape.hidden, shape.intermediate, bias=bias, names=("c_fc", "c_proj")),
        ),
        tensors=(
            *b.norm("input_layernorm", shape.hidden, NormKind.LAYER),
            *b.norm("post_attention_layernorm", shape.hidden, NormKind.LAYER),
        ),
        attention=AttentionKind.SLIDING if window else AttentionKind.FULL,
    )
    theta, scaling = cfg.rope()
    return ModelSpec(
        name=cfg.source,
        model_type="starcoder2",
        architecture=cfg.architecture("Starcoder2ForCausalLM"),
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("hidden_act", "gelu_pytorch_tanh"),
        norm_kind=NormKind.LAYER,
        position=PositionKind.ROPE,
        max_position_embeddings=cfg.int("max_position_embeddings", 4096),
        rope_theta=theta,
        rope_scaling=scaling,
        sliding_window=window,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", True),
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(b.embedding("model.embed_tokens.weight", shape.vocab, shape.hidden),),
        layers=(block,) * shape.layers,
        final=b.norm("model.norm", shape.hidden, NormKind.LAYER),
        lm_head=b.lm_head(shape.vocab, shape.hidden),
        config=dict(cfg.data),
    )
