"""`llmplan params MODEL`: exact parameter counts by component."""

from __future__ import annotations

import typer
from rich.table import Table

from llmplan.cli._common import JsonOption, billions, console, print_json
from llmplan.cli.options import ModelArg
from llmplan.formulas.params import count_params
from llmplan.loading import load_model
from llmplan.schema import ParamsOut, plain


def params(model: ModelArg, json_out: JsonOption = False) -> None:
    """Count a model's parameters exactly, by component (embeddings, attention, MLP or experts, norms, head)."""
    spec = load_model(model)
    counts = count_params(spec)
    if json_out:
        print_json(
            ParamsOut(
                model=spec.name,
                model_type=spec.model_type,
                tie_word_embeddings=spec.tie_word_embeddings,
                params=plain(counts),
                total=counts.total,
                active_per_token=counts.active_per_token,
            )
        )
        return
    table = Table(title=f"{spec.name} ({spec.model_type}) — parameters", show_footer=True)
    table.add_column("component", footer="total")
    table.add_column("parameters", justify="right", footer=f"{counts.total:,}")
    table.add_column("B (10^9)", justify="right", footer=billions(counts.total))
    table.add_column("share", justify="right", footer="100.0%")
    for name, value in counts.components().items():
        if value == 0 and name in {"position", "routed_experts", "shared_experts", "router"}:
            continue
        label = name + (" (tied to embedding)" if name == "lm_head" and spec.tie_word_embeddings else "")
        table.add_row(label, f"{value:,}", billions(value), f"{100 * value / counts.total:.1f}%")
    console.print(table)
    console.print(f"of which biases: {counts.biases:,}")
    if spec.is_moe:
        console.print(f"active per token: {counts.active_per_token:,} ({billions(counts.active_per_token)})")


def register(app: typer.Typer) -> None:
    app.command()(params)
