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
from llmplan.specs.model import Block, ModelSpec

INTERNLM2 = b.Family("InternLM2ForCausalLM", b.GATED, b.RMS, b.ROPE, ("hidden_act", "silu"))


def internlm2(cfg: ConfigView) -> ModelSpec:
    """InternLM2ForCausalLM."""
    d = read_shape(cfg)
    bias = cfg.bool("bias", True)
    wqkv_wo = b.fused_qkv_o("attention", d, qkv_bias=bias, o_bias=bias, names=("wqkv", "wo"))
    w123 = b.gated_mlp("feed_forward", d.hidden, d.intermediate, names=("w1", "w3", "w2"))
    layer = Block(wqkv_wo + w123, b.norms(b.RMS, d.hidden, "attention_norm", "ffn_norm"))
    tok = (b.embedding("model.tok_embeddings.weight", d.vocab, d.hidden),)
    out = b.lm_head(d.vocab, d.hidden, name="output")
    model_norm = b.norms(b.RMS, d.hidden, "model.norm")
    return b.decoder(cfg, INTERNLM2, d, layer, tok, model_norm, lm_head=out, native_transformers=False)
