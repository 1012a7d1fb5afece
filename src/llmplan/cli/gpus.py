"""`llmplan gpus`: the accelerator catalog."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan import catalog
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.schema import GpusOut


def gpus(
    vendor: Annotated[str | None, typer.Option(help="Only this vendor (nvidia, amd, huawei, google, intel).")] = None,
    json_out: JsonOption = False,
) -> None:
    """List accelerators: memory, bandwidth, dense peak FLOP/s, links, power and a typical hourly price."""
    rows = [a for a in catalog.accelerators() if vendor is None or a.vendor == vendor.lower()]
    if json_out:
        print_json(GpusOut(gpus=tuple(rows)))
        return
    table = Table(title=f"accelerators ({len(rows)}): memory GiB (2^30), HBM TB/s, dense TFLOP/s, link GB/s (↔ both ways), W")
    for col in ("id", "name", "GiB", "TB/s", "bf16", "fp8", "link", "W", "$/h"):
        table.add_column(col, justify="left" if col in {"id", "name"} else "right", no_wrap=True)
    for a in rows:
        bf16 = a.peak_flops_per_s.get("bf16") or a.peak_flops_per_s.get("fp16")
        fp8 = a.peak_flops_per_s.get("fp8")
        link = a.intra_node or a.host
        table.add_row(
            a.id, a.name, gib(a.memory_bytes), f"{a.memory_bandwidth_bytes_per_s / 1e12:.2f}",
            f"{bf16 / 1e12:,.0f}" if bf16 else "-", f"{fp8 / 1e12:,.0f}" if fp8 else "-",
            f"{link.bandwidth_bytes_per_s / 1e9:,.0f}{'↔' if link.direction.value == 'bidirectional' else '→'}"
            if link else "-",
            f"{a.tdp_w:.0f}" if a.tdp_w else "-", f"{a.price.usd_per_gpu_hour:.2f}" if a.price else "-",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(gpus)
