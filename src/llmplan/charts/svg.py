"""Standalone SVG of a command's charts (`charts.series.Charts`): one panel per chart in a two-column grid,
axes with ticks in display units (GiB = 2^30 bytes, ms / s / h / days, USD), a legend per panel and the OOM
line dashed red. Hand-written SVG with no dependency; the same records always give the same bytes.

`png` renders that SVG to PNG bytes through resvg (`pip install 'llmplan[plot]'`: the `resvg-py` wheel).
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from llmplan.breakdown import KV_CACHE, OVERHEADS, TENSOR_TERMS, WEIGHTS, Unit
from llmplan.charts.series import Charts, LineChart, ScatterChart, StackedChart
from llmplan.charts.training import DEVICE
from llmplan.errors import SpecError
from llmplan.units import GIB

PANEL_W, PANEL_H = 660, 380
COLUMNS = 2
PLOT = (70, 44, 420, 270)
"""Plot area inside a panel: left, top, width, height (the legend sits to its right)."""
OOM_COLOR = "#d62728"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a")  # fmt: skip
MEMORY_ORDER = (
    DEVICE,
    WEIGHTS,
    KV_CACHE,
    *(t for t in TENSOR_TERMS if t not in (WEIGHTS, KV_CACHE)),
    OVERHEADS,
)
"""Memory series in palette order, so that a term has one colour in every chart."""
_TIME_SCALES = ((86400.0, "days"), (3600.0, "h"), (1.0, "s"), (1e-3, "ms"), (1e-6, "µs"))


def scale(unit: Unit, largest: float) -> tuple[float, str]:
    """(divisor, unit name) to show values of `unit` up to `largest`: bytes in GiB, time in the largest of
    days / h / s / ms / µs that keeps `largest` at least 2 of it."""
    if unit is Unit.BYTES:
        return float(GIB), "GiB"
    if unit is Unit.SECONDS:
        return next(((f, n) for f, n in _TIME_SCALES if largest >= 2 * f), _TIME_SCALES[-1])
    names = {Unit.USD: "USD", Unit.GPU_HOURS: "GPU-hours", Unit.COUNT: ""}
    return 1.0, names.get(unit, unit.value)


def _num(value: float) -> str:
    """A tick label: at most 3 significant digits past the thousands, no trailing zeros."""
    if value != 0 and abs(value) >= 1e5:
        return f"{value / 1e6:.3g}M" if abs(value) >= 1e6 else f"{value / 1e3:.3g}k"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3g}"


def nice_ticks(high: float, low: float = 0.0, count: int = 5) -> tuple[float, ...]:
    """Ticks k·s from at most `low` to at least `high`, with s 1, 2 or 5 times a power of ten."""
    if high <= low:
        return (low, low + 1.0) if low else (0.0, 1.0)
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(low / step + 1e-9)
    return tuple(round(i * step, 12) for i in range(first, math.ceil(high / step - 1e-9) + 1))


def _colors(names: list[str]) -> dict[str, str]:
    """A colour per name: memory terms always the same one (`MEMORY_ORDER`), other names in order of first
    appearance."""
    order = list(dict.fromkeys(names))
    if all(n in MEMORY_ORDER for n in order):
        return {n: PALETTE[MEMORY_ORDER.index(n) % len(PALETTE)] for n in order}
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(order)}


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


class _Panel:
    """One chart's drawing at offset (ox, oy): linear y, linear or log2 x, mapped into PLOT."""

    def __init__(self, ox: float, oy: float) -> None:
        self.ox, self.oy = ox, oy
        self.out: list[str] = []

    def frame(self, title: str) -> None:
        left, top, w, h = PLOT
        self.out.append(f'<g transform="translate({self.ox},{self.oy})">')
        self.out.append(
            f'<rect x="0" y="0" width="{PANEL_W}" height="{PANEL_H}" fill="white" stroke="#ddd"/>'
        )
        self.out.append(_text(10, 20, title[:95], 12, extra=' font-weight="bold"'))
        self.out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#333"/>')

    def y_axis(self, high: float, unit: Unit, name: str = "", low: float = 0.0) -> None:
        """A linear y axis from 0 (or `low`) to `high` in the display unit of `unit`."""
        self.div, label = scale(unit, high)
        self.ticks = nice_ticks(high / self.div, low / self.div)
        self.ymin, self.ymax = self.ticks[0] * self.div, self.ticks[-1] * self.div
        left, top, w, h = PLOT
        for t in self.ticks:
            y = self.py(t * self.div)
            self.out.append(
                f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#eee"/>'
            )
            self.out.append(_text(left - 6, y + 4, _num(t), 10, "end"))
        shown = f"{name} ({label})" if name and label else name or label
        self.out.append(
            _text(14, top + h / 2, shown, 11, "middle", f' transform="rotate(-90 14 {top + h / 2})"')
        )

    def py(self, value: float) -> float:
        _, top, _, h = PLOT
        span = self.ymax - self.ymin
        return top + h - h * (value - self.ymin) / span if span else top + h

    def x_axis(self, lo: float, hi: float, log: bool, ticks: list[float], label: str, div: float = 1) -> None:
        self.log, self.lo, self.hi = log, (math.log2(lo) if log else lo), (math.log2(hi) if log else hi)
        left, top, w, h = PLOT
        last = -math.inf
        for t in ticks:
            x = self.px(t)
            self.out.append(
                f'<line x1="{x:.1f}" y1="{top + h}" x2="{x:.1f}" y2="{top + h + 4}" stroke="#333"/>'
            )
            if x - last >= 36:  # a label closer than this would overlap the last: the tick stays unlabelled
                self.out.append(_text(x, top + h + 16, _num(t / div), 10, "middle"))
                last = x
        self.out.append(_text(left + w / 2, top + h + 34, label, 11, "middle"))

    def px(self, value: float) -> float:
        left, _, w, _ = PLOT
        v = math.log2(value) if self.log else value
        span = self.hi - self.lo
        return left + (w * (v - self.lo) / span if span else w / 2)

    def oom_y(self, limit: float | None, label: str) -> None:
        if limit is None:
            return
        left, _, w, _ = PLOT
        y = self.py(limit)
        self.out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="{OOM_COLOR}" '
                        'stroke-width="1.5" stroke-dasharray="6 4"/>')  # fmt: skip
        self.out.append(_text(left + w - 4, y - 4, f"{label} {_num(round(limit / self.div, 2))}", 10,
                              "end", f' fill="{OOM_COLOR}"'))  # fmt: skip

    def legend(self, items: list[tuple[str, str, str]]) -> None:
        """(label, colour, kind: box / line / dash / dot) rows right of the plot area."""
        x0 = PLOT[0] + PLOT[2] + 12
        for i, (label, color, kind) in enumerate(items[:16]):
            y = PLOT[1] + 8 + 18 * i
            if kind == "box":
                self.out.append(f'<rect x="{x0}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
            elif kind == "dot":
                self.out.append(
                    f'<circle cx="{x0 + 5}" cy="{y - 3}" r="4" fill="white" stroke="{color}" stroke-width="2"/>'
                )
            else:
                dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
                self.out.append(f'<line x1="{x0 - 2}" y1="{y - 3}" x2="{x0 + 12}" y2="{y - 3}" stroke="{color}" '
                                f'stroke-width="2"{dash}/>')  # fmt: skip
            self.out.append(_text(x0 + 16, y + 1, label[:22], 10))

    def close(self) -> list[str]:
        return [*self.out, "</g>"]


def _limit_item(limit: float | None) -> list[tuple[str, str, str]]:
    return [] if limit is None else [("capacity (OOM)", OOM_COLOR, "dash")]


def _stacked(p: _Panel, c: StackedChart) -> None:
    p.frame(c.title)
    high = max([b.total for b in c.bars] + [c.limit or 0.0])
    p.y_axis(high * 1.05, c.unit)
    names = [s.name for b in c.bars for s in b.segments if s.value > 0]
    colors = _colors(names)
    left, top, w, h = PLOT
    slot = w / max(1, len(c.bars))
    for i, bar in enumerate(c.bars):
        x, y = left + slot * i + slot * 0.2, top + h
        for seg in bar.segments:
            if seg.value <= 0:
                continue
            height = h * seg.value / p.ymax
            y -= height
            p.out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{height:.1f}" '
                         f'fill="{colors[seg.name]}"><title>{escape(seg.name)}</title></rect>')  # fmt: skip
        p.out.append(_text(x + slot * 0.3, y - 4, _num(round(bar.total / p.div, 2)), 10, "middle"))
        p.out.append(_text(x + slot * 0.3, top + h + 16, bar.label, 10, "middle"))
        p.out.append(_text(x + slot * 0.3, top + h + 29, bar.counter, 9, "middle", ' fill="#666"'))
    p.oom_y(c.limit, c.limit_label)
    items = [(n, colors[n], "box") for n in colors]
    p.legend(items + _limit_item(c.limit))


