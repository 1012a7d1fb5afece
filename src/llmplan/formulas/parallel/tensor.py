"""Tensor parallelism: the part of each linear layer one tp rank holds (Shoeybi et al. 2019, "Megatron-LM",
section 3).

Column-parallel layers split their output features, row-parallel layers their input features (the bias is
not split: it is added after the all-reduce), replicated layers are whole on every rank. Key and value
projections keep whole heads: a rank holds max(1, kv_heads / tp) of them, i.e. a kv head is replicated over
tp / kv_heads ranks when tp exceeds the kv heads (Megatron-Core `TransformerConfig.num_query_groups`; vLLM
`QKVParallelLinear`: `num_kv_head_replicas = tp_size // total_num_kv_heads`). A fused q|k|v projection
follows the same rule per part: heads / tp query heads plus max(1, kv_heads / tp) key and value heads, e.g.
an MQA model with 48 query heads and 1 kv head of 128 at tp 4 holds (12 + 2)·128 = 1792 of its 6400 columns.
MLA's projections (DeepSeek-V2) have no K / V role and split like any column layer.

Sequence parallel (Korthikanti et al. 2022, section 4.2.2) splits what tensor parallel leaves whole between the
row- and column-parallel GEMMs (norms, dropout, the replicated GEMM inputs) over the tp ranks by sequence.
"""

from __future__ import annotations

from llmplan.specs.model import Linear, ModelSpec, Role, TpSplit
from llmplan.specs.training import Layout

KV_ROLES = frozenset({Role.K, Role.V})
"""Projections whose output is whole kv heads."""
HEAD_ROLES = frozenset({Role.K, Role.V, Role.QKV})
"""Projections whose column split follows the kv heads rather than an even split of the features."""


def kv_heads_per_rank(kv_heads: int, tp: int) -> int:
    """Key / value heads one tp rank holds: kv_heads / tp, or 1 (replicated) when tp exceeds them."""
    return max(1, kv_heads // tp)


def shard_linear(linear: Linear, model: ModelSpec, tp: int) -> tuple[int, int]:
    """(in, out) features of `linear` on one tp rank (rules in the module docstring); uneven splits round up."""
    if tp == 1 or linear.tp is TpSplit.REPLICATED:
        return linear.in_features, linear.out_features
    if linear.tp is TpSplit.ROW:
        return -(-linear.in_features // tp), linear.out_features
    kv = model.num_key_value_heads
    if linear.role in KV_ROLES:
        return linear.in_features, linear.out_features // kv * kv_heads_per_rank(kv, tp)
    if linear.role is Role.QKV:
        heads = model.num_attention_heads
        head_dim = linear.out_features // (heads + 2 * kv)
        return linear.in_features, (-(-heads // tp) + 2 * kv_heads_per_rank(kv, tp)) * head_dim
    return linear.in_features, -(-linear.out_features // tp)


def bias_on_rank(linear: Linear, out_on_rank: int) -> int:
    """Bias elements of one copy of `linear` on a tp rank: whole for a row-parallel layer, else split."""
    if not linear.bias:
        return 0
    return linear.out_features if linear.tp is TpSplit.ROW else out_on_rank


def sequence_split(layout: Layout) -> int:
    """How many ways the replicated activations are split: tp with sequence parallel, else 1."""
    return layout.tp if layout.sequence_parallel else 1
