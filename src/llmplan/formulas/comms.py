"""Time of one collective on a group of GPUs: an α–β model with NCCL's bus-bandwidth factors.

    t = base_latency + steps(kind, n) · hop_latency + message_bytes · factor(kind, n) / bus_bandwidth

- `factor` is the bus-bandwidth factor of nccl-tests (NVIDIA/nccl-tests doc/PERFORMANCE.md): all-reduce
  2(n−1)/n; reduce-scatter, all-gather and all-to-all (n−1)/n; broadcast, reduce and point-to-point 1. The
  message is the full buffer of one rank (for all-gather the gathered output, for reduce-scatter its input),
  as nccl-tests counts it.
- `bus_bandwidth` is the one-way bandwidth of the slowest link the group crosses: the intra-node link (NVLink /
  xGMI / PCIe) inside a node; as soon as the group spans nodes, the smaller of that and the network bandwidth
  the group's rings get (`CommGroup.inter_bytes_per_s`). NCCL runs one ring per NIC, each crossing every node
  boundary, so a ring collective of k ranks per node moves its traffic over k NICs at once: nccl-tests'
  multi-node all-reduce bus bandwidth on 2 × 8 H100 is about 8 × the per-GPU NIC rate, capped by NVLink.
  `formulas.topology.comm_group` sets that figure from the cluster (ranks per node × the per-GPU network
  share for ring collectives; one GPU's share for all-to-all and point-to-point).
- latency: NCCL's cost model (src/graph/tuning.cc `baseLat`, `hwLat`, ring / low-latency protocol): a base
  latency per call plus one hop latency per ring step — 2(n−1) steps for all-reduce, n−1 for reduce-scatter,
  all-gather, all-to-all, broadcast and reduce, 1 for point-to-point. For all-reduce NCCL switches to a tree
  when it is cheaper: 2·⌈log2 n⌉ steps.

Efficiency below the link's nominal bandwidth (NVLink reaches ~80 % of its peak in nccl-tests, the network
~90 %) belongs in the link data of the cluster, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from llmplan.breakdown import Term, Unit
from llmplan.errors import SpecError

# Hop latencies are link data: one definition, in specs/hardware.py (NCCL tuning.cc hwLat); re-exported here.
from llmplan.specs.hardware import NETWORK_HOP_LATENCY_S as NETWORK_HOP_LATENCY_S
from llmplan.specs.hardware import NVLINK_HOP_LATENCY_S as NVLINK_HOP_LATENCY_S
from llmplan.specs.hardware import PCIE_HOP_LATENCY_S as PCIE_HOP_LATENCY_S

NCCL_BASE_LATENCY_S = 6.6e-6
"""Per-call latency of NCCL's ring with the low-latency protocol (src/graph/tuning.cc `baseLat`, Ring/LL)."""
_SOURCE = "α–β model; bus factors of nccl-tests doc/PERFORMANCE.md; latencies of NCCL src/graph/tuning.cc"


class Collective(str, Enum):
    """A communication pattern (names as in NCCL)."""

    ALL_REDUCE = "all-reduce"
    """Every rank ends with the sum of every rank's buffer (DDP gradients, TP row-parallel outputs)."""
    REDUCE_SCATTER = "reduce-scatter"
    """Every rank ends with one 1/n shard of the sum (ZeRO-2/3 and FSDP gradients, TP with SP)."""
    ALL_GATHER = "all-gather"
    """Every rank ends with the concatenation of every rank's shard (ZeRO-3 / FSDP parameters, TP with SP)."""
    ALL_TO_ALL = "all-to-all"
    """Every rank sends a different 1/n of its buffer to each rank (MoE expert parallel, Ulysses CP)."""
    BROADCAST = "broadcast"
    """One rank's buffer copied to every rank."""
    REDUCE = "reduce"
    """The sum of every rank's buffer on one rank."""
    P2P = "p2p"
    """One send / receive between two ranks (pipeline stages, ring attention)."""