def _line(p: _Panel, c: LineChart) -> None:
    p.frame(c.title)
    xs = sorted({pt.x for line in c.lines for pt in line.points} | {c.current})
    ys = [pt.y for line in c.lines for pt in line.points] + [c.limit or 0.0]
    p.y_axis(max(ys) * 1.05, c.unit)
    p.x_axis(xs[0], xs[-1], c.log_x and xs[0] > 0, xs, c.x_name.replace("_", " "))
    colors = _colors([line.name for line in c.lines])
    for line in c.lines:
        pts = [(p.px(pt.x), p.py(pt.y), pt.fits) for pt in line.points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts)
        p.out.append(f'<polyline points="{path}" fill="none" stroke="{colors[line.name]}" stroke-width="2"/>')
        for x, y, fits in pts:
            fill = "white" if fits is False else colors[line.name]
            p.out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" stroke="{colors[line.name]}"/>'
            )
    top, h = PLOT[1], PLOT[3]
    cx = p.px(c.current)
    p.out.append(
        f'<line x1="{cx:.1f}" y1="{top}" x2="{cx:.1f}" y2="{top + h}" stroke="#555" stroke-dasharray="2 3"/>'
    )
    p.out.append(_text(cx + 3, top + 12, f"this job: {_num(c.current)}", 10))
    if c.largest_fitting is not None and xs[0] <= c.largest_fitting <= xs[-1]:
        bx = p.px(c.largest_fitting)
        p.out.append(f'<line x1="{bx:.1f}" y1="{top}" x2="{bx:.1f}" y2="{top + h}" stroke="#2ca02c"/>')
        p.out.append(_text(bx + 3, top + 26, f"largest fitting: {_num(c.largest_fitting)}", 10))
    p.oom_y(c.limit, c.limit_label)
    items = [(line.name, colors[line.name], "line") for line in c.lines]
    p.legend(items + _limit_item(c.limit))


