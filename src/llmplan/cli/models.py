"""`llmplan models`: the model catalog, filtered by family or size."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from llmplan.catalog.summary import catalog_models
from llmplan.cli._common import JsonOption, console, print_json
from llmplan.cli.options import check_options
from llmplan.errors import SpecError
from llmplan.schema import ModelsOut


def models(
    family: Annotated[
        str | None, typer.Option(help="Only this family (substring, e.g. llama, qwen).")
    ] = None,
    min_b: Annotated[
        float | None, typer.Option("--min-b", help="Only models with at least this many billion parameters.")
    ] = None,
    max_b: Annotated[
        float | None, typer.Option("--max-b", help="Only models with at most this many billion parameters.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """List the catalog's models with their exact parameter counts and sources."""
    check_options(min_b=min_b, max_b=max_b)
    if min_b is not None and max_b is not None and min_b > max_b:
        raise SpecError("--min-b", f"{min_b} exceeds --max-b {max_b} (allowed: --min-b <= --max-b)")
    rows = catalog_models(family, min_b, max_b)
    if json_out:
        print_json(ModelsOut(models=rows))
        return
    table = Table(title=f"models ({len(rows)}): parameters in B (10^9)", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("id", "type", "params", "active", "layers", "hidden", "heads/kv", "context"):
        table.add_column(col, justify="left" if col in {"id", "type"} else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.id,
            r.model_type,
            f"{r.params / 1e9:,.2f}",
            f"{r.active_params / 1e9:,.2f}" if r.is_moe else "",
            str(r.layers),
            str(r.hidden_size),
            f"{r.num_attention_heads}/{r.num_key_value_heads}",
            f"{r.max_position_embeddings:,}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(models)
