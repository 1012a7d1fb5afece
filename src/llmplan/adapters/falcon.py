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

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind, Tensor


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
    return tuple(t for name in names for t in b.norm(name, hidden, NormKind.LAYER))


def falcon(cfg: ConfigView) -> ModelSpec:
    """FalconForCausalLM."""
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("hidden_size", aliases=("n_embed",))
    layers = cfg.int("num_hidden_layers", aliases=("n_layer",))
    heads = cfg.int("num_attention_heads", aliases=("n_head",))
    cfg.divides("hidden_size", hidden, "num_attention_heads", heads)
    head_dim = hidden // heads
    new_arch = cfg.bool("new_decoder_architecture", False)
    kv_heads = _kv_heads(cfg, heads, new_arch)
    ffn = cfg.int("ffn_hidden_size", 4 * hidden)
    bias = cfg.bool("bias", False)
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "self_attention",
                hidden,
                heads,
                kv_heads,
                head_dim,
                qkv_bias=bias,
                o_bias=bias,
                names=("query_key_value", "dense"),
            ),
            *b.plain_mlp("mlp", hidden, ffn, bias=bias, names=("dense_h_to_4h", "dense_4h_to_h")),
        ),
        tensors=_layer_norms(cfg, hidden, new_arch),
    )
    alibi = cfg.bool("alibi", False)
    theta, scaling = (None, None) if alibi else cfg.rope()
    return ModelSpec(
        name=cfg.source,
        model_type="falcon",
        architecture=cfg.architecture("FalconForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=ffn,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("activation", "gelu"),
        norm_kind=NormKind.LAYER,
        softmax_fp32=False,  # FalconAttention's eager softmax runs in the compute dtype
        position=PositionKind.ALIBI if alibi else PositionKind.ROPE,
        max_position_embeddings=cfg.int("max_position_embeddings", 2048),
        rope_theta=theta,
        rope_scaling=scaling,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", True),
        parallel_attention=cfg.bool("parallel_attn", True),
        torch_dtype=cfg.torch_dtype("bfloat16"),
        embedding=(b.embedding("transformer.word_embeddings.weight", vocab, hidden),),
        layers=(block,) * layers,
        final=b.norm("transformer.ln_f", hidden, NormKind.LAYER),
        lm_head=b.lm_head(vocab, hidden),
        config=dict(cfg.data),
    )
