"""Context parallelism: the sequence is split over the cp ranks (Megatron-Core context parallel; Liu et al.
2023 "Ring Attention"): each rank keeps the activations of ceil(s / cp) query tokens and attends to the whole
key length through the ring exchange. ZeRO / FSDP count the cp ranks in the data-parallel group
(`parallel.data.sharding_group`).
"""

from __future__ import annotations


def query_tokens_on_rank(seq_len: int, cp: int) -> int:
    """Query tokens of one sequence on one cp rank: ceil(s / cp)."""
    return -(-seq_len // cp)
