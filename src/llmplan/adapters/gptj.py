"""Adapter for GPT-J (transformers `models/gptj/modeling_gptj.py`, v5.23).

One LayerNorm per layer (`ln_1`) feeds attention and MLP in parallel. Separate bias-free q/k/v/out
projections; a plain GELU MLP (`fc_in`, `fc_out`, `n_inner` wide, default 4·n_embd) with biases. Rotary
embeddings on the first `rotary_dim` channels of each head (no parameters). The head is untied and, unlike
most models, has a bias.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormKind, PositionKind


def gptj(cfg: ConfigView) -> ModelSpec:
    """GPTJForCausalLM: `n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`, `rotary_dim`."""
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("n_embd", aliases=("hidden_size",))
    layers = cfg.int("n_layer", aliases=("num_hidden_layers",))
    heads = cfg.int("n_head", aliases=("num_attention_heads",))
    cfg.divides("n_embd", hidden, "n_head", heads)
    inner = cfg.int("n_inner", 4 * hidden)
    block = Block(
        linears=(
            *b.qkvo(
                "attn",
                hidden,
                heads,
                heads,
                hidden // heads,
                qkv_bias=False,
                o_bias=False,
                names=("q_proj", "k_proj", "v_proj", "out_proj"),
            ),
            *b.plain_mlp("mlp", hidden, inner, bias=True, names=("fc_in", "fc_out")),
        ),
        tensors=b.norm("ln_1", hidden, NormKind.LAYER),
    )
    return ModelSpec(
        name=cfg.source,
        model_type="gptj",
        architecture=cfg.architecture("GPTJForCausalLM"),
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
        position=PositionKind.ROPE,
        max_position_embeddings=cfg.int("n_positions", 2048, aliases=("max_position_embeddings",)),
        rope_theta=10000.0,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", False),
        parallel_attention=True,
        torch_dtype=cfg.torch_dtype("float32"),
        embedding=(b.embedding("transformer.wte.weight", vocab, hidden),),
        layers=(block,) * layers,
        final=b.norm("transformer.ln_f", hidden, NormKind.LAYER),
        lm_head=b.lm_head(vocab, hidden, bias=True),
        config=dict(cfg.data),
    )
