"""Every collective a training layout performs in one step, with its size and where it can overlap.

Per micro-batch on one GPU (b sequences of s tokens, s/cp per context-parallel rank; h hidden; a = 2 bytes
of 16-bit activations; layers of the GPU's pipeline stage):

- TP (Shoeybi et al. 2019, section 3; Korthikanti et al. 2022, section 4.2.2 for SP): each attention and each MLP
  block ends in a row-parallel linear whose partial outputs are all-reduced (b·s·h·a bytes), twice per layer
  forward and twice backward (the column-parallel inputs' gradients); with sequence parallelism each
  all-reduce becomes a reduce-scatter plus an all-gather of the same bytes. Full recomputation reruns the
  forward's. The vocabulary-parallel embedding adds one forward all-reduce on the first stage, the head one
  backward all-reduce on the last. Not overlapped (synchronous TP).
- CP, ring attention (Liu et al. 2023; torchtitan / Megatron-Core context parallel): per layer the K and V
  chunks travel cp − 1 steps around the ring forward (b·(s/cp)·2·kv_heads·head_dim·a bytes a step), K, V and
  their gradients backward; each step overlaps the attention of the chunk in hand.
- EP (Lepikhin et al. 2021, GShard; Megatron-Core all-to-all dispatcher): per MoE layer an all-to-all to
  dispatch the b·s·k routed token copies (b·s·k·h·a bytes) and one to combine them, forward and backward.
- PP (Narayanan et al. 2021): one activation send forward and one gradient send backward per micro-batch and
  stage boundary, b·s·h·a bytes (/tp with SP).
- data parallel over dp·cp ranks (ZeRO / FSDP shard over the same group; `model_states`):
  DDP: all-reduce of the gradients once per step in buckets of DDP_BUCKET_BYTES, overlapped with the last
  micro-batch's backward; ZeRO-1: reduce-scatter of the gradients at the last micro-batch, ZeRO-2 at every
  micro-batch (DeepSpeed `overlap_comm`), both overlapped with backward, then an all-gather of the updated
  16-bit parameters after the step (DeepSpeed: not overlapped; Megatron-Core overlaps it with the next
  forward, `overlap_param_gather`); ZeRO-3 / FSDP: every micro-batch all-gathers every
  unit's parameters for forward and again for backward (not again with shard-grad-op, ZeRO-2) and
  reduce-scatters the gradients, prefetched one unit ahead (FSDP `forward_prefetch` / `backward_prefetch`):
  overlapped with the pass's compute except the first unit. HSDP shards inside a node and all-reduces the
  shards' gradients across nodes once per step.
- offload (ZeRO-Offload, Ren et al. 2021): 16-bit gradients to the host during backward, updated 16-bit
  parameters back after the CPU step; parameter offload (ZeRO-Infinity) streams the parameters in for forward
  and backward of every micro-batch. Over the host link (PCIe), NVMe behind it for the nvme target.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from llmplan.breakdown import Term
from llmplan.formulas.comms import Collective, CommGroup, collective_time

OVERLAP_CONTENTION = 0.5
"""Seconds of compute lost per second of a collective that runs under it: NCCL's kernels take SMs (one per
channel, up to 32 of 108 / 132) and HBM bandwidth (every byte sent is read, every byte received written) from
the GEMMs they overlap (the interference that compute-communication fusion work such as Jangda et al. 2022,
"Breaking the Computation and Communication Abstraction Barrier", ASPLOS, sets out to remove). Fitted jointly
with `compute_time.SUSTAINED_FRACTION` on the 8-GPU llm-foundry rows (0.4–0.8 fit equally well; 0.5 is the
middle); with FSDP the overlapped share of a step grows as the micro-batch shrinks, which is what it
reproduces (MPT-70B on 32 H100: micro-batch 2 is 15 % slower per token than micro-batch 8)."""
DDP_BUCKET_BYTES = 25 * 2**20
"""torch DistributedDataParallel `bucket_cap_mb=25` (torch/nn/parallel/distributed.py)."""


class Overlap(str, Enum):
    """What compute a collective can hide behind."""

    NONE = "none"
    """On the critical path (synchronous)."""
    FORWARD = "forward"
    """The same micro-batch's forward (FSDP / ZeRO-3 prefetched gathers)."""
    BACKWARD = "backward"
    """The same micro-batch's backward (DDP buckets, ZeRO-2 / FSDP reduce-scatters, backward gathers)."""
    LAST_BACKWARD = "last-backward"
    """The backward of the step's last micro-batch (gradient sync once per step)."""
    ATTENTION = "attention"
    """The attention kernel of the same layer (ring attention)."""


@dataclass(frozen=True, slots=True)
class CommCall:
    """`count` calls of one collective; `per_micro_batch` says whether `count` repeats for every micro-batch."""

    name: str
    kind: Collective
    message_bytes: float
    group: CommGroup
    count: float
    overlap: Overlap
    per_micro_batch: bool
    first_unit_s: float = 0.0
    """For prefetched collectives: the part that cannot overlap (the first unit's gather)."""

    def one(self) -> Term:
        return collective_time(self.name, self.kind, self.message_bytes, self.group)

    def seconds(self) -> float:
        return self.one().value * self.count


def bucketed(
    name: str,
    kind: Collective,
    total_bytes: float,
    bucket_bytes: float,
    group: CommGroup,
    overlap: Overlap,
    per_micro_batch: bool,
) -> CommCall:
    """`total_bytes` sent in buckets of `bucket_bytes` (the last one partial; counted as full buckets of the
    mean size, which keeps the latency of every bucket and the bandwidth of all bytes)."""
    n = max(1, -(-int(total_bytes) // int(bucket_bytes)))
    one = total_bytes / n
    last = collective_time(name, kind, one, group).value
    return CommCall(name, kind, one, group, n, overlap, per_micro_batch, first_unit_s=last)
