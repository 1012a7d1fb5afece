"""Adapter for Falcon (transformers `models/falcon/modeling_falcon.py`, v5.23).

Attention and MLP run in parallel (`parallel_attn`, default true). The fused `query_key_value` is sized by the
architecture flag:
- `new_decoder_architecture` (Falcon-40B/180B, Falcon 2): GQA with `num_kv_heads` groups, q|k|v of
  (heads + 2·kv_heads)·head_dim, two LayerNorms per layer (`ln_attn`, `ln_mlp`) unless
  `num_ln_in_parallel_attn` = 1;
- `multi_query` (Falcon-7B): one shared k and v head, hidden + 2·head_dim, one `input_layernorm`;
- otherwise full multi-head attention, 3·hidden.
Non-parallel layers have `input_layernorm` and `post_attention_layernorm`. Every linear layer carries a bias
only when `bias` (default false). Positions are ALiBi when `alibi`, rotary otherwise. The MLP is
`ffn_hidden_size` wide (default 4·hidden).
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec, Tensor

FALCON = b.Family("FalconForCausalLM", b.PLAIN, b.LAYER, b.ROPE, ("activation", "gelu"), True, "bfloat16")


def _kv_heads(cfg: ConfigView, heads: int, new_arch: bool) -> int:
    if new_arch:
        kv_heads = cfg.int("num_kv_heads", heads)
        cfg.divides("num_attention_heads", heads, "num_kv_heads", kv_heads)
        return kv_heads
    return 1 if cfg.bool("multi_query", True) else heads


def _layer_norms(cfg: ConfigView, hidden: int, new_arch: bool) -> tuple[Tensor, ...]:
    if not cfg.bool("parallel_attn", True):
        names = ("post_attention_layernorm", "input_layernorm")
    elif cfg.int("num_ln_in_parallel_attn", 2 if new_arch else 1) == 2:
        names = ("ln_attn", "ln_mlp")
    else:
        names = ("input_layernorm",)
    return b.norms(b.LAYER, hidden, *names)


def falcon(cfg: ConfigView) -> ModelSpec:
    """FalconForCausalLM."""
    keys = {"hidden": ("hidden_size", "n_embed"), "layers": ("num_hidden_layers", "n_layer")}
    d = b.read_dims(cfg, **keys, heads=("num_attention_heads", "n_head"), intermediate=(), inner_factor=4)
    new_arch = cfg.bool("new_decoder_architecture", False)
    d = replace(
        d, kv_heads=_kv_heads(cfg, d.heads, new_arch), intermediate=cfg.int("ffn_hidden_size", d.intermediate)
    )
    bias = cfg.bool("bias", False)
    mlp_names = ("dense_h_to_4h", "dense_4h_to_h")
    linears = (
        *b.fused_qkv_o("self_attention", d, qkv_bias=bias, o_bias=bias, names=("query_key_value", "dense")),
        *b.plain_mlp("mlp", d.hidden, d.intermediate, bias=bias, names=mlp_names),
    )
    rope = (
        {}
        if not cfg.bool("alibi", False)
        else {"position": b.ALIBI, "rope_theta": None, "rope_scaling": None}
    )
    return b.decoder(
        cfg,
        FALCON,
        d,
        Block(linears, _layer_norms(cfg, d.hidden, new_arch)),
        (b.embedding("transformer.word_embeddings.weight", d.vocab, d.hidden),),
        b.norms(b.LAYER, d.hidden, "transformer.ln_f"),
        parallel_attention=cfg.bool("parallel_attn", True),
        softmax_fp32=False,  # FalconAttention's eager softmax runs in the compute dtype
        **rope,
    )
