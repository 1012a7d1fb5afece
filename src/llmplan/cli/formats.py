"""`llmplan formats VALUE`: how one number is stored in fp32, fp16, bf16, fp8, int8 / int4 with a scale, NF4."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan.cli._common import JsonOption, console, print_json
from llmplan.cli.options import check_options
from llmplan.formulas.formats import encode_all
from llmplan.schema import FormatsOut, plain


def formats(
    value: Annotated[float, typer.Argument(help="The number to store, e.g. 3.14159.")],
    absmax: Annotated[
        float | None,
        typer.Option(
            help="Range of the tensor for int8 / int4 / NF4 (default: |value| rounded up to a power of two)."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Show sign, exponent and mantissa bits, the stored value, the error and the range of VALUE in each format."""
    check_options(value=value, absmax=absmax)
    rows = encode_all(value, absmax)
    if json_out:
        print_json(FormatsOut(value=plain(value), encodings=plain(rows)))
        return
    table = Table(title=f"{value!r} in each format (round to nearest even; integers: symmetric absmax scale)")
    for col in (
        "format",
        "sign",
        "exponent",
        "mantissa / code",
        "stored",
        "abs error",
        "rel error",
        "max",
        "min normal",
        "note",
    ):
        table.add_column(
            col, justify="right" if col in {"stored", "abs error", "rel error", "max"} else "left"
        )
    for e in rows:
        label = e.format if e.scale is None else f"{e.format} (scale {e.scale:.6g})"
        exp = "" if e.exponent is None else f"{e.exponent_field} (2^{e.exponent})"
        table.add_row(
            label,
            e.sign_bit,
            exp,
            e.mantissa_field,
            f"{e.stored:.10g}",
            f"{e.abs_error:.3g}",
            f"{e.rel_error:.3g}",
            f"{e.max_value:.6g}",
            "" if e.min_normal is None else f"{e.min_normal:.3g}",
            e.note,
        )
    console.print(table)
    console.print(
        "fp16's largest finite value is 65504 (values from 65520 overflow to inf; 65506 stores as 65504); "
        "fp8 e4m3 has no inf and saturates engines at ±448."
    )


def register(app: typer.Typer) -> None:
    app.command()(formats)
