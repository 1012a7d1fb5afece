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
from llmplan.specs.model import Block, Group, Linear, MlpKind, ModelSpec, NormKind, PositionKind, Role, Tensor

POSITION_OFFSET = 2
"""Extra rows of OPT's learned position table (`OPTLearnedPositionalEmbedding.offset`)."""


def _layer_norm(name: str, dim: int, affine: bool) -> tuple[Tensor, ...]:
    return b.norm(name, dim, NormKind.LAYER) if affine else ()


def opt(cfg: ConfigView) -> ModelSpec:
    """OPTForCausalLM."""
    vocab = cfg.int("vocab_size")
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    cfg.divides("hidden_size", hidden, "num_attention_heads", heads)
    ffn = cfg.int("ffn_dim")
    positions = cfg.int("max_position_embeddings", 2048)
    embed_dim = cfg.int("word_embed_proj_dim", hidden)
    bias = cfg.bool("enable_bias", True)
    affine = cfg.bool("layer_norm_elementwise_affine", True)
    block = Block(
        linears=(
            *b.qkvo(
                "self_attn",
                hidden,
                heads,
                heads,
                hidden // heads,
                qkv_bias=bias,
                o_bias=bias,
                names=("q_proj", "k_proj", "v_proj", "out_proj"),
            ),
            Linear("fc1", hidden, ffn, bias, Group.MLP, b.COL, Role.UP),
            Linear("fc2", ffn, hidden, bias, Group.MLP, b.ROW, Role.DOWN),
        ),
        tensors=(
            *_layer_norm("self_attn_layer_norm", hidden, affine),
            *_layer_norm("final_layer_norm", hidden, affine),
        ),
    )
    embedding: tuple[Tensor, ...] = (
        b.embedding("model.decoder.embed_tokens.weight", vocab, embed_dim),
        Tensor(
            "model.decoder.embed_positions.weight", (positions + POSITION_OFFSET) * hidden, Group.POSITION
        ),
    )
    final_linears: tuple[Linear, ...] = ()
    if embed_dim != hidden:
        embedding += (Tensor("model.decoder.project_in.weight", embed_dim * hidden, Group.EMBEDDING),)
        final_linears = (
            Linear(
                "model.decoder.project_out", hidden, embed_dim, False, Group.LM_HEAD, b.REP, Role.PROJECT_OUT
            ),
        )
    has_final_norm = cfg.bool("do_layer_norm_before", True) and not cfg.bool(
        "_remove_final_layer_norm", False
    )
    final = _layer_norm("model.decoder.final_layer_norm", hidden, affine) if has_final_norm else ()
    return ModelSpec(
        name=cfg.source,
        model_type="opt",
        architecture=cfg.architecture("OPTForCausalLM"),
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=ffn,
        mlp_kind=MlpKind.PLAIN,
        hidden_act=cfg.str("activation_function", "relu"),
        norm_kind=NormKind.LAYER,
        position=PositionKind.LEARNED,
        max_position_embeddings=positions,
        tie_word_embeddings=cfg.bool("tie_word_embeddings", True),
        torch_dtype=cfg.torch_dtype("float16"),
        embedding=embedding,
        layers=(block,) * layers,
        final=final,
        final_linears=final_linears,
        lm_head=b.lm_head(vocab, embed_dim),
        config=dict(cfg.data),
    )
