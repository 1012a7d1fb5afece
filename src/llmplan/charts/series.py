"""The data of every chart, as typed, JSON-serialisable records: stacked bars, line sweeps, scatters.

Every value here is read from an estimate's own records (`Term` / `Breakdown` of `llmplan.estimate` and
`llmplan.plan`); nothing is recomputed. Each series says its unit (`Unit`: bytes, seconds, USD) and its source
(the term names or estimate fields it was read from). The SVG writer (`charts.svg`) and the web page draw
these records; `Charts.model_dump(mode="json")` is what the web API returns.

Sweeps (`sweep_points`) are powers of two around the job's own value, at most `SWEEP_POINTS` of them, plus the
job's own value and the largest fitting value when it falls inside the window.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from llmplan.breakdown import Breakdown, Unit
from llmplan.schema.records import Out

SWEEP_POINTS = 8
"""Powers of two per sweep (the job's own value and the largest fitting one may add two more)."""


class Segment(Out):
    """One part of a stacked bar: a term's value."""

    name: str
    """The term name (`llmplan.breakdown` vocabulary: weights, optimizer_states, compute_s, ...)."""
    value: float
    source: str = ""
    """The source the term cites."""


class Bar(Out):
    """One stacked bar: segments that add up to `total`."""

    label: str
    total: float
    counter: str = ""
    """Which counter `total` is (memory: `allocated` tensors of a phase, or `device` at the peak)."""
    segments: tuple[Segment, ...]

    @classmethod
    def of(cls, label: str, terms: Breakdown, counter: str = "") -> Bar:
        """The bar of a breakdown's top-level terms (their sum is the breakdown's total)."""
        segments = tuple(Segment(name=t.name, value=t.value, source=t.source) for t in terms.terms)
        return cls(label=label, total=terms.total, counter=counter, segments=segments)


class StackedChart(Out):
    """Stacked bars of one unit against an optional limit (the GPU's memory)."""

    kind: Literal["stacked"] = "stacked"
    id: str
    """Stable chart key (`memory`, `step_time`, `serve_memory`)."""
    title: str
    unit: Unit
    source: str
    """The estimate the bars were read from."""
    bars: tuple[Bar, ...]
    limit: float | None = None
    limit_label: str = ""


class Point(Out):
    """One sweep point: the estimate at `x`."""

    x: float
    y: float
    fits: bool | None = None
    """The estimate's verdict at this point (None for series without one, such as latency)."""


class Line(Out):
    """One series of a sweep."""

    name: str
    unit: Unit
    source: str
    """The term or estimate field each y was read from."""
    points: tuple[Point, ...]


class LineChart(Out):
    """y against a swept input (sequence length, micro-batch, concurrency), with the OOM line."""

    kind: Literal["line"] = "line"
    id: str
    title: str
    x_name: str
    """The swept option (`seq_len`, `micro_batch`, `concurrency`)."""
    x_unit: Unit
    unit: Unit
    """Unit of every line's y."""
    source: str
    lines: tuple[Line, ...]
    current: float
    """The job's own x."""
    limit: float | None = None
    """The OOM line (capacity bytes) the lines are compared with; None for latency."""
    limit_label: str = ""
    largest_fitting: int | None = None
    """The largest x that fits (found with the estimate itself); None when not even the smallest fits, or for
    charts without a memory verdict."""
    log_x: bool = True

    def line(self, name: str) -> Line:
        """The line with this name; KeyError naming the lines otherwise."""
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(f"no line {name!r} (lines: {', '.join(x.name for x in self.lines)})")


class ScatterPoint(Out):
    """One candidate (a layout, a hardware option)."""

    label: str
    x: float
    y: float
    front: bool
    """On the Pareto front: no other point is at least as good on both axes and better on one."""
    best: bool = False
    """The candidate the plan chose (ranked first)."""


class ScatterChart(Out):
    """Candidates on two axes, the Pareto front marked."""

    kind: Literal["scatter"] = "scatter"
    id: str
    title: str
    x_name: str
    x_unit: Unit
    y_name: str
    y_unit: Unit
    source: str
    points: tuple[ScatterPoint, ...]
    limit: float | None = None
    """A limit on x (the GPU's memory when x is bytes per GPU)."""
    limit_label: str = ""


Chart = Annotated[StackedChart | LineChart | ScatterChart, Field(discriminator="kind")]


class Charts(Out):
    """The charts of one command (`train`, `serve`, `plan`), in display order."""

    command: Literal["train", "serve", "plan"]
    title: str
    charts: tuple[Chart, ...]

    def get(self, chart_id: str) -> StackedChart | LineChart | ScatterChart:
        """The chart with this id; KeyError naming the ids otherwise."""
        for chart in self.charts:
            if chart.id == chart_id:
                return chart
        raise KeyError(f"no chart {chart_id!r} (charts: {', '.join(c.id for c in self.charts)})")


def sweep_points(
    current: int, low: int, high: int, step: int = 1, largest: int | None = None
) -> tuple[int, ...]:
    """Powers of two (rounded up to multiples of `step`) in [low, high], from about a quarter of the smaller of
    `current` and `largest` to about four times the larger, thinned to at most SWEEP_POINTS; with `current`
    and `largest` themselves."""
    anchors = [v for v in (current, largest) if v is not None and low <= v <= high]
    if not anchors:
        anchors = [current]
    first, last = max(0, min(anchors).bit_length() - 3), max(anchors).bit_length() + 1
    rounded = {-(-(2**e) // step) * step for e in range(first, last + 1)}
    xs = sorted(x for x in rounded if low <= x <= high)
    stride = -(-len(xs) // SWEEP_POINTS)
    return tuple(sorted({*xs[::stride], *anchors}))


def front_flags(points: list[tuple[float, float]]) -> list[bool]:
    """For each (x, y) to minimise on both axes: True when no other point is <= on both and < on one."""
    return [not any(a <= x and b <= y and (a, b) != (x, y) for a, b in points) for x, y in points]
