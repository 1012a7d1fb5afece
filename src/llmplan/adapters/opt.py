"""Adapter for OPT (transformers `models/opt/modeling_opt.py`, v5.23).

Per layer: q/k/v/out projections and fc1/fc2, all biased when `enable_bias` (default true), and two LayerNorms
(`self_attn_layer_norm`, `final_layer_norm`) whose weight and bias exist only when
`layer_norm_elementwise_affine` (default true). Learned positions have `max_position_embeddings + 2` rows
(`OPTLearnedPositionalEmbedding` offsets position ids by 2). When `word_embed_proj_dim` differs from
`hidden_size` (opt-350m: 512 vs 1024) the token table and the head are `word_embed_proj_dim` wide and two
bias-free projections `project_in` / `project_out` map to and from the hidden size. The final LayerNorm exists
only when `do_layer_norm_before` and not `_remove_final_layer_norm` (opt-350m is post-norm and has none).
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, Group, Linear, ModelSpec, NormKind, Role, Tensor

POSITION_OFFSET = 2
"""Extra rows of OPT's learned position table (`OPTLearnedPositionalEmbedding.offset`)."""


OPT = b.Family(
    "OPTForCausalLM", b.PLAIN, b.LAYER, b.LEARNED, ("activation_function", "relu"), True, "float16"
)


def _layer_norm(name: str, dim: int, affine: bool) -> tuple[Tensor, ...]:
    return b.norm(name, dim, NormKind.LAYER) if affine else ()


def opt(cfg: ConfigView) -> ModelSpec:
    """OPTForCausalLM."""
    d = b.read_dims(cfg, intermediate=("ffn_dim",))
    positions = cfg.int("max_position_embeddings", 2048)
    embed_dim = cfg.int("word_embed_proj_dim", d.hidden)
    bias = cfg.bool("enable_bias", True)
    affine = cfg.bool("layer_norm_elementwise_affine", True)
    names = ("q_proj", "k_proj", "v_proj", "out_proj")
    block = Block(
        (
            *b.qkvo("self_attn", d, qkv_bias=bias, o_bias=bias, names=names),
            *b.plain_mlp("", d.hidden, d.intermediate, bias=bias, names=("fc1", "fc2")),
        ),
        (
            *_layer_norm("self_attn_layer_norm", d.hidden, affine),
            *_layer_norm("final_layer_norm", d.hidden, affine),
        ),
    )
    embedding: tuple[Tensor, ...] = (
        b.embedding("model.decoder.embed_tokens.weight", d.vocab, embed_dim),
        b.positions("model.decoder.embed_positions.weight", positions + POSITION_OFFSET, d.hidden),
    )
    final_linears: tuple[Linear, ...] = ()
    if embed_dim != d.hidden:
        embedding += (Tensor("model.decoder.project_in.weight", embed_dim * d.hidden, Group.EMBEDDING),)
        final_linears = (
            Linear(
                "model.decoder.project_out",
                d.hidden,
                embed_dim,
                False,
                Group.LM_HEAD,
                b.REP,
                Role.PROJECT_OUT,
            ),
        )
    has_final_norm = cfg.bool("do_layer_norm_before", True) and not cfg.bool(
        "_remove_final_layer_norm", False
    )
    final = _layer_norm("model.decoder.final_layer_norm", d.hidden, affine) if has_final_norm else ()
    head = b.lm_head(d.vocab, embed_dim)
    return b.decoder(cfg, OPT, d, block, embedding, final, final_linears=final_linears, lm_head=head)
