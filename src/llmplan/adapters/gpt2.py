"""Adapter for GPT-2 (transformers `models/gpt2/modeling_gpt2.py`, v5.23).

Pre-LayerNorm decoder with learned absolute positions (`wpe`, `n_positions` rows), fused
`c_attn` (h -> 3h) and a plain GELU MLP (`c_fc`, `c_proj`), every projection biased. The projections are
`Conv1D` modules whose weight is stored transposed, (in, out) instead of (out, in): the count is the same.
The head is tied to `wte` by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.errors import SpecError
from llmplan.specs.model import Block, Group, MlpKind, ModelSpec, NormKind, PositionKind, Tensor


def gpt2(cfg: ConfigView) -> ModelSpec:
    """GPT2LMHeadModel: `n_embd`, `n_layer`, `n_head`, `n_inner` (default 4·n_embd), `n_positions`."""
    if cfg.bool("add_cross_attention", False):
        raise SpecError(
            "add_cross_attention",
            f"true in {cfg.source}: only decoder-only GPT-2 is supported (allowed: false)",
        )
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("n_embd", aliases=("hidden_size",))
    layers = cfg.int("n_layer", aliases=("num_hidden_layers",))
    heads = cfg.int("n_head", aliases=("num_attention_heads",))
    cfg.divides("n_embd", hidden, "n_head", heads)
    inner = cfg.int("n_inner", 4 * hidden)
    positions = cfg.int("n_positions", aliases=("max_position_embeddings",))
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "attn",
                hidden,
                heads,
                heads,
                hidden // heads,
                qkv_bias=True,
                o_bias=True,
                names=("c_attn", "c_proj"),
            ),
            *b.plain_mlp("mlp", hidden, inner, bias=True, names=("c_fc", "c_proj")),
        ),
        tensors=(*b.norm("ln_1", hidden, NormKind.LAYER), *b.norm("ln_2", hidden, NormKind.LAYER)),
    )
    return ModelSpec(
        name=cfg.source,
        model_type="gpt2",
        architecture=cfg.architecture("GPT2LMHeadModel"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=inner,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("activation_function", "gelu_new"),
        norm_kind=NormKind.LAYER,
        softmax_fp32=False,  # GPT2Attention's eager softmax runs in the compute dtype
        position=PositionKind.LEARNED,
        max_position_embeddings=positions,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", True),
        torch_dtype=cfg.torch_dtype("float32"),
        embedding=(
            b.embedding("transformer.wte.weight", vocab, hidden),
            Tensor("transformer.wpe.weight", positions * hidden, Group.POSITION),
        ),
        layers=(block,) * layers,
        final=b.norm("transformer.ln_f", hidden, NormKind.LAYER),
        lm_head=b.lm_head(vocab, hidden),
        config=dict(cfg.data),
    )
