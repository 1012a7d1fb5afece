"""Building blocks shared by the adapters: the parameter tensors of attention, MLPs, experts and norms, the
sizes every config has (`Dims`), the facts fixed per family (`Family`), and `decoder`, which assembles the
ModelSpec.

Each tensor function returns the linear layers (with transformers' module names) or tensors of one sub-module,
so an adapter reads like the `__init__` of the modeling file it mirrors; everything every family shares (sizes,
the head, dtype, tying, RoPE, the config kept as data) is filled in by `decoder` once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmplan.adapters._config import ConfigView
from llmplan.specs.model import (
    Block,
    Group,
    Linear,
    MlpKind,
    ModelSpec,
    NormKind,
    NormScope,
    PositionKind,
    Role,
    Tensor,
    TpSplit,
)

COL, ROW, REP = TpSplit.COLUMN, TpSplit.ROW, TpSplit.REPLICATED
GATED, PLAIN = MlpKind.GATED, MlpKind.PLAIN
RMS, LAYER = NormKind.RMS, NormKind.LAYER
ROPE, LEARNED, ALIBI = PositionKind.ROPE, PositionKind.LEARNED, PositionKind.ALIBI
GPT_KEYS: dict[str, tuple[str, ...]] = {
    "hidden": ("n_embd", "hidden_size"),
    "layers": ("n_layer", "num_hidden_layers"),
    "heads": ("n_head", "num_attention_heads"),
}
"""GPT-2-style config keys (and the names transformers maps them to), for `read_dims`."""


def norm(
    name: str,
    dim: int,
    kind: NormKind,
    *,
    bias: bool | None = None,
    group: Group = Group.NORM,
    scope: NormScope = NormScope.HIDDEN,
) -> tuple[Tensor, ...]:
    """A LayerNorm (weight + bias unless `bias=False`) or an RMSNorm (weight only), tagged with its kind."""
    has_bias = (kind is NormKind.LAYER) if bias is None else bias
    weight = Tensor(f"{name}.weight", dim, group, norm=kind, norm_scope=scope)
    if has_bias:
        return (weight, Tensor(f"{name}.bias", dim, group, is_bias=True, norm=kind, norm_scope=scope))
    return (weight,)


def qkvo(
    prefix: str,
    d: Dims,
    *,
    qkv_bias: bool,
    o_bias: bool,
    names: tuple[str, str, str, str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
) -> tuple[Linear, ...]:
    """Separate q, k, v projections (GQA when kv_heads < heads, MQA when 1) and the output projection."""
    q, k, v, o = names
    att, q_out, kv_out = Group.ATTENTION, d.heads * d.head_dim, d.kv_heads * d.head_dim
    return (
        Linear(f"{prefix}.{q}", d.hidden, q_out, qkv_bias, att, COL, Role.Q),
        Linear(f"{prefix}.{k}", d.hidden, kv_out, qkv_bias, att, COL, Role.K),
        Linear(f"{prefix}.{v}", d.hidden, kv_out, qkv_bias, att, COL, Role.V),
        Linear(f"{prefix}.{o}", q_out, d.hidden, o_bias, att, ROW, Role.OUT),
    )


def fused_qkv_o(
    prefix: str, d: Dims, *, qkv_bias: bool, o_bias: bool, names: tuple[str, str] = ("qkv_proj", "o_proj")
) -> tuple[Linear, ...]:
    """One fused q|k|v projection of (heads + 2·kv_heads)·head_dim (Phi-3, Falcon, Bloom, GPT-NeoX, ChatGLM,
    InternLM2, Baichuan, GPT-2) and the output projection."""
    qkv, o = names
    att, q_out = Group.ATTENTION, d.heads * d.head_dim
    return (
        Linear(
            f"{prefix}.{qkv}", d.hidden, q_out + 2 * d.kv_heads * d.head_dim, qkv_bias, att, COL, Role.QKV
        ),
        Linear(f"{prefix}.{o}", q_out, d.hidden, o_bias, att, ROW, Role.OUT),
    )


def gated_mlp(
    prefix: str,
    hidden: int,
    intermediate: int,
    *,
    bias: bool = False,
    fused: bool = False,
    group: Group = Group.MLP,
    names: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj"),
) -> tuple[Linear, ...]:
    """SwiGLU / GeGLU: gate and up (or one fused gate_up) hidden -> intermediate, down intermediate -> hidden."""
    gate, up, down = names
    if fused:
        return (
            Linear(f"{prefix}.{gate}", hidden, 2 * intermediate, bias, group, COL, Role.GATE_UP),
            Linear(f"{prefix}.{down}", intermediate, hidden, bias, group, ROW, Role.DOWN),
        )
    return (
        Linear(f"{prefix}.{gate}", hidden, intermediate, bias, group, COL, Role.GATE),
        Linear(f"{prefix}.{up}", hidden, intermediate, bias, group, COL, Role.UP),
        Linear(f"{prefix}.{down}", intermediate, hidden, bias, group, ROW, Role.DOWN),
    )


def plain_mlp(
    prefix: str, hidden: int, intermediate: int, *, bias: bool, names: tuple[str, str]
) -> tuple[Linear, ...]:
    """Two-matrix MLP: fc1 hidden -> intermediate, activation, fc2 intermediate -> hidden (`prefix` "": the
    layers sit in the block itself, as OPT's fc1 / fc2)."""
    up, down = (f"{prefix}.{n}" if prefix else n for n in names)
    return (
        Linear(up, hidden, intermediate, bias, Group.MLP, COL, Role.UP),
        Linear(down, intermediate, hidden, bias, Group.MLP, ROW, Role.DOWN),
    )


def routed_experts(
    prefix: str, hidden: int, intermediate: int, num_experts: int, top_k: int, *, bias: bool = False
) -> tuple[Linear, ...]:
    """Routed SwiGLU experts as transformers v5 stores them: fused gate_up (E, 2I, h) and down (E, h, I)."""
    grp = Group.ROUTED_EXPERTS
    return (
        Linear(
            f"{prefix}.gate_up_proj",
            hidden,
            2 * intermediate,
            bias,
            grp,
            COL,
            Role.GATE_UP,
            num_experts,
            top_k,
        ),
        Linear(f"{prefix}.down_proj", intermediate, hidden, bias, grp, ROW, Role.DOWN, num_experts, top_k),
    )


def router(name: str, hidden: int, num_experts: int, *, bias: bool = False) -> Linear:
    """The MoE gate: hidden -> one logit per expert, replicated on every tp rank."""
    return Linear(name, hidden, num_experts, bias, Group.ROUTER, REP, Role.ROUTER)


def positions(name: str, rows: int, hidden: int) -> Tensor:
    """A learned absolute position table of `rows` positions (GPT-2 `wpe`, OPT `embed_positions`)."""
    return Tensor(name, rows * hidden, Group.POSITION)


def embedding(name: str, vocab: int, hidden: int) -> Tensor:
    return Tensor(name, vocab * hidden, Group.EMBEDDING)


Keys = tuple[str, ...]
"""A config key followed by the older names it had (tried in order when it is absent)."""


@dataclass(frozen=True, slots=True)
class Dims:
    """The sizes every decoder config has, read and validated once."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int


def read_dims(
    cfg: ConfigView,
    *,
    hidden: Keys = ("hidden_size",),
    layers: Keys = ("num_hidden_layers",),
    heads: Keys = ("num_attention_heads",),
    vocab: Keys = ("vocab_size",),
    intermediate: Keys = ("intermediate_size",),
    inner_factor: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
) -> Dims:
    """Validated sizes. `intermediate` defaults to `inner_factor` · hidden when given (GPT-2's `n_inner`);
    an empty `intermediate` means it is always that. head_dim defaults to hidden / heads, which must divide;
    kv_heads to heads (multi-head attention)."""
    n_vocab = cfg.int(vocab[0], aliases=vocab[1:])
    h = cfg.int(hidden[0], aliases=hidden[1:])
    n_layers = cfg.int(layers[0], aliases=layers[1:])
    n_heads = cfg.int(heads[0], aliases=heads[1:])
    if head_dim is None:
        cfg.divides(hidden[0], h, heads[0], n_heads)
        head_dim = h // n_heads
    default = inner_factor * h if inner_factor is not None else None
    inner = cfg.int(intermediate[0], default, aliases=intermediate[1:]) if intermediate else default
    assert inner is not None, "an intermediate key or an inner_factor is required"
    kv = n_heads if kv_heads is None else kv_heads
    return Dims(
        vocab=n_vocab,
        hidden=h,
        layers=n_layers,
        heads=n_heads,
        kv_heads=kv,
        head_dim=head_dim,
        intermediate=inner,
    )


@dataclass(frozen=True, slots=True)
class Family:
    """What one family fixes: its class name, MLP / norm / position kinds, where its activation is read
    (config key, default; an empty key: always the default), its defaults for tying, dtype and context."""

    architecture: str
    mlp: MlpKind
    norm: NormKind
    position: PositionKind
    act: tuple[str, str]
    tie: bool = False
    dtype: str = "bfloat16"
    positions: tuple[Keys, int | None] = (("max_position_embeddings",), 2048)
    """Where the context length is read and its default (None: required)."""


def norms(kind: NormKind, dim: int, *names: str) -> tuple[Tensor, ...]:
    """One norm of `kind` and width `dim` per module name (weight, and bias for a LayerNorm)."""
    return tuple(t for name in names for t in norm(name, dim, kind))


def lm_head(vocab: int, hidden: int, *, bias: bool = False, name: str = "lm_head") -> Linear:
    """The output projection to the vocabulary (vocabulary-parallel under TP)."""
    return Linear(name, hidden, vocab, bias, Group.LM_HEAD, COL, Role.LM_HEAD)


def decoder(
    cfg: ConfigView,
    fam: Family,
    d: Dims,
    layers: Block | Iterable[Block],
    embedding: Iterable[Tensor],
    final: Iterable[Tensor],
    **fields: Any,
) -> ModelSpec:
    """The ModelSpec of a decoder-only model: `layers` one block repeated d.layers times (or every block),
    the head `lm_head(vocab, hidden)` unless `lm_head=` is given; `fields` override any ModelSpec field."""
    blocks = (layers,) * d.layers if isinstance(layers, Block) else tuple(layers)
    key, default = fam.act
    out: dict[str, Any] = {
        "name": cfg.source,
        "model_type": cfg.str("model_type", ""),
        "architecture": cfg.architecture(fam.architecture),
        "vocab_size": d.vocab,
        "hidden_size": d.hidden,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads,
        "head_dim": d.head_dim,
        "intermediate_size": d.intermediate,
        "mlp_kind": fam.mlp,
        "norm_kind": fam.norm,
        "position": fam.position,
        "tie_word_embeddings": cfg.bool("tie_word_embeddings", fam.tie),
        "torch_dtype": cfg.torch_dtype(fam.dtype),
        "embedding": tuple(embedding),
        "layers": blocks,
        "final": tuple(final),
        "config": dict(cfg.data),
        **fields,
    }
    if "hidden_act" not in out:
        out["hidden_act"] = cfg.str(key, default) if key else default
    if "max_position_embeddings" not in out:
        keys, positions = fam.positions
        out["max_position_embeddings"] = cfg.int(keys[0], positions, aliases=keys[1:])
    if "rope_theta" not in out and out["position"] is PositionKind.ROPE:
        out["rope_theta"], out["rope_scaling"] = cfg.rope()
    out.setdefault("lm_head", lm_head(d.vocab, d.hidden))
    return ModelSpec(**out)


def decoder_only(cfg: ConfigView, family: str) -> None:
    """Refuse an encoder-decoder configuration (GPT-2 / GPT-BigCode `add_cross_attention`)."""
    from llmplan.errors import SpecError

    if cfg.bool("add_cross_attention", False):
        raise SpecError(
            "add_cross_attention",
            f"true in {cfg.source}: only decoder-only {family} is supported (allowed: false)",
        )
