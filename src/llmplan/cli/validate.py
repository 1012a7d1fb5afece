"""`llmplan validate`: the analytic engine against the trace matrix and the published measurements.

Exit status 1 when a tolerance of issue 3 is broken (trace: median |error| <= 3 %, max <= 8 %; measured:
median <= 10 %, 90th percentile <= 20 %), 0 otherwise. The trace part needs the `trace` extra (torch).
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmplan.cli._common import JsonOption, console, prepare_output, print_json, write_output
from llmplan.errors import MissingExtraError
from llmplan.schema import ValidateOut, plain


class Only(str, Enum):
    """Which half of the validation to run."""

    MEASURED = "measured"
    TRACE = "trace"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[case]}"),
        console=console,
        transient=True,
    )


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def validate(
    fast: Annotated[
        bool, typer.Option("--fast", help="Trace only the CI subset (about a dozen cases).")
    ] = False,
    only: Annotated[
        Only | None, typer.Option("--only", help="Run only the measured rows or only the trace.")
    ] = None,
    peers: Annotated[bool, typer.Option("--peers/--no-peers", help="Also run the peer estimators.")] = True,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write the Markdown report to this file.")
    ] = None,
    json_out: JsonOption = False,
) -> int:
    """Check the analytic memory estimates against the traced model and the published measurements."""
    from llmplan.validate import compare, report, trace_matrix

    if write is not None:
        prepare_output(write)
    from llmplan.validate.measured import load_cases

    comparisons: list = []
    summary: list = []
    trace: list = []
    quiet = json_out
    if only is not Only.TRACE:
        cases = load_cases()
        with _progress() as bar:
            task = bar.add_task("measured rows", total=len(cases), case="", visible=not quiet)
            comparisons = compare.compare_measured(
                cases, peers=peers, progress=lambda row: bar.update(task, advance=1, case=row)
            )
        summary = compare.summarize(comparisons)
    if only is not Only.MEASURED:
        if not _torch_available():
            raise MissingExtraError("llmplan validate (the trace part)", "torch")
        cases_t = trace_matrix.FAST if fast else trace_matrix.CASES
        with _progress() as bar:
            task = bar.add_task("trace matrix", total=len(cases_t), case="", visible=not quiet)
            trace = trace_matrix.run_matrix(
                cases_t, progress=lambda cid: bar.update(task, advance=1, case=cid)
            )
    measured_stats = compare.overall(summary)
    trace_errors = [c.error_pct for c in trace if c.error_pct is not None]
    trace_stats = report.ErrorStats.of(trace_errors)
    broken = []
    if measured_stats is not None and not measured_stats.meets_measured():
        broken.append("measured")
    if trace_stats is not None and not trace_stats.meets_trace():
        broken.append("trace")
    if only is not Only.MEASURED and len(trace_errors) < len(trace):
        broken.append("trace cases without both figures")
    if write is not None:
        page = report.render(
            report.ReportInput(
                measured=comparisons,
                summary=summary,
                trace=trace,
                trace_subset="fast subset" if fast else "full matrix",
                generated_on=dt.date.today().isoformat(),
                explanations=report.EXPLANATIONS,
            )
        )
        write_output(write, page)
    if json_out:
        print_json(
            ValidateOut(
                measured_summary=plain(summary),
                trace_stats=plain(trace_stats),
                trace=plain(
                    [
                        {
                            "case": c.case.id,
                            "analytic_bytes": c.analytic_bytes,
                            "trace_bytes": c.trace_bytes,
                            "error_pct": c.error_pct,
                            "note": c.error,
                        }
                        for c in trace
                    ]
                ),
                measured=plain(
                    [
                        {
                            "row": c.case.row,
                            "status": c.case.status.value,
                            "measured_bytes": c.case.measured_bytes,
                            "figures": {f.engine: f.bytes for f in c.figures},
                            "error_pct": {f.engine: c.error_pct(f.engine) for f in c.figures},
                        }
                        for c in comparisons
                    ]
                ),
                broken=broken,
            )
        )
    else:
        _print_tables(summary, trace_stats, trace, broken)
    return 1 if broken else 0


def _print_tables(summary: list, trace_stats: object, trace: list, broken: list[str]) -> None:
    if summary:
        table = Table(title="analytic and peers vs published measurements (|error| %)")
        for col in ("engine", "cases", "n", "median", "p90", "max", "bias"):
            table.add_column(col, justify="left" if col in ("engine", "cases") else "right")
        for row in summary:
            if row.group.startswith("source"):
                continue
            s = row.stats
            table.add_row(
                row.engine,
                row.group,
                str(s.n),
                f"{s.median_abs_pct:.1f}",
                f"{s.p90_abs_pct:.1f}",
                f"{s.max_abs_pct:.1f}",
                f"{s.median_signed_pct:+.1f}",
            )
        console.print(table)
    if trace:
        table = Table(title="analytic vs trace, peak allocated")
        for col in ("case", "trace GiB", "analytic GiB", "error"):
            table.add_column(col, justify="left" if col == "case" else "right")
        for comp in trace:
            err = comp.error_pct
            table.add_row(
                comp.case.id,
                _g(comp.trace_bytes),
                _g(comp.analytic_bytes),
                "—" if err is None else f"{err:+.1f} %",
            )
        console.print(table)
        if trace_stats is not None:
            console.print(
                f"trace: n={trace_stats.n} median {trace_stats.median_abs_pct:.2f} % "
                f"p90 {trace_stats.p90_abs_pct:.2f} % max {trace_stats.max_abs_pct:.2f} %"
            )
    console.print("tolerances met" if not broken else f"[red]tolerance broken: {', '.join(broken)}[/red]")


def _g(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.3f}"


def register(app: typer.Typer) -> None:
    app.command()(validate)
