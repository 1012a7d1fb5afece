"""`--plot FILE.svg|png` of `train`, `serve` and `plan`: the web page's charts written from the command line
(`llmplan.charts`; docs/plots.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmplan.charts import Charts
from llmplan.charts import svg as draw
from llmplan.cli._common import prepare_output, write_output
from llmplan.errors import SpecError

OPTION = "--plot"
EXTENSIONS = (".svg", ".png")

PlotOption = Annotated[
    Path | None,
    typer.Option(
        OPTION,
        help="Also write the charts (memory by part, memory vs sequence / batch with the OOM line, time, "
        "Pareto front) to FILE.svg, or FILE.png with the plot extra (docs/plots.md).",
    ),
]


def check(path: Path | None) -> Path | None:
    """Refuse, before any work, a --plot path that is not .svg / .png, a .png without resvg, or a folder."""
    if path is None:
        return None
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        shown = repr(suffix) if suffix else "no extension"
        raise SpecError(OPTION, f"{str(path)!r} has {shown} (allowed: {', '.join(EXTENSIONS)})")
    if suffix == ".png":
        draw.require_png(OPTION)
    return prepare_output(path, OPTION)


def write(path: Path | None, charts: Charts) -> None:
    """Write `charts` to `path` (nothing when None): the SVG, or the PNG rendered from it."""
    if path is None:
        return
    svg = draw.render(charts)
    write_output(path, draw.png(svg) if path.suffix.lower() == ".png" else svg, OPTION)
