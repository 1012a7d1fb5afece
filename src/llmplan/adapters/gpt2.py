"""Adapter for GPT-2 (transformers `models/gpt2/modeling_gpt2.py`, v5.23).

Pre-LayerNorm decoder with learned absolute positions (`wpe`, `n_positions` rows), fused
`c_attn` (h -> 3h) and a plain GELU MLP (`c_fc`, `c_proj`), every projection biased. The projections are
`Conv1D` modules whose weight is stored transposed, (in, out) instead of (out, in): the count is the same.
The head is tied to `wte` by default.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec

GPT2 = b.Family(
    "GPT2LMHeadModel", b.PLAIN, b.LAYER, b.LEARNED, ("activation_function", "gelu_new"), True, "float32"
)


def gpt2(cfg: ConfigView) -> ModelSpec:
    """GPT2LMHeadModel: `n_embd`, `n_layer`, `n_head`, `n_inner` (default 4·n_embd), `n_positions`."""
    b.decoder_only(cfg, "GPT-2")
    d = b.read_dims(cfg, **b.GPT_KEYS, intermediate=("n_inner",), inner_factor=4)
    positions = cfg.int("n_positions", aliases=("max_position_embeddings",))
    attn = b.fused_qkv_o("attn", d, qkv_bias=True, o_bias=True, names=("c_attn", "c_proj"))
    mlp = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("c_fc", "c_proj"))
    wte = b.embedding("transformer.wte.weight", d.vocab, d.hidden)
    embedding = (wte, b.positions("transformer.wpe.weight", positions, d.hidden))
    final = b.norms(b.LAYER, d.hidden, "transformer.ln_f")
    block = Block(attn + mlp, b.norms(b.LAYER, d.hidden, "ln_1", "ln_2"))
    # GPT2Attention's eager softmax runs in the compute dtype
    return b.decoder(
        cfg, GPT2, d, block, embedding, final, max_position_embeddings=positions, softmax_fp32=False
    )
