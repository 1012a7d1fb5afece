"""Adapter for BLOOM (transformers `models/bloom/modeling_bloom.py`, v5.23).

ALiBi positions (no parameters), a LayerNorm right after the token embedding (`word_embeddings_layernorm`),
fused biased `query_key_value` (h -> 3h) and `dense`, a plain GELU MLP 4h wide with biases, two LayerNorms per
layer and the final `ln_f`. The head is tied to the embedding by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec

TRAINED_CONTEXT = 2048
"""BLOOM's training sequence length (Le Scao et al. 2022, section 3.5); ALiBi sets no hard limit."""


BLOOM = b.Family("BloomForCausalLM", b.PLAIN, b.LAYER, b.ALIBI, ("", "gelu"), True, "bfloat16")


def bloom(cfg: ConfigView) -> ModelSpec:
    """BloomForCausalLM: `hidden_size` (or `n_embed`), `n_layer`, `n_head`; MLP width is 4·hidden."""
    keys = {"hidden": ("hidden_size", "n_embed"), "layers": ("n_layer", "num_hidden_layers")}
    d = b.read_dims(cfg, **keys, heads=("n_head", "num_attention_heads"), intermediate=(), inner_factor=4)
    qkv_o = b.fused_qkv_o("self_attention", d, qkv_bias=True, o_bias=True, names=("query_key_value", "dense"))
    h_4h = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("dense_h_to_4h", "dense_4h_to_h"))
    layer = Block(qkv_o + h_4h, b.norms(b.LAYER, d.hidden, "input_layernorm", "post_attention_layernorm"))
    word = b.embedding("transformer.word_embeddings.weight", d.vocab, d.hidden)
    embedding = (word, *b.norms(b.LAYER, d.hidden, "transformer.word_embeddings_layernorm"))
    ln_f = b.norms(b.LAYER, d.hidden, "transformer.ln_f")
    context = cfg.int("seq_length", TRAINED_CONTEXT)
    return b.decoder(cfg, BLOOM, d, layer, embedding, ln_f, max_position_embeddings=context)
