"""`llmplan clusters`: the cluster presets (nodes of GPUs, the links inside and between nodes, their sources)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table

from llmplan import catalog
from llmplan.cli._common import JsonOption, console, print_json
from llmplan.schema import ClustersOut, plain
from llmplan.specs.hardware import Cluster, Link


@dataclass(frozen=True, slots=True)
class LinkRow:
    name: str
    kind: str
    one_way_bytes_per_s: float
    bus_efficiency: float
    bus_bytes_per_s: float
    latency_s: float
    source: str


@dataclass(frozen=True, slots=True)
class ClusterRow:
    id: str
    name: str
    aliases: tuple[str, ...]
    accelerator: str
    gpus_per_node: int
    intra_node: LinkRow | None
    inter_node: LinkRow | None
    """Per GPU: the node's network bandwidth / GPUs per node."""
    sources: tuple[str, ...]
    notes: str


def _link_row(link: Link | None) -> LinkRow | None:
    if link is None:
        return None
    return LinkRow(
        link.name,
        link.kind.value,
        link.one_way_bytes_per_s,
        link.bus_efficiency,
        link.bus_bytes_per_s,
        link.hop_latency_s,
        link.source,
    )


def _row(cluster: Cluster) -> ClusterRow:
    return ClusterRow(
        id=cluster.id,
        name=cluster.name,
        aliases=catalog.cluster_aliases(cluster.id),
        accelerator=cluster.accelerator.id,
        gpus_per_node=cluster.gpus_per_node,
        intra_node=_link_row(cluster.intra_link),
        inter_node=_link_row(cluster.inter_node),
        sources=cluster.sources,
        notes=cluster.notes,
    )


def _gbps(link: LinkRow | None) -> str:
    if link is None:
        return "-"
    return f"{link.one_way_bytes_per_s / 1e9:,.1f} × {link.bus_efficiency:.2f}"


def clusters(
    gpu: Annotated[str | None, typer.Option(help="Only presets of this accelerator (id or alias).")] = None,
    json_out: JsonOption = False,
) -> None:
    """List cluster presets: GPUs per node, the intra- and inter-node links (one-way GB/s per GPU × the fraction
    nccl-tests reach), hop latency. Use one with `--cluster ID --nodes N`."""
    presets = catalog.clusters()
    if gpu is not None:
        wanted = catalog.accelerator(gpu).id
        presets = tuple(c for c in presets if c.accelerator.id == wanted)
    rows = [_row(c) for c in presets]
    if json_out:
        print_json(ClustersOut(clusters=plain(rows)))
        return
    table = Table(
        title=f"cluster presets ({len(rows)}): links one-way GB/s per GPU × bus efficiency; latency µs per hop"
    )
    for col in ("id", "accelerator", "GPUs/node", "intra-node", "µs", "inter-node (per GPU)", "µs "):
        table.add_column(col, justify="left" if col in {"id", "accelerator"} else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.id,
            r.accelerator,
            str(r.gpus_per_node),
            _gbps(r.intra_node),
            f"{r.intra_node.latency_s * 1e6:.1f}" if r.intra_node else "-",
            _gbps(r.inter_node),
            f"{r.inter_node.latency_s * 1e6:.1f}" if r.inter_node else "-",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(clusters)
