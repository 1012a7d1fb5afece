"""Adapter for GPT-BigCode (StarCoder, OctoCoder, SantaCoder): transformers `models/gpt_bigcode/modeling_gpt_bigcode.py`.

Pre-LayerNorm decoder with learned absolute positions (`wpe`, `n_positions` rows) and multi-query attention:
one fused `attn.c_attn` projecting hidden -> hidden + 2·head_dim (one shared key and value head) when
`multi_query` (the default), hidden -> 3·hidden otherwise; `attn.c_proj`; a plain GELU MLP `mlp.c_fc` /
`mlp.c_proj` of `n_inner` (default 4·n_embd). Every linear is biased (`nn.Linear` default); `ln_1`, `ln_2`,
`ln_f` are LayerNorms with bias. The head is tied to `wte` by default (StarCoder's 15.5B count assumes it).
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, ModelSpec

BIGCODE = b.Family(
    "GPTBigCodeForCausalLM", b.PLAIN, b.LAYER, b.LEARNED, ("activation_function", "gelu_pytorch_tanh"), True
)


def gpt_bigcode(cfg: ConfigView) -> ModelSpec:
    """GPTBigCodeForCausalLM: `n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`, `multi_query`."""
    b.decoder_only(cfg, "GPT-BigCode")
    mqa = cfg.bool("multi_query", True)
    d = b.read_dims(cfg, **b.GPT_KEYS, intermediate=("n_inner",), inner_factor=4)
    d = replace(d, kv_heads=1 if mqa else d.heads)  # one shared key and value head under multi-query
    positions = cfg.int("n_positions", aliases=("max_position_embeddings",))
    qkv_o = b.fused_qkv_o("attn", d, qkv_bias=True, o_bias=True, names=("c_attn", "c_proj"))
    fc = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("c_fc", "c_proj"))
    layer = Block(qkv_o + fc, b.norms(b.LAYER, d.hidden, "ln_1", "ln_2"))
    tables = (
        b.embedding("transformer.wte.weight", d.vocab, d.hidden),
        b.positions("transformer.wpe.weight", positions, d.hidden),
    )
    ln_f = b.norms(b.LAYER, d.hidden, "transformer.ln_f")
    dtype = cfg.torch_dtype("float32")
    return b.decoder(
        cfg, BIGCODE, d, layer, tables, ln_f, max_position_embeddings=positions, torch_dtype=dtype
    )
