"""Adapter for GPT-NeoX / Pythia (transformers `models/gpt_neox/modeling_gpt_neox.py`, v5.23).

Fused `attention.query_key_value` (h -> 3h) and `attention.dense`, biased when `attention_bias` (default
true); a plain GELU MLP with biases; two LayerNorms per layer; rotary embeddings on the first `rotary_pct`
(`partial_rotary_factor`) of each head, no parameters. With `use_parallel_residual` (default true) attention
and MLP read the same input. The head is a separate, untied matrix: published checkpoints call it `embed_out`,
transformers v5 names the module `lm_head`.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind


def gpt_neox(cfg: ConfigView) -> ModelSpec:
    """GPTNeoXForCausalLM."""
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    cfg.divides("hidden_size", hidden, "num_attention_heads", heads)
    intermediate = cfg.int("intermediate_size")
    att_bias = cfg.bool("attention_bias", True)
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "attention",
                hidden,
                heads,
                heads,
                hidden // heads,
                qkv_bias=att_bias,
                o_bias=att_bias,
                names=("query_key_value", "dense"),
            ),
            *b.plain_mlp("mlp", hidden, intermediate, bias=True, names=("dense_h_to_4h", "dense_4h_to_h")),
        ),
        tensors=(
            *b.norm("input_layernorm", hidden, NormKind.LAYER),
            *b.norm("post_attention_layernorm", hidden, NormKind.LAYER),
        ),
    )
    theta, scaling = cfg.rope()
    return ModelSpec(
        name=cfg.source,
        model_type="gpt_neox",
        architecture=cfg.architecture("GPTNeoXForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=intermediate,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("hidden_act", "gelu"),
        norm_kind=NormKind.LAYER,
        position=PositionKind.ROPE,
        max_position_embeddings=cfg.int("max_position_embeddings", 2048),
        rope_theta=theta if theta is not None else cfg.float("rotary_emb_base"),
        rope_scaling=scaling,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", False),
        parallel_attention=cfg.bool("use_parallel_residual", True),
        torch_dtype=cfg.torch_dtype("float16"),
        embedding=(b.embedding("gpt_neox.embed_in.weight", vocab, hidden),),
        layers=(block,) * layers,
        final=b.norm("gpt_neox.final_layer_norm", hidden, NormKind.LAYER),
        lm_head=b.lm_head(vocab, hidden),
        config=dict(cfg.data),
    )
