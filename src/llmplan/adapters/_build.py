"""Building blocks shared by the adapters: the parameter tensors of attention, MLPs, experts and norms.

Each function returns the linear layers (with transformers' module names) or tensors of one sub-module, so an
adapter reads like the `__init__` of the modeling file it mirrors.
"""

from __future__ import annotations

from llmplan.specs.model import Group, Linear, NormKind, NormScope, Role, Tensor, TpSplit

COL, ROW, REP = TpSplit.COLUMN, TpSplit.ROW, TpSplit.REPLICATED


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
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    *,
    qkv_bias: bool,
    o_bias: bool,
    names: tuple[str, str, str, str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
) -> tuple[Linear, ...]:
    """Separate q, k, v projections (GQA when kv_heads < heads, MQA when 1) and the output projection."""
    q, k, v, o = names
    att = Group.ATTENTION
    return (
        Linear(f"{prefix}.{q}", hidden, heads * head_dim, qkv_bias, att, COL, Role.Q),
        Linear(f"{prefix}.{k}", hidden, kv_heads * head_dim, qkv_bias, att, COL, Role.K),
        Linear(f"{prefix}.{v}", hidden, kv_heads * head_dim, qkv_bias, att, COL, Role.V),
        Linear(f"{prefix}.{o}", heads * head_dim, hidden, o_bias, att, ROW, Role.OUT),
    )


def fused_qkv_o(
    prefix: str,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    *,
    qkv_bias: bool,
    o_bias: bool,
    names: tuple[str, str] = ("qkv_proj", "o_proj"),
) -> tuple[Linear, ...]:
    """One fused q|k|v projection (Phi-3, Falcon, Bloom, GPT-NeoX, ChatGLM, InternLM2, Baichuan) and the output."""
    qkv, o = names
    att = Group.ATTENTION
    return (
        Linear(f"{prefix}.{qkv}", hidden, (heads + 2 * kv_heads) * head_dim, qkv_bias, att, COL, Role.QKV),
        Linear(f"{prefix}.{o}", heads * head_dim, hidden, o_bias, att, ROW, Role.OUT),
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
    """Two-matrix MLP: fc1 hidden -> intermediate, activation, fc2 intermediate -> hidden."""
    up, down = names
    return (
        Linear(f"{prefix}.{up}", hidden, intermediate, bias, Group.MLP, COL, Role.UP),
        Linear(f"{prefix}.{down}", intermediate, hidden, bias, Group.MLP, ROW, Role.DOWN),
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


def embedding(name: str, vocab: int, hidden: int) -> Tensor:
    return Tensor(name, vocab * hidden, Group.EMBEDDING)


def lm_head(vocab: int, hidden: int, *, bias: bool = False, name: str = "lm_head") -> Linear:
    return Linear(name, hidden, vocab, bias, Group.LM_HEAD, COL, Role.LM_HEAD)
