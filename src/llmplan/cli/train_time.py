"""The time and cost part of `llmplan train`: its options, the token-count parser and the printed table."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated

import typer
from rich.table import Table

from llmplan import catalog
from llmplan.cli._common import console
from llmplan.errors import SpecError
from llmplan.estimate.cost import CostEstimate, check_tokens
from llmplan.estimate.time import TimeEstimate
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import Layout, PipelineSchedule

TokensOption = Annotated[
    str | None, typer.Option("--tokens", help="Tokens to train on (1T, 300B, 2.5e9): time to train and cost.")
]
EpochsOption = Annotated[float | None, typer.Option("--epochs", help="Epochs over --dataset-tokens.")]
DatasetTokensOption = Annotated[
    str | None, typer.Option("--dataset-tokens", help="Tokens in the dataset (with --epochs).")
]
PriceOption = Annotated[
    float | None, typer.Option("--price", help="USD per GPU-hour (default: the catalog price).")
]
ScheduleOption = Annotated[
    PipelineSchedule, typer.Option("--pp-schedule", help="Pipeline schedule (with --pp > 1).")
]
VirtualStagesOption = Annotated[
    int, typer.Option("--virtual-stages", help="Virtual pipeline stages per GPU (interleaved 1F1B).")
]
NodesOption = Annotated[int | None, typer.Option("--nodes", help="Nodes (GPUs = nodes × GPUs per node).")]

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_TOKENS = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([kmbgtp]?)\s*$", re.IGNORECASE)


def parse_tokens(text: str, field: str = "tokens") -> float:
    """'1T' → 1e12, '300B' → 3e11, '2.5e9' → 2.5e9; SpecError for anything else or out of range."""
    match = _TOKENS.match(text)
    if match is None:
        raise SpecError(
            field, f"{text!r} is not a token count (allowed: a number with k, M, B or T, e.g. 1T)"
        )
    return check_tokens(float(match.group(1)) * _SUFFIX[match.group(2).lower()], field)


def run_tokens(tokens: str | None, epochs: float | None, dataset_tokens: str | None) -> float | None:
    """The tokens to train on from --tokens, or --epochs × --dataset-tokens; None when neither is given."""
    if tokens is not None and (epochs is not None or dataset_tokens is not None):
        raise SpecError("tokens", "give --tokens or --epochs with --dataset-tokens, not both")
    if tokens is not None:
        return parse_tokens(tokens)
    if epochs is None and dataset_tokens is None:
        return None
    if epochs is None or dataset_tokens is None:
        raise SpecError(
            "epochs", "missing half: --epochs and --dataset-tokens go together (allowed: both, or --tokens)"
        )
    if not 0 < epochs <= 1000:
        raise SpecError("epochs", f"{epochs!r} (allowed: 0 < epochs <= 1000)")
    return check_tokens(epochs * parse_tokens(dataset_tokens, "dataset_tokens"))


def print_time(est: TimeEstimate, cost: CostEstimate | None, note: str = "") -> None:
    table = Table(title=f"step time {est.step_s:.4f} s per step of {est.tokens_per_step:,} tokens")
    table.add_column("time per step")
    table.add_column("s", justify="right")
    table.add_column("how")
    for term in est.step.terms:
        table.add_row(term.name, f"{term.value:.4f}", term.formula)
        for part in term.parts:
            if part.value:
                table.add_row(f"  {part.name}", f"{part.value:.4f}", part.formula)
    console.print(table)
    console.print(
        f"throughput {est.tokens_per_s:,.0f} tokens/s, {est.tokens_per_s_per_gpu:,.0f} tokens/s per GPU; "
        f"MFU {est.mfu:.1%} (6N + 12·L·h·s) / {est.mfu_causal:.1%} (causal 6N + 6·L·h·s); HFU {est.hfu:.1%}"
    )
    if note:
        console.print(f"note: {note}")
    for term in est.comm:
        console.print(f"  {term.name}: {term.value:.4f} s per step, exposed {term.parts[0].value:.4f} s")
    if cost is not None and est.time_to_train_s is not None:
        days = est.time_to_train_s / 86400
        console.print(f"time to train {cost.tokens:,.0f} tokens: {days:,.2f} days ({cost.steps:,.0f} steps)")
        for term in cost.terms[1:]:
            console.print(f"  {term.name}: {term.value:,.2f} ({term.formula}; {term.source})")


def print_time_explain(est: TimeEstimate) -> None:
    console.print("[bold]time model constants[/bold]")
    for term in est.constants:
        console.print(f"  {term.name} = {term.value:g} ({term.formula}); source: {term.source}")
    for term in est.flops:
        console.print(f"  {term.name} = {term.value:,.4g} ({term.formula}); source: {term.source}")


DEFAULT_NETWORK_PRESET = "dgx-h100"
"""Without --cluster, a multi-node job takes the network of the first cluster preset of the same accelerator,
else this preset's (8 × 400 Gb/s NDR InfiniBand per node, one NIC per GPU)."""
ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster", help="Cluster preset (llmplan clusters): GPU, GPUs per node, links; with --nodes."
    ),
]


