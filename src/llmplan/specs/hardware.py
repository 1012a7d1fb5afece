"""Accelerators, links and clusters. Figures come from `catalog/accelerators.json` and `catalog/clusters.json`,
each with its source."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from llmplan import limits
from llmplan.errors import SpecError

NVLINK_HOP_LATENCY_S = 0.6e-6
"""Per-step latency over NVLink (NCCL src/graph/tuning.cc `hwLat[NCCL_HW_NVLINK]`, Ring/LL: 0.6 µs)."""
PCIE_HOP_LATENCY_S = 1.0e-6
"""Per-step latency over PCIe (NCCL src/graph/tuning.cc `hwLat[NCCL_HW_PCI]`, Ring/LL: 1.0 µs)."""
NETWORK_HOP_LATENCY_S = 2.7e-6
"""Per-step latency over the network, InfiniBand / RoCE / EFA (NCCL src/graph/tuning.cc `hwLat[NCCL_HW_NET]`,
Ring/LL: 2.7 µs)."""


class Direction(str, Enum):
    """Whether a link bandwidth counts one direction or both added together."""

    UNIDIRECTIONAL = "unidirectional"
    BIDIRECTIONAL = "bidirectional"


class LinkKind(str, Enum):
    """NCCL's hardware class of a link (src/graph/tuning.cc `NCCL_HW_NVLINK / PCI / NET`): it sets the hop latency.

    Chip-to-chip fabrics of other vendors (AMD xGMI / Infinity Fabric, Huawei HCCS, TPU ICI) are `nvlink`:
    RCCL keeps NCCL's classes and treats xGMI as NVLink."""

    NVLINK = "nvlink"
    PCIE = "pcie"
    NETWORK = "network"

    @property
    def hop_latency_s(self) -> float:
        return _HOP_LATENCY_S[self]


_HOP_LATENCY_S = {
    LinkKind.NVLINK: NVLINK_HOP_LATENCY_S,
    LinkKind.PCIE: PCIE_HOP_LATENCY_S,
    LinkKind.NETWORK: NETWORK_HOP_LATENCY_S,
}


@dataclass(frozen=True, slots=True)
class Link:
    """An interconnect: NVLink, PCIe, InfiniBand, ICI. Between nodes the bandwidth is the GPU's share of the node's
    network (node NIC bandwidth / GPUs per node)."""

    name: str
    bandwidth_bytes_per_s: float
    direction: Direction
    kind: LinkKind = LinkKind.NVLINK
    latency_s: float | None = None
    """Per-hop latency; None takes NCCL's figure for the link's kind (`LinkKind.hop_latency_s`)."""
    bus_efficiency: float = 1.0
    """The fraction of the nominal one-way bandwidth that nccl-tests bus bandwidth reaches on this link (the
    catalog gives each link its measured figure and source; 1.0 is the nominal rate)."""
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bandwidth_bytes_per_s) and self.bandwidth_bytes_per_s > 0):
            raise SpecError(
                f"{self.name}: bandwidth_bytes_per_s", f"{self.bandwidth_bytes_per_s!r} (allowed: > 0)"
            )
        if not (math.isfinite(self.bus_efficiency) and 0 < self.bus_efficiency <= 1):
            raise SpecError(f"{self.name}: bus_efficiency", f"{self.bus_efficiency!r} (allowed: 0 < x <= 1)")
        if self.latency_s is None:
            object.__setattr__(self, "latency_s", self.kind.hop_latency_s)
        elif not (math.isfinite(self.latency_s) and 0 <= self.latency_s < 1e-3):
            raise SpecError(f"{self.name}: latency_s", f"{self.latency_s!r} (allowed: 0 <= x < 1 ms)")

    @property
    def hop_latency_s(self) -> float:
        assert self.latency_s is not None  # filled in __post_init__
        return self.latency_s

    @property
    def bus_bytes_per_s(self) -> float:
        """One-way bandwidth that collectives reach: nominal one-way × bus efficiency."""
        return self.one_way_bytes_per_s * self.bus_efficiency

    @property
    def one_way_bytes_per_s(self) -> float:
        """Bandwidth in one direction, the figure collective-communication formulas use."""
        if self.direction is Direction.BIDIRECTIONAL:
            return self.bandwidth_bytes_per_s / 2
        return self.bandwidth_bytes_per_s


@dataclass(frozen=True, slots=True)
class Price:
    usd_per_gpu_hour: float
    source: str
    date: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Accelerator:
    """One device: memory, bandwidth, dense peak FLOP/s per dtype, links, power, price."""

    id: str
    name: str
    vendor: str
    architecture: str
    compute_capability: str | None
    memory_bytes: int
    memory_type: str
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: dict[str, float] = field(hash=False, compare=False)
    """Dense (no structured sparsity) peak per dtype: fp32, tf32, fp16, bf16, fp8, int8, ..."""
    intra_node: Link | None
    host: Link | None
    tdp_w: float | None
    price: Price | None
    aliases: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    read_on: str = ""
    notes: str = ""

    def supports(self, dtype: str) -> bool:
        """True when the device has a native (tensor-core) path for `dtype` (fp8 needs Hopper, Ada or MI300)."""
        return dtype in self.peak_flops_per_s

    def peak_flops(self, dtype: str) -> float:
        try:
            return self.peak_flops_per_s[dtype]
        except KeyError:
            allowed = ", ".join(sorted(self.peak_flops_per_s))
            raise SpecError(
                "precision", f"{self.name} has no native {dtype} compute (it has: {allowed})"
            ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class Cluster:
    """GPUs of one kind: `gpus_per_node` joined by the intra-node link, nodes joined by `inter_node`.

    Presets with their sources are in `catalog/clusters.json` (`llmplan clusters`; `catalog.cluster(id, nodes=)`).
    """

    accelerator: Accelerator
    gpus_per_node: int = 8
    nodes: int = 1
    inter_node: Link | None = None
    """The network between nodes, bandwidth per GPU (the node's NIC bandwidth / GPUs per node); None when there is
    no network (a single node, or a cluster built without one)."""
    intra_node: Link | None = None
    """The link between GPUs of one node when it differs from the accelerator's own (e.g. 8 PCIe cards whose
    NVLink bridges join pairs only); None takes `accelerator.intra_node`."""
    id: str = ""
    """The catalog preset this cluster came from, "" when built by hand."""
    name: str = ""
    sources: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        limits.check_field("gpus_per_node", self.gpus_per_node)
        limits.check_field("nodes", self.nodes)

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def intra_link(self) -> Link | None:
        """The link GPUs of one node talk over: the cluster's override, else the accelerator's."""
        return self.intra_node if self.intra_node is not None else self.accelerator.intra_node