def bus_factor(kind: Collective, n: int) -> float:
    """Bytes each rank moves per byte of message, as a fraction: nccl-tests doc/PERFORMANCE.md."""
    if n <= 1:
        return 0.0
    if kind is Collective.ALL_REDUCE:
        return 2 * (n - 1) / n
    if kind in (Collective.REDUCE_SCATTER, Collective.ALL_GATHER, Collective.ALL_TO_ALL):
        return (n - 1) / n
    return 1.0


def latency_steps(kind: Collective, n: int) -> int:
    """Sequential steps whose hop latency adds up (module docstring)."""
    if n <= 1:
        return 0
    if kind is Collective.P2P:
        return 1
    if kind is Collective.ALL_REDUCE:
        return min(2 * (n - 1), 2 * math.ceil(math.log2(n)))
    return n - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class CommGroup:
    """The GPUs of one communicator and the links it crosses."""

    size: int
    """Ranks in the group (a parallel degree)."""
    nodes: int = 1
    """Nodes the group spans; above 1 the network is the bottleneck."""
    intra_bytes_per_s: float
    """One-way per-GPU bandwidth inside a node."""
    intra_latency_s: float = NVLINK_HOP_LATENCY_S
    inter_bytes_per_s: float | None = None
    """One-way network bandwidth the group's traffic gets between nodes (formulas.topology.comm_group: the per-GPU
    share times the ranks per node for ring collectives); needed when nodes > 1."""
    inter_latency_s: float = NETWORK_HOP_LATENCY_S

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SpecError("group size", f"{self.size} is out of range (allowed: integers >= 1)")
        if not 1 <= self.nodes <= self.size:
            raise SpecError("nodes", f"{self.nodes} is out of range (allowed: 1 to the group size {self.size})")
        if not (math.isfinite(self.intra_bytes_per_s) and self.intra_bytes_per_s > 0):
            raise SpecError("intra-node bandwidth", f"{self.intra_bytes_per_s!r} (allowed: a positive number)")
        if self.nodes > 1 and not (
            self.inter_bytes_per_s is not None
            and math.isfinite(self.inter_bytes_per_s)
            and self.inter_bytes_per_s > 0
        ):
            raise SpecError(
                "inter-node bandwidth",
                f"{self.inter_bytes_per_s!r} for a group over {self.nodes} nodes (allowed: a positive number)",
            )

    @property
    def bus_bytes_per_s(self) -> float:
        if self.nodes > 1:
            assert self.inter_bytes_per_s is not None  # checked in __post_init__
            return min(self.intra_bytes_per_s, self.inter_bytes_per_s)
        return self.intra_bytes_per_s

    @property
    def hop_latency_s(self) -> float:
        return self.inter_latency_s if self.nodes > 1 else self.intra_latency_s


def collective_time(name: str, kind: Collective, message_bytes: float, group: CommGroup) -> Term:
    """Seconds of one `kind` collective of `message_bytes` per rank on `group` (module docstring), as a Term."""
    if not (math.isfinite(message_bytes) and message_bytes >= 0):
        raise SpecError("message bytes", f"{message_bytes!r} (allowed: a finite number >= 0)")
    n = group.size
    if n == 1 or message_bytes == 0:
        return Term(name, 0.0, Unit.SECONDS, f"{kind.value} over 1 rank or of 0 B: no communication", _SOURCE)
    factor = bus_factor(kind, n)
    steps = latency_steps(kind, n)
    bw = group.bus_bytes_per_s
    seconds = NCCL_BASE_LATENCY_S + steps * group.hop_latency_s + message_bytes * factor / bw
    formula = (
        f"{kind.value} n={n}{f' over {group.nodes} nodes' if group.nodes > 1 else ''}: "
        f"{NCCL_BASE_LATENCY_S * 1e6:.1f} µs + {steps} × {group.hop_latency_s * 1e6:.2f} µs + "
        f"{message_bytes:,.0f} B × {factor:.3f} / {bw / 1e9:.1f} GB/s"
    )
    return Term(name, seconds, Unit.SECONDS, formula, _SOURCE)
