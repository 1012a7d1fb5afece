"""Where the ranks of a parallel group sit on a cluster, and the `CommGroup` its collectives run on.

Placement rule (Megatron-LM `parallel_state.RankGenerator`, default order "tp-cp-ep-dp-pp"; torchtitan's device
mesh ["pp", "dp", "cp", "tp"] gives the same order): global rank = tp_rank + tp·(cp_rank + cp·(dp_rank + dp·pp_rank)),
ranks filled node by node (`gpus_per_node` consecutive ranks per node). tp is innermost (its ranks are
consecutive), then cp, then dp, then pp outermost. Expert parallelism subdivides the data-parallel dimension:
an ep group takes the innermost ep ranks of dp (stride tp·cp), as Megatron's expert rank generator does
("tp-ep-dp-pp" with expert-tensor-parallel = tp). A group of `size` ranks whose neighbours are `stride` ranks
apart (stride = product of the degrees inside it) is therefore {base + k·stride : k < size}.

Span: with g GPUs per node, a group with stride >= g has one rank per node (size nodes); a group with
stride·size <= g and g divisible by stride·size sits in one node; otherwise its ranks are counted node by node
(the worst group is taken: collectives of one dimension run together and the slowest one sets the pace).

Bandwidth handed to the collective model (`formulas/comms.py`), one-way, after each link's `bus_efficiency`
(the fraction of nominal that nccl-tests bus bandwidth reaches):
- inside a node: the intra-node link (NVLink / NVSwitch / xGMI / PCIe).
- between nodes, ring collectives (all-reduce, reduce-scatter, all-gather, broadcast, reduce): NCCL builds one
  ring per channel and gives each its own NIC (rail-optimised), so a group with r ranks on each node drives r
  NICs at once: r × the per-GPU network share. nccl-tests confirm it: two 8-GPU nodes with 8 × 400 Gb/s reach a
  multi-node all-reduce bus bandwidth of ~8 × 46 GB/s (NVIDIA/nccl-tests issue 290; NVIDIA/nccl issue 1244: 343
  GB/s on 2 × 8 H20 with 8 × 400 Gb/s). The intra-node link caps it (the CommGroup takes the minimum).
- between nodes, all-to-all and point-to-point: every rank sends its own bytes off the node through its own
  NIC, so the per-GPU share of the network.
Hop latency is the crossed link's (NCCL src/graph/tuning.cc hwLat, carried by each `Link`).
"""

from __future__ import annotations

from llmplan.errors import LayoutError, SpecError
from llmplan.formulas.comms import Collective, CommGroup
from llmplan.specs.hardware import Cluster

PLACEMENT_ORDER = ("tp", "cp", "dp", "pp")
"""Parallel dimensions from innermost (consecutive ranks) to outermost; ep lives inside dp (module docstring)."""
_RING_COLLECTIVES = frozenset(
    {
        Collective.ALL_REDUCE,
        Collective.REDUCE_SCATTER,
        Collective.ALL_GATHER,
        Collective.BROADCAST,
        Collective.REDUCE,
    }
)


