"""Adapter for BLOOM (transformers `models/bloom/modeling_bloom.py`, v5.23).

ALiBi positions (no parameters), a LayerNorm right after the token embedding (`word_embeddings_layernorm`),
fused biased `query_key_value` (h -> 3h) and `dense`, a plain GELU MLP 4h wide with biases, two LayerNorms per
layer and the final `ln_f`. The head is tied to the embedding by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind

TRAINED_CONTEXT = 2048
"""BLOOM's training sequence length (Le Scao et al. 2022, section 3.5); ALiBi sets no hard limit."""


def bloom(cfg: ConfigView) -> ModelSpec:
    """BloomForCausalLM: `hidden_size` (or `n_embed`), `n_layer`, `n_head`; MLP width is 4·hidden."""
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("hidden_size", aliases=("n_embed",))
    layers = cfg.int("n_layer", aliases=("num_hidden_layers",))
    heads = cfg.int("n_head", aliases=("num_attention_heads",))
    cfg.divides("hidden_size", hidden, "n_head", heads)
    layer_norm = NormKind.LAYER
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "self_attention",
                hidden,
                heads,
                heads,
                hidden // heads,
                qkv_bias=True,
                o_bias=True,
                names=("query_key_value", "dense"),
            ),
            *b.plain_mlp("mlp", hidden, 4 * hidden, bias=True, names=("dense_h_to_4h", "dense_4h_to_h")),
        ),
        tensors=(
            *b.norm("input_layernorm", hidden, layer_norm),
            *b.norm("post_attention_layernorm", hidden, layer_norm),
        ),
    )
    return ModelSpec(
        name=cfg.source,
        model_type="bloom",
        architecture=cfg.architecture("BloomForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        mlp_kind=MlpKind.PLAIN,
        hidden_act="gelu",
        norm_kind=layer_norm,
        position=PositionKind.ALIBI,
        max_position_embeddings=cfg.int("seq_length", TRAINED_CONTEXT),
        tie_word_embeddings=cfg.bool("tie_word_embeddings", True),
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(
            b.embedding("transformer.word_embeddings.weight", vocab, hidden),
            *b.norm("transformer.word_embeddings_layernorm", hidden, layer_norm),
        ),
        layers=(block,) * layers,
        final=b.norm("transformer.ln_f", hidden, layer_norm),
        lm_head=b.lm_head(vocab, hidden),
        config=dict(cfg.data),
    )