def total_gpus(gpus: int, nodes: int | None, gpus_per_node: int) -> int:
    """--gpus, or --nodes × --gpus-per-node; SpecError when both are given and disagree."""
    if nodes is None:
        return gpus
    if nodes < 1:
        raise SpecError("nodes", f"{nodes} is out of range (allowed: integers >= 1)")
    if gpus_per_node < 1:
        raise SpecError("gpus_per_node", f"{gpus_per_node} is out of range (allowed: integers >= 1)")
    if gpus not in (1, nodes * gpus_per_node):
        raise SpecError(
            "gpus",
            f"{gpus} GPUs disagree with --nodes {nodes} × --gpus-per-node {gpus_per_node} "
            f"(allowed: --gpus {nodes * gpus_per_node}, or leave --gpus out)",
        )
    return nodes * gpus_per_node


def with_schedule(layout: Layout, schedule: PipelineSchedule, virtual: int) -> Layout:
    """The layout with its pipeline schedule and virtual stages."""
    return dataclasses.replace(layout, pp_schedule=schedule, pp_virtual_stages=virtual)


def cluster_network(cluster: Cluster) -> tuple[Cluster, str]:
    """A multi-node cluster without a network gets the network of a preset (DEFAULT_NETWORK_PRESET); returns
    the cluster and a note saying what was assumed ("" when nothing was)."""
    if cluster.nodes == 1 or cluster.inter_node is not None:
        return cluster, ""
    same = [c for c in catalog.clusters() if c.accelerator.id == cluster.accelerator.id and c.inter_node]
    preset = same[0] if same else catalog.cluster(DEFAULT_NETWORK_PRESET)
    assert preset.inter_node is not None  # a preset with a network
    note = f"network between nodes not given (--cluster): assumed {preset.inter_node.name}"
    return dataclasses.replace(cluster, inter_node=preset.inter_node), note


def preset_cluster(preset_id: str, gpus: int, nodes: int | None) -> Cluster:
    """The preset scaled to --nodes (or to --gpus: whole nodes, or part of one node)."""
    preset = catalog.cluster(preset_id)
    per_node = preset.gpus_per_node
    if nodes is not None:
        if gpus not in (1, nodes * per_node):
            raise SpecError(
                "gpus",
                f"{gpus} GPUs disagree with --nodes {nodes} of {preset_id} ({per_node} per node) "
                f"(allowed: --gpus {nodes * per_node}, or leave --gpus out)",
            )
        return catalog.cluster(preset_id, nodes=nodes)
    if gpus <= per_node:
        return dataclasses.replace(preset, gpus_per_node=gpus)
    if gpus % per_node:
        raise SpecError(
            "gpus", f"{gpus} GPUs do not fill nodes of {preset_id} ({per_node} per node; allowed: multiples)"
        )
    return catalog.cluster(preset_id, nodes=gpus // per_node)