def _scatter(p: _Panel, c: ScatterChart) -> None:
    p.frame(c.title)
    if not c.points:
        p.out.append(_text(PLOT[0] + 10, PLOT[1] + 20, "no feasible candidate", 11))
        return
    ys = [pt.y for pt in c.points]
    pad = (max(ys) - min(ys)) * 0.1 or max(ys) * 0.05
    p.y_axis(max(ys) + pad, c.y_unit, c.y_name, max(0.0, min(ys) - pad))
    xdiv, xname = scale(c.x_unit, max(pt.x for pt in c.points))
    xhigh = max([pt.x for pt in c.points] + [c.limit or 0.0]) * 1.05
    ticks = [t * xdiv for t in nice_ticks(xhigh / xdiv)]
    p.x_axis(0.0, ticks[-1], False, ticks, f"{c.x_name} ({xname})" if xname else c.x_name, xdiv)
    front = sorted((pt for pt in c.points if pt.front), key=lambda pt: (pt.x, pt.y))
    path = " ".join(f"{p.px(pt.x):.1f},{p.py(pt.y):.1f}" for pt in front)
    p.out.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>')
    for pt in c.points:
        fill = PALETTE[0] if pt.front else "white"
        ring = (
            f' stroke="{PALETTE[1]}" stroke-width="2"'
            if pt.best
            else f' stroke="{PALETTE[0] if pt.front else "#999"}"'
        )
        p.out.append(f'<circle cx="{p.px(pt.x):.1f}" cy="{p.py(pt.y):.1f}" r="{5 if pt.best else 4.5 if pt.front else 3.5}" '
                     f'fill="{fill}"{ring}><title>{escape(pt.label)}</title></circle>')  # fmt: skip
    if c.limit is not None and c.limit <= ticks[-1]:
        lx = p.px(c.limit)
        p.out.append(f'<line x1="{lx:.1f}" y1="{PLOT[1]}" x2="{lx:.1f}" y2="{PLOT[1] + PLOT[3]}" '
                     f'stroke="{OOM_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>')  # fmt: skip
    items = [
        ("Pareto front", PALETTE[0], "line"),
        ("other candidates", "#999", "dot"),
        ("chosen", PALETTE[1], "dot"),
    ]
    p.legend(items + _limit_item(c.limit))


def render(charts: Charts) -> str:
    """The standalone SVG document of every chart of `charts`, COLUMNS panels a row."""
    rows = max(1, math.ceil(len(charts.charts) / COLUMNS))
    width, height = COLUMNS * PANEL_W, rows * PANEL_H + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        _text(10, 20, f"llmplan {charts.command}: {charts.title}", 14, extra=' font-weight="bold"'),
    ]
    draw = {"stacked": _stacked, "line": _line, "scatter": _scatter}
    for i, chart in enumerate(charts.charts):
        panel = _Panel((i % COLUMNS) * PANEL_W, 30 + (i // COLUMNS) * PANEL_H)
        draw[chart.kind](panel, chart)
        out.extend(panel.close())
    out.append("</svg>")
    return "\n".join(out) + "\n"


def require_png(field: str = "plot"):
    """The resvg_py module; SpecError (naming `field`) naming the extra when it is not installed."""
    try:
        import resvg_py
    except ImportError:
        raise SpecError(
            field,
            "a .png needs the resvg-py package (allowed: a .svg file, or install the plot extra: "
            "pip install 'llmplan[plot]')",
        ) from None
    return resvg_py


def png(svg: str) -> bytes:
    """The SVG rendered to PNG by resvg (`require_png`)."""
    return bytes(require_png().svg_to_bytes(svg_string=svg, background="white"))
