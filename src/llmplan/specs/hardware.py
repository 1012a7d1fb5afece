"""Accelerators and clusters. Figures come from `catalog/accelerators.json`, each with its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from llmplan.errors import SpecError


class Direction(str, Enum):
    """Whether a link bandwidth counts one direction or both added together."""

    UNIDIRECTIONAL = "unidirectional"
    BIDIRECTIONAL = "bidirectional"


@dataclass(frozen=True, slots=True)
class Link:
    """An interconnect: NVLink, PCIe, InfiniBand, ICI."""

    name: str
    bandwidth_bytes_per_s: float
    direction: Direction

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
            raise SpecError("precision", f"{self.name} has no native {dtype} compute (it has: {allowed})") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class Cluster:
    """GPUs of one kind: `gpus_per_node` joined by the intra-node link, nodes joined by `inter_node`."""

    accelerator: Accelerator
    gpus_per_node: int = 8
    nodes: int = 1
    inter_node: Link | None = None
    """The network between nodes; None when there is a single node. Default in the CLI: 400 Gb/s InfiniBand
    NDR per GPU (8 x ConnectX-7 in a DGX H100 node)."""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise SpecError("gpus_per_node", f"{self.gpus_per_node} is out of range (allowed: integers >= 1)")
        if self.nodes < 1:
            raise SpecError("nodes", f"{self.nodes} is out of range (allowed: integers >= 1)")

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_node * self.nodes
