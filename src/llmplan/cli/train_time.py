"""The time and cost part of `llmplan train`: its options and the printed table (the token-count parser and the
cluster helpers live in `llmplan.api.options`, shared with the web API)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan.api.options import (  # noqa: F401 (`train_time.NAME` in the subcommands)
    DEFAULT_NETWORK_PRESET,
    cluster_network,
    parse_tokens,
    preset_cluster,
    run_tokens,
    total_gpus,
    with_schedule,
)
from llmplan.cli._common import console
from llmplan.estimate.cost import CostEstimate
from llmplan.estimate.time import TimeEstimate
from llmplan.specs.training import PipelineSchedule

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


ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster", help="Cluster preset (llmplan clusters): GPU, GPUs per node, links; with --nodes."
    ),
]