def _positive_int(field: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(field, f"{value!r} is out of range (allowed: integers >= 1)")
    return value


def group_stride(dim: str, *, tp: int = 1, cp: int = 1, dp: int = 1, pp: int = 1, ep: int = 1) -> int:
    """Rank distance between neighbours of a `dim` group: the product of the degrees placed inside it."""
    degrees = {"tp": tp, "cp": cp, "dp": dp, "pp": pp, "ep": ep}
    for name, value in degrees.items():
        _positive_int(name, value)
    if dp % ep:
        raise LayoutError(
            f"ep={ep} must divide dp={dp}: expert parallelism subdivides the data-parallel ranks"
        )
    if dim == "ep":
        return tp * cp
    if dim not in PLACEMENT_ORDER:
        raise SpecError("dim", f"{dim!r} (allowed: {', '.join((*PLACEMENT_ORDER, 'ep'))})")
    stride = 1
    for inner in PLACEMENT_ORDER[: PLACEMENT_ORDER.index(dim)]:
        stride *= degrees[inner]
    return stride


def group_span(gpus_per_node: int, size: int, stride: int = 1, world: int | None = None) -> tuple[int, int]:
    """(nodes, ranks on each node) of the worst group of `size` ranks `stride` apart (module docstring).

    `world` is the number of ranks laid out (default size·stride); ranks per node is the fewest on any node the
    group touches (the node boundary with the fewest NICs in use sets the ring's pace).
    """
    g = _positive_int("gpus_per_node", gpus_per_node)
    _positive_int("group size", size)
    _positive_int("stride", stride)
    block = size * stride
    world = block if world is None else _positive_int("world", world)
    if world % block:
        raise LayoutError(f"{world} ranks cannot be split into groups of {size} ranks {stride} apart")
    if size == 1:
        return 1, 1
    if stride >= g:
        return size, 1
    if g % block == 0:
        return 1, size
    if block % g == 0 and g % stride == 0:
        return block // g, g // stride
    worst = (1, size)
    for start in range(0, world, block):
        for offset in range(stride):
            per_node: dict[int, int] = {}
            for k in range(size):
                node = (start + offset + k * stride) // g
                per_node[node] = per_node.get(node, 0) + 1
            span = (len(per_node), min(per_node.values()))
            if span[0] > worst[0] or (span[0] == worst[0] and span[1] < worst[1]):
                worst = span
    return worst


def comm_group(
    cluster: Cluster,
    size: int,
    *,
    stride: int = 1,
    collective: Collective = Collective.ALL_REDUCE,
) -> CommGroup:
    """The `CommGroup` of a group of `size` ranks `stride` apart on `cluster`, for `collective` (module docstring).

    Raises SpecError when the group does not fit on the cluster or needs a link the cluster lacks.
    """
    _positive_int("group size", size)
    _positive_int("stride", stride)
    if size * stride > cluster.num_gpus:
        raise SpecError(
            "group size",
            f"{size} ranks {stride} apart need {size * stride} GPUs; the cluster has {cluster.num_gpus} "
            f"({cluster.nodes} nodes × {cluster.gpus_per_node})",
        )
    nodes, per_node = group_span(cluster.gpus_per_node, size, stride, world=_world(cluster, size, stride))
    intra = cluster.intra_link
    net = cluster.inter_node
    if nodes == 1:
        if intra is None:
            if size > 1:
                raise SpecError(
                    "intra_node", f"{cluster.accelerator.id} has no link between GPUs of one node"
                )
            intra = net  # a group of one rank moves nothing; any positive bandwidth will do
        if intra is None:
            return CommGroup(
                size=1, nodes=1, intra_bytes_per_s=cluster.accelerator.memory_bandwidth_bytes_per_s
            )
        return CommGroup(
            size=size, nodes=1, intra_bytes_per_s=intra.bus_bytes_per_s, intra_latency_s=intra.hop_latency_s
        )
    if net is None:
        raise SpecError(
            "inter_node",
            f"a group of {size} ranks spans {nodes} nodes and the cluster has no network between nodes",
        )
    nics = per_node if collective in _RING_COLLECTIVES else 1
    inter_bytes_per_s = nics * net.bus_bytes_per_s
    return CommGroup(
        size=size,
        nodes=nodes,
        # one rank per node never crosses the intra-node link: the network alone sets the pace
        intra_bytes_per_s=intra.bus_bytes_per_s if intra is not None and per_node > 1 else inter_bytes_per_s,
        intra_latency_s=intra.hop_latency_s if intra is not None else net.hop_latency_s,
        inter_bytes_per_s=inter_bytes_per_s,
        inter_latency_s=net.hop_latency_s,
    )


def _world(cluster: Cluster, size: int, stride: int) -> int:
    """Ranks laid out: the whole cluster when groups tile it, else just one block of the group."""
    block = size * stride
    return cluster.num_gpus if cluster.num_gpus % block == 0 else block


def parallel_group(
    cluster: Cluster,
    dim: str,
    collective: Collective,
    *,
    tp: int = 1,
    cp: int = 1,
    dp: int = 1,
    pp: int = 1,
    ep: int = 1,
) -> CommGroup:
    """The `CommGroup` of the `dim` group ("tp", "cp", "dp", "pp", "ep") of a layout placed by the module's rule."""
    stride = group_stride(dim, tp=tp, cp=cp, dp=dp, pp=pp, ep=ep)
    size = {"tp": tp, "cp": cp, "dp": dp, "pp": pp, "ep": ep}[dim]
    if tp * cp * dp * pp > cluster.num_gpus:
        raise LayoutError(
            f"tp·cp·dp·pp = {tp * cp * dp * pp} GPUs; the cluster has {cluster.num_gpus} "
            f"({cluster.nodes} nodes × {cluster.gpus_per_node})"
        )
    return comm_group(cluster, size, stride=stride, collective=collective)
