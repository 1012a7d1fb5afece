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
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind


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
    norm = NormKind.LAYER
    block = Block(
        linears=(
            *b.qkvo("self_attn", hidden, heads, kv_heads, head_dim, qkv_bias=att_bias, o_bias=att_bias),
            *b.plain_mlp("mlp", hidden, intermediate, bias=mlp_bias, names=("up_proj", "down_proj")),
        ),
        tensors=(
            *b.norm("input_layernorm", hidden, norm),
            *b.norm("post_attention_layernorm", hidden, norm),
        ),
    )
    theta, scaling = cfg.rope()
    return ModelSpec(
        name=cfg.source,
        model_type="nemotron",
        architecture=cfg.architecture("NemotronForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("hidden_act", "relu2"),
        norm_kind=norm,
        position=PositionKind.ROPE,
        max_position_embeddings=cfg.int("max_position_embeddings", 4096),
        rope_theta=theta if theta is not None else 10000.0,
        rope_scaling=scaling,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", False),
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(b.embedding("model.embed_tokens.weight", vocab, hidden),),
        layers=(block,) * layers,
        final=b.norm("model.norm", hidden, norm),
        lm_head=b.lm_head(vocab, hidden),
        config=dict(cfg.data),
    )
