"""The analytic engine (and the peers) against the published measurements, on the row's own counter.

For every computable case of `measured_cases.json` the analytic engine estimates the per-GPU peak (or the
whole model's, for device-map rows) on the counter the row measured (allocated, reserved or device), and each
peer gives its figure. Errors are signed percentages of the measured value (stats.error_pct); summaries per
engine, per counter and per source use the cases with status `stats` only. Verdict rows (a boolean OOM) are
checked as fits / does not fit. Needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.loading import load_model
from llmplan.specs.training import Method
from llmplan.validate import engines
from llmplan.validate.measured import CaseStatus, MeasuredCase, load_cases
from llmplan.validate.peers import PEERS, run_peers
from llmplan.validate.stats import ErrorStats, error_pct

ANALYTIC = "llmplan"
NO_PEFT = "full training and inference (no PEFT: what every peer models)"
ENGINES = (ANALYTIC, *PEERS)


@dataclass(frozen=True, slots=True)
class EngineFigure:
    """One engine's figure for one case."""

    engine: str
    bytes: int | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class MeasuredComparison:
    """A measured case with every engine's figure."""

    case: MeasuredCase
    figures: tuple[EngineFigure, ...]
    fits: bool | None = None
    """The analytic engine's verdict on the case's GPU (device counter), for verdict rows."""

    def figure(self, engine: str) -> EngineFigure | None:
        return next((f for f in self.figures if f.engine == engine), None)

    def error_pct(self, engine: str) -> float | None:
        """Signed error of `engine` against the measured figure, None when either is missing."""
        fig = self.figure(engine)
        measured = self.case.measured_bytes
        if fig is None or fig.bytes is None or not measured:
            return None
        return error_pct(fig.bytes, measured)

    @property
    def verdict_ok(self) -> bool | None:
        """For verdict rows: whether the analytic verdict matches the published outcome."""
        if self.case.expect_fits is None or self.fits is None:
            return None
        return self.fits == self.case.expect_fits


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Error statistics of one engine over one group of cases."""

    engine: str
    group: str
    """"all", "counter: <name>" or "source: <name>"."""
    stats: ErrorStats


Progress = Callable[[str], None]


def compare_case(case: MeasuredCase, *, peers: bool = True) -> MeasuredComparison:
    """All engines on one case; an engine that cannot express the case gets a figure of None and the reason."""
    if not case.computable:
        return MeasuredComparison(case, ())
    try:
        model = load_model(case.model_id or "")
    except LlmplanError as exc:
        return MeasuredComparison(case, (EngineFigure(ANALYTIC, None, f"model: {exc}"),))
    analytic = engines.analytic_measured(model, case)
    figures = [EngineFigure(ANALYTIC, analytic.bytes, analytic.note)]
    if peers:
        figures += [EngineFigure(p.peer, p.bytes, p.note) for p in run_peers(model, case)]
    return MeasuredComparison(case, tuple(figures), fits=analytic.fits)


def compare_measured(
    cases: Iterable[MeasuredCase] | None = None, *, peers: bool = True, progress: Progress | None = None
) -> list[MeasuredComparison]:
    """Every case (default: all of measured_cases.json) through the analytic engine and the peers."""
    out = []
    for case in load_cases() if cases is None else cases:
        if progress is not None:
            progress(case.row)
        out.append(compare_case(case, peers=peers))
    return out


def summarize(comparisons: Sequence[MeasuredComparison]) -> list[SummaryRow]:
    """Per engine: all `stats` cases, those without PEFT (the peers' own ground), then per counter and per
    source (groups with at least one figure)."""
    rows: list[SummaryRow] = []
    in_stats = [c for c in comparisons if c.case.status is CaseStatus.STATS]
    for engine in ENGINES:
        groups: dict[str, list[float]] = {}
        for comp in in_stats:
            err = comp.error_pct(engine)
            if err is None:
                continue
            counter = comp.case.counter.value if comp.case.counter else "?"
            for group in ("all", f"counter: {counter}", f"source: {comp.case.source}"):
                groups.setdefault(group, []).append(err)
            if comp.case.training is None or comp.case.training.method is Method.FULL:
                groups.setdefault(NO_PEFT, []).append(err)
        order = {"all": 0, NO_PEFT: 1}
        for group in sorted(groups, key=lambda g: (order.get(g, 2 if g.startswith("counter") else 3), g)):
            stats = ErrorStats.of(groups[group])
            if stats is not None:
                rows.append(SummaryRow(engine, group, stats))
    return rows


def overall(rows: Sequence[SummaryRow], engine: str = ANALYTIC) -> ErrorStats | None:
    """The "all" summary of one engine."""
    return next((r.stats for r in rows if r.engine == engine and r.group == "all"), None)
