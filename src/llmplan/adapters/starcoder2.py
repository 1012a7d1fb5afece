"""Adapter for StarCoder2 (transformers `models/starcoder2/modeling_starcoder2.py`, v5.23).

GQA q/k/v/o projections and a plain GELU MLP (`c_fc`, `c_proj`), all biased when `use_bias` (default true);
LayerNorms with bias (two per layer and the final `model.norm`); rotary positions; every layer uses the
sliding window when `sliding_window` is set. The head is tied to the embedding by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.adapters.llama import read_shape
from llmplan.specs.model import AttentionKind, Block, ModelSpec

STARCODER2 = b.Family(
    "Starcoder2ForCausalLM",
    b.PLAIN,
    b.LAYER,
    b.ROPE,
    ("hidden_act", "gelu_pytorch_tanh"),
    True,
    "bfloat16",
    (("max_position_embeddings",), 4096),
)


def starcoder2(cfg: ConfigView) -> ModelSpec:
    """Starcoder2ForCausalLM."""
    shape = read_shape(cfg)
    bias = cfg.bool("use_bias", True)
    window = cfg.optional_int("sliding_window")
    proj = b.qkvo("self_attn", shape, qkv_bias=bias, o_bias=bias)
    c_fc = b.plain_mlp("mlp", shape.hidden, shape.intermediate, bias=bias, names=("c_fc", "c_proj"))
    kind = AttentionKind.SLIDING if window else AttentionKind.FULL
    block = Block(
        proj + c_fc, b.norms(b.LAYER, shape.hidden, "input_layernorm", "post_attention_layernorm"), kind
    )
    embed = [b.embedding("model.embed_tokens.weight", shape.vocab, shape.hidden)]
    return b.decoder(
        cfg,
        STARCODER2,
        shape,
        block,
        embed,
        b.norms(b.LAYER, shape.hidden, "model.norm"),
        sliding_window=window,
    )
