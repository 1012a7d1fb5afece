"""Expert parallelism: routed experts spread over the ep ranks (Lepikhin et al. 2020, "GShard"; Megatron-Core
`moe/experts.py`): each rank holds ceil(E / ep) experts of every MoE layer, everything else whole. ZeRO / FSDP
then shard the experts over the expert-data-parallel group, dp · cp / ep ranks (Megatron-Core
`expert_data_parallel`), the rest over dp · cp (`parallel.data`).
"""

from __future__ import annotations

from llmplan.specs.model import Group, Linear


def expert_copies_on_rank(linear: Linear, ep: int) -> int:
    """Stored copies of `linear` on one ep rank: ceil(copies / ep) for routed experts, all copies otherwise."""
    if linear.group is Group.ROUTED_EXPERTS:
        return -(-linear.copies // ep)
    return linear.copies


def expert_sharding_group(sharding_group: int, ep: int) -> int:
    """GPUs the routed experts' states are sharded over: the data-parallel group divided by ep (at least 1)."""
    return max(1, sharding_group // ep) if sharding_group > 1 else 1
