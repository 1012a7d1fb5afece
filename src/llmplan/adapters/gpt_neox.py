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
from llmplan.specs.model import Block, ModelSpec

NEOX = b.Family("GPTNeoXForCausalLM", b.PLAIN, b.LAYER, b.ROPE, ("hidden_act", "gelu"), False, "float16")


def gpt_neox(cfg: ConfigView) -> ModelSpec:
    """GPTNeoXForCausalLM."""
    d = b.read_dims(cfg)
    bias = cfg.bool("attention_bias", True)
    attention = b.fused_qkv_o("attention", d, qkv_bias=bias, o_bias=bias, names=("query_key_value", "dense"))
    ffn = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("dense_h_to_4h", "dense_4h_to_h"))
    ln = b.norms(b.LAYER, d.hidden, "input_layernorm", "post_attention_layernorm")
    theta, scaling = cfg.rope()
    return b.decoder(
        cfg,
        NEOX,
        d,
        Block(attention + ffn, ln),
        (b.embedding("gpt_neox.embed_in.weight", d.vocab, d.hidden),),
        b.norms(b.LAYER, d.hidden, "gpt_neox.final_layer_norm"),
        rope_theta=theta if theta is not None else cfg.float("rotary_emb_base"),
        rope_scaling=scaling,
        parallel_attention=cfg.bool("use_parallel_residual", True),
    )
