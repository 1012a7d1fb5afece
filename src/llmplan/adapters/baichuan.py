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

from dataclasses import replace

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.adapters.llama import read_shape
from llmplan.specs.model import Block, ModelSpec

BAICHUAN = b.Family("BaichuanForCausalLM", b.GATED, b.RMS, b.ROPE, ("hidden_act", "silu"))


def baichuan(cfg: ConfigView) -> ModelSpec:
    """BaichuanForCausalLM (RoPE 7B or ALiBi 13B)."""
    dims = read_shape(cfg)
    mha = replace(dims, kv_heads=dims.heads)  # W_pack is h -> 3h: full multi-head attention
    rope = cfg.has("max_position_embeddings")
    w_pack = b.fused_qkv_o("self_attn", mha, qkv_bias=False, o_bias=False, names=("W_pack", "o_proj"))
    swiglu = b.gated_mlp("mlp", dims.hidden, dims.intermediate)
    rms = b.norms(b.RMS, dims.hidden, "input_layernorm", "post_attention_layernorm")
    positions = (
        {"rope_theta": 10000.0, "rope_scaling": None} if rope else {"position": b.ALIBI, "rope_theta": None}
    )
    return b.decoder(
        cfg,
        BAICHUAN,
        mha,
        Block(w_pack + swiglu, rms),
        (b.embedding("model.embed_tokens.weight", dims.vocab, dims.hidden),),
        b.norms(b.RMS, dims.hidden, "model.norm"),
        max_position_embeddings=cfg.int("max_position_embeddings", 4096, aliases=("model_max_length",)),
        native_transformers=False,
        **positions,
    )
