"""Adapter for GPT-BigCode (StarCoder, OctoCoder, SantaCoder): transformers `models/gpt_bigcode/modeling_gpt_bigcode.py`.

Pre-LayerNorm decoder with learned absolute positions (`wpe`, `n_positions` rows) and multi-query attention:
one fused `attn.c_attn` projecting hidden -> hidden + 2·head_dim (one shared key and value head) when
`multi_query` (the default), hidden -> 3·hidden otherwise; `attn.c_proj`; a plain GELU MLP `mlp.c_fc` /
`mlp.c_proj` of `n_inner` (default 4·n_embd). Every linear is biased (`nn.Linear` default); `ln_1`, `ln_2`,
`ln_f` are LayerNorms with bias. The head is tied to `wte` by default (StarCoder's 15.5B count assumes it).
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.errors import SpecError
from llmplan.specs.model import Block, Group, MlpKind, ModelSpec, NormKind, PositionKind, Tensor


def gpt_bigcode(cfg: ConfigView) -> ModelSpec:
    """GPTBigCodeForCausalLM: `n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`, `multi_query`."""
    if cfg.bool("add_cross_attention", False):
        raise SpecError(
            "add_cross_attention",
            f"true in {cfg.source}: only decoder-only GPT-BigCode is supported (allowed: false)",
        )
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("n_embd", aliases=("hidden_size",))
    layers = cfg.int("n_layer", aliases=("num_hidden_layers",))
    heads = cfg.int("n_head", aliases=("num_attention_heads",))
    cfg.divides("n_embd", hidden, "n_head", heads)
    head_dim = hidden // heads
    kv_heads = 1 if cfg.bool("multi_query", True) else heads
    inner = cfg.int("n_inner", 4 * hidden)
    positions = cfg.int("n_positions", aliases=("max_position_embeddings",))
    block = Block(
        linears=(
            *b.fused_qkv_o(
                "attn",
                hidden,
                heads,
                kv_heads,
                head_dim,
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
        model_type="gpt_bigcode",
        architecture=cfg.architecture("GPTBigCodeForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inner,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("activation_function", "gelu_pytorch_tanh"),
        norm_kind=NormKind.LAYER,
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
