"""Adapter for GPT-J (transformers `models/gptj/modeling_gptj.py`, v5.23).

One LayerNorm per layer (`ln_1`) feeds attention and MLP in parallel. Separate bias-free q/k/v/out
projections; a plain GELU MLP (`fc_in`, `fc_out`, `n_inner` wide, default 4·n_embd) with biases. Rotary
embeddings on the first `rotary_dim` channels of each head (no parameters). The head is untied and, unlike
most models, has a bias.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec

GPTJ = b.Family(
    "GPTJForCausalLM",
    b.PLAIN,
    b.LAYER,
    b.ROPE,
    ("activation_function", "gelu_new"),
    False,
    "float32",
    (("n_positions", "max_position_embeddings"), 2048),
)


def gptj(cfg: ConfigView) -> ModelSpec:
    """GPTJForCausalLM: `n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`, `rotary_dim`."""
    d = b.read_dims(cfg, **b.GPT_KEYS, intermediate=("n_inner",), inner_factor=4)
    projections = b.qkvo(
        "attn", d, qkv_bias=False, o_bias=False, names=("q_proj", "k_proj", "v_proj", "out_proj")
    )
    fc = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("fc_in", "fc_out"))
    return b.decoder(
        cfg,
        GPTJ,
        d,
        Block(projections + fc, b.norms(b.LAYER, d.hidden, "ln_1")),
        (b.embedding("transformer.wte.weight", d.vocab, d.hidden),),
        b.norms(b.LAYER, d.hidden, "transformer.ln_f"),
        rope_theta=10000.0,
        rope_scaling=None,
        parallel_attention=True,
        lm_head=b.lm_head(d.vocab, d.hidden, bias=True),
    )
