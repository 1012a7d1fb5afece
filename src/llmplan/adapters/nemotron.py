"""Adapter for Nemotron (transformers `models/nemotron/modeling_nemotron.py`, v5.23): Nemotron-3 / Nemotron-4 /
Minitron and the Llama-3.1-Minitron / -Nemotron checkpoints whose `model_type` is `nemotron`.

Separate q, k, v, o projections (GQA via `num_key_value_heads`, `head_dim` may differ from hidden / heads), biased
when `attention_bias`; a non-gated MLP `up_proj` -> squared ReLU (`relu2`) -> `down_proj`, biased when
`mlp_bias`; `NemotronLayerNorm1P` (a LayerNorm with weight and bias that scales by 1 + weight) before attention
and MLP and at the end (`model.norm`); rotary embeddings on the first `partial_rotary_factor` (default 0.5) of
each head, no parameters. The head is a separate matrix unless `tie_word_embeddings`.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec

NEMOTRON = b.Family(
    "NemotronForCausalLM",
    b.PLAIN,
    b.LAYER,
    b.ROPE,
    ("hidden_act", "relu2"),
    False,
    "bfloat16",
    (("max_position_embeddings",), 4096),
)


def nemotron(cfg: ConfigView) -> ModelSpec:
    """NemotronForCausalLM."""
    vocab = cfg.int("vocab_size", 256000)
    hidden = cfg.int("hidden_size", 6144)
    layers = cfg.int("num_hidden_layers", 32)
    heads = cfg.int("num_attention_heads", 48)
    kv_heads = cfg.int("num_key_value_heads", heads)
    cfg.divides("num_attention_heads", heads, "num_key_value_heads", kv_heads)
    if not cfg.has("head_dim"):
        cfg.divides("hidden_size", hidden, "num_attention_heads", heads)
    head_dim = cfg.int("head_dim", hidden // heads)
    intermediate = cfg.int("intermediate_size", 24576)
    att_bias = cfg.bool("attention_bias", False)
    mlp_bias = cfg.bool("mlp_bias", False)
    d = b.Dims(vocab, hidden, layers, heads, kv_heads, head_dim, intermediate)
    attn = b.qkvo("self_attn", d, qkv_bias=att_bias, o_bias=att_bias)
    mlp = b.plain_mlp("mlp", hidden, intermediate, bias=mlp_bias, names=("up_proj", "down_proj"))
    block = Block(attn + mlp, b.norms(b.LAYER, hidden, "input_layernorm", "post_attention_layernorm"))
    theta, scaling = cfg.rope()
    tokens = (b.embedding("model.embed_tokens.weight", vocab, hidden),)
    return b.decoder(
        cfg,
        NEMOTRON,
        d,
        block,
        tokens,
        b.norms(b.LAYER, hidden, "model.norm"),
        rope_theta=theta if theta is not None else 10000.0,
        rope_scaling=scaling,
    )
