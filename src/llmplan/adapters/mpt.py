"""Adapter for MPT (MosaicML llm-foundry `llmfoundry/models/mpt/modeling_mpt.py` and `configuration_mpt.py`;
transformers `models/mpt/modeling_mpt.py`, v5.23).

Config keys are llm-foundry's: `d_model`, `n_heads`, `n_layers`, `expansion_ratio`, `max_seq_len`, `vocab_size`,
`learned_pos_emb`, `no_bias`, `attn_config` (`attn_type`, `kv_n_heads`, `alibi`, `rope`, `qk_ln`), `ffn_config`
(`ffn_type`, `ffn_hidden_size`), `tie_word_embeddings`. Per block: `norm_1`, `attn.Wqkv` (fused h -> h + 2·kv
heads·head_dim), `attn.out_proj`, `norm_2`, `ffn.up_proj` (h -> expansion_ratio·h), GELU, `ffn.down_proj`; then
`transformer.norm_f`. The norms are llm-foundry's low-precision LayerNorm: a LayerNorm whose bias exists unless
`no_bias`; every linear has a bias unless `no_bias`. Positions: ALiBi (`attn_config.alibi`) or RoPE
(`attn_config.rope`) add no parameters, and llm-foundry then turns `learned_pos_emb` off; otherwise a learned
table `transformer.wpe` of max_seq_len rows. The head is tied to `transformer.wte` unless
`tie_word_embeddings` is false.

llm-foundry's defaults are `no_bias: false`, `learned_pos_emb: true`, `alibi: false` — which its benchmark
(scripts/train/benchmarking) trains: biases everywhere and learned positions. The published mosaicml/mpt-7b
checkpoint sets `no_bias: true` and `alibi: true`. transformers' `MptForCausalLM` implements only that second
form (ALiBi, no biases, multi-head, 4·h MLP, no q/k norms): other configs are marked not native, so the trace
engine refuses them instead of tracing a different model.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.errors import SpecError
from llmplan.specs.model import Block, Group, Linear, ModelSpec, NormScope, Role, Tensor

ATTN_TYPES = ("multihead_attention", "multiquery_attention", "grouped_query_attention")
FFN_TYPES = ("mptmlp",)


MPT = b.Family("MPTForCausalLM", b.PLAIN, b.LAYER, b.LEARNED, ("", "gelu"), True, "bfloat16")


def _sub(cfg: ConfigView, key: str) -> ConfigView:
    value = cfg.raw(key, {})
    if not isinstance(value, Mapping):
        raise SpecError(key, f"{value!r} in {cfg.source} is not an object")
    return ConfigView(value, f"{cfg.source} {key}")


def mpt(cfg: ConfigView) -> ModelSpec:
    """MPTForCausalLM (llm-foundry) / MptForCausalLM (transformers)."""
    vocab = cfg.int("vocab_size", 50368)
    hidden = cfg.int("d_model", 2048, aliases=("hidden_size",))
    layers = cfg.int("n_layers", 24, aliases=("num_hidden_layers",))
    heads = cfg.int("n_heads", 16, aliases=("num_attention_heads",))
    cfg.divides("d_model", hidden, "n_heads", heads)
    head_dim = hidden // heads
    attn = _sub(cfg, "attn_config")
    ffn = _sub(cfg, "ffn_config")
    attn_type = attn.str("attn_type", "multihead_attention")
    if attn_type not in ATTN_TYPES:
        raise SpecError("attn_config.attn_type", f"{attn_type!r} (allowed: {', '.join(ATTN_TYPES)})")
    kv_heads = {"multihead_attention": heads, "multiquery_attention": 1}.get(attn_type) or attn.int(
        "kv_n_heads", heads
    )
    cfg.divides("n_heads", heads, "attn_config.kv_n_heads", kv_heads)
    ffn_type = ffn.str("ffn_type", "mptmlp")
    if ffn_type not in FFN_TYPES:
        raise SpecError("ffn_config.ffn_type", f"{ffn_type!r} (allowed: {', '.join(FFN_TYPES)})")
    ratio = ffn.float("expansion_ratio", cfg.float("expansion_ratio", 4))  # newer yamls nest it in ffn_config
    assert ratio is not None
    if ratio <= 0:
        raise SpecError("expansion_ratio", f"{ratio} in {cfg.source} (allowed: a number > 0)")
    intermediate = ffn.optional_int("ffn_hidden_size") or int(hidden * ratio)
    bias = not cfg.bool("no_bias", False)
    alibi = attn.bool("alibi", False)
    rope = attn.bool("rope", False)
    qk_ln = attn.bool("qk_ln", False)
    learned = cfg.bool("learned_pos_emb", True) and not (
        alibi or rope
    )  # llm-foundry MPTConfig._validate_config
    max_seq = cfg.int("max_seq_len", 2048, aliases=("max_position_embeddings",))
    tied = cfg.bool("tie_word_embeddings", True)
    layer_norm = b.LAYER
    att = Group.ATTENTION
    qk_norms: tuple[Tensor, ...] = ()
    if qk_ln:
        qk_norms = (
            *b.norm("attn.q_ln", hidden, layer_norm, bias=bias, group=att, scope=NormScope.LATENT),
            *b.norm(
                "attn.k_ln", kv_heads * head_dim, layer_norm, bias=bias, group=att, scope=NormScope.LATENT
            ),
        )
    block = Block(
        linears=(
            Linear("attn.Wqkv", hidden, hidden + 2 * kv_heads * head_dim, bias, att, b.COL, Role.QKV),
            Linear("attn.out_proj", hidden, hidden, bias, att, b.ROW, Role.OUT),
            *b.plain_mlp("ffn", hidden, intermediate, bias=bias, names=("up_proj", "down_proj")),
        ),
        tensors=(
            *b.norm("norm_1", hidden, layer_norm, bias=bias),
            *qk_norms,
            *b.norm("norm_2", hidden, layer_norm, bias=bias),
        ),
    )
    native = (
        alibi and not bias and not rope and not qk_ln and kv_heads == heads and intermediate == 4 * hidden
    )
    embedding = (b.embedding("transformer.wte.weight", vocab, hidden),)
    if learned:
        embedding += (b.positions("transformer.wpe.weight", max_seq, hidden),)
    position = b.ALIBI if alibi else b.ROPE if rope else b.LEARNED
    theta = attn.float("rope_theta", 10000.0) if rope else None
    d = b.Dims(vocab, hidden, layers, heads, kv_heads, head_dim, intermediate)
    return b.decoder(
        cfg,
        MPT,
        d,
        block,
        embedding,
        b.norm("transformer.norm_f", hidden, layer_norm, bias=bias),
        position=position,
        max_position_embeddings=max_seq,
        rope_theta=theta,
        rope_scaling=None,
        tie_word_embeddings=tied,
        native_transformers=native,
    )
