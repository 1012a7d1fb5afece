"""`llmplan models`: the model catalog, filtered by family or size."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.cli._common import JsonOption, console, print_json
from llmplan.cli.options import check_options
from llmplan.errors import SpecError
from llmplan.formulas.params import count_params


def models(
    family: Annotated[str | None, typer.Option(help="Only this family (substring, e.g. llama, qwen).")] = None,
    min_b: Annotated[float | None, typer.Option("--min-b", help="Only models with at least this many billion parameters.")] = None,
    max_b: Annotated[float | None, typer.Option("--max-b", help="Only models with at most this many billion parameters.")] = None,
    json_out: JsonOption = False,
) -> None:
    """List the catalog's models with their exact parameter counts and sources."""
    check_options(min_b=min_b, max_b=max_b)
    if min_b is not None and max_b is not None and min_b > max_b:
        raise SpecError("--min-b", f"{min_b} exceeds --max-b {max_b} (allowed: --min-b <= --max-b)")
    rows = []
    for entry in catalog.model_entries():
        if family and family.lower() not in entry.family.lower() and family.lower() not in entry.id:
            continue
        spec = parse_config(entry.config, entry.id)
        counts = count_params(spec)
        size_b = counts.total / 1e9
        if (min_b is not None and size_b < min_b) or (max_b is not None and size_b > max_b):
            continue
        rows.append((entry, spec, counts))
    if json_out:
        print_json(
            [
                {
                    "id": e.id,
                    "name": e.name,
                    "family": e.family,
                    "model_type": s.model_type,
                    "hub_id": e.hub_id,
                    "params": c.total,
                    "active_params": c.active_per_token,
                    "layers": s.num_hidden_layers,
                    "hidden_size": s.hidden_size,
                    "max_position_embeddings": s.max_position_embeddings,
                    "source": e.source,
                    "read_on": e.read_on,
                }
                for e, s, c in rows
            ]
        )
        return
    table = Table(title=f"models ({len(rows)}): parameters in B (10^9)", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("id", "type", "params", "active", "layers", "hidden", "heads/kv", "context"):
        table.add_column(col, justify="left" if col in {"id", "type"} else "right", no_wrap=True)
    for e, s, c in rows:
        table.add_row(
            e.id, s.model_type, f"{c.total / 1e9:,.2f}",
            f"{c.active_per_token / 1e9:,.2f}" if s.is_moe else "", str(s.num_hidden_layers), str(s.hidden_size),
            f"{s.num_attention_heads}/{s.num_key_value_heads}", f"{s.max_position_embeddings:,}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(models)
