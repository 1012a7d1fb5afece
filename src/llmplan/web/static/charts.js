// Draws the chart records of llmplan.charts (the JSON of /api/charts/*) as SVG: stacked bars against a
// limit, line sweeps with the OOM line, and scatters with the Pareto front. Plain DOM, no library.
(() => {
"use strict";

const GIB = 2 ** 30;
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#2f4b7c", "#a05195"];
const colorOf = (() => {
  const seen = new Map();
  return (name) => {
    if (!seen.has(name)) seen.set(name, COLORS[seen.size % COLORS.length]);
    return seen.get(name);
  };
})();

function unitScale(unit, max) {
  if (unit === "bytes") return { k: 1 / GIB, label: "GiB" };
  if (unit === "s") return max < 1 ? { k: 1e3, label: "ms" } : { k: 1, label: "s" };
  if (unit === "usd") return { k: 1, label: "USD" };
  return { k: 1, label: unit === "count" ? "" : unit };
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 1000) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function el(name, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const W = 460, H = 260, M = { l: 58, r: 12, t: 10, b: 52 };

function frame(svg, yMax, yLabel) {
  const ih = H - M.t - M.b;
  for (let i = 0; i <= 4; i++) {
    const y = M.t + ih - (ih * i) / 4;
    svg.append(el("line", { class: "grid", x1: M.l, x2: W - M.r, y1: y, y2: y }));
    svg.append(el("text", { x: M.l - 4, y: y + 4, "text-anchor": "end" }, fmt((yMax * i) / 4)));
  }
  svg.append(el("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: M.t + ih }));
  svg.append(el("text", { x: 12, y: M.t + ih / 2, transform: `rotate(-90 12 ${M.t + ih / 2})`,
    "text-anchor": "middle" }, yLabel));
  return (v) => M.t + ih - (ih * v) / yMax;
}

function legend(svg, names, y) {
  let x = M.l;
  for (const n of names) {
    svg.append(el("rect", { x, y: y - 8, width: 9, height: 9, fill: colorOf(n) }));
    const t = el("text", { x: x + 12, y }, n);
    svg.append(t);
    x += 16 + 6.2 * n.length;
    if (x > W - 60) { x = M.l; y += 12; }
  }
}

function stacked(chart) {
  const totals = chart.bars.map((b) => b.total);
  const s = unitScale(chart.unit, Math.max(...totals, chart.limit || 0));
  const yMax = niceMax(Math.max(...totals, chart.limit || 0) * s.k);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H + 30}`, width: W, height: H + 30 });
  const y = frame(svg, yMax, s.label);
  const iw = W - M.l - M.r, bw = Math.min(60, (iw / chart.bars.length) * 0.7);
  const names = [];
  chart.bars.forEach((bar, i) => {
    const x = M.l + (iw * (i + 0.5)) / chart.bars.length - bw / 2;
    let acc = 0;
    const g = el("g", { class: "bar", "data-label": bar.label, "data-total": bar.total });
    for (const seg of bar.segments) {
      if (!(seg.value > 0)) continue;
      if (!names.includes(seg.name)) names.push(seg.name);
      const y0 = y(acc * s.k), y1 = y((acc + seg.value) * s.k);
      const r = el("rect", { x, y: y1, width: bw, height: Math.max(0, y0 - y1), fill: colorOf(seg.name) });
      r.append(el("title", {}, `${seg.name}: ${fmt(seg.value * s.k)} ${s.label}\n${seg.source}`));
      g.append(r);
      acc += seg.value;
    }
    svg.append(g);
    svg.append(el("text", { x: x + bw / 2, y: y(bar.total * s.k) - 3, "text-anchor": "middle" }, fmt(bar.total * s.k)));
    svg.append(el("text", { x: x + bw / 2, y: H - M.b + 14, "text-anchor": "middle" }, bar.label));
  });
  if (chart.limit) {
    const ly = y(chart.limit * s.k);
    svg.append(el("line", { class: "limit", x1: M.l, x2: W - M.r, y1: ly, y2: ly }));
    svg.append(el("text", { x: W - M.r, y: ly - 3, "text-anchor": "end", fill: "#c0262d" },
      `${chart.limit_label || "capacity"} ${fmt(chart.limit * s.k)} ${s.label}`));
  }
  legend(svg, names, H - 14);
  return svg;
}

function lineChart(chart) {
  const ys = chart.lines.flatMap((l) => l.points.map((p) => p.y));
  const xs = chart.lines.flatMap((l) => l.points.map((p) => p.x));
  const s = unitScale(chart.unit, Math.max(...ys, chart.limit || 0));
  const yMax = niceMax(Math.max(...ys, chart.limit || 0) * s.k);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H + 30}`, width: W, height: H + 30 });
  const y = frame(svg, yMax, s.label);
  const lo = Math.min(...xs, chart.current), hi = Math.max(...xs, chart.current);
  const log = chart.log_x && lo > 0;
  const tx = (v) => (log ? Math.log2(v) : v);
  const iw = W - M.l - M.r;
  const x = (v) => M.l + (hi === lo ? iw / 2 : (iw * (tx(v) - tx(lo))) / (tx(hi) - tx(lo)));
  svg.append(el("line", { class: "axis", x1: M.l, x2: W - M.r, y1: y(0), y2: y(0) }));
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
    svg.append(el("text", { x: x(v), y: H - M.b + 14, "text-anchor": "middle" }, fmt(v)));
  }
  svg.append(el("text", { x: M.l + iw / 2, y: H - M.b + 28, "text-anchor": "middle" }, chart.x_name));
  if (chart.limit) {
    const ly = y(chart.limit * s.k);
    svg.append(el("line", { class: "limit", x1: M.l, x2: W - M.r, y1: ly, y2: ly }));
    svg.append(el("text", { x: W - M.r, y: ly - 3, "text-anchor": "end", fill: "#c0262d" },
      `${chart.limit_label || "OOM: capacity"} ${fmt(chart.limit * s.k)} ${s.label}`));
  }
  svg.append(el("line", { class: "current", x1: x(chart.current), x2: x(chart.current), y1: M.t, y2: y(0) }));
  for (const line of chart.lines) {
    const pts = line.points.map((p) => `${x(p.x)},${y(p.y * s.k)}`).join(" ");
    svg.append(el("polyline", { points: pts, fill: "none", stroke: colorOf(line.name), "stroke-width": 2,
      "data-line": line.name }));
    for (const p of line.points) {
      const c = el("circle", { cx: x(p.x), cy: y(p.y * s.k), r: 3, fill: p.fits === false ? "#fff" : colorOf(line.name),
        stroke: colorOf(line.name) });
      c.append(el("title", {}, `${line.name} at ${chart.x_name} ${p.x}: ${fmt(p.y * s.k)} ${s.label}` +
        (p.fits === null || p.fits === undefined ? "" : p.fits ? " (fits)" : " (does not fit)")));
      svg.append(c);
    }
  }
  if (chart.largest_fitting) {
    svg.append(el("text", { x: M.l + 4, y: M.t + 12 }, `largest that fits: ${chart.largest_fitting}`));
  }
  legend(svg, chart.lines.map((l) => l.name), H - 2);
  return svg;
}

function scatter(chart) {
  const sx = unitScale(chart.x_unit, Math.max(...chart.points.map((p) => p.x)));
  const sy = unitScale(chart.y_unit, Math.max(...chart.points.map((p) => p.y)));
  const xMax = niceMax(Math.max(...chart.points.map((p) => p.x), chart.limit || 0) * sx.k);
  const yMax = niceMax(Math.max(...chart.points.map((p) => p.y)) * sy.k);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  const y = frame(svg, yMax, `${chart.y_name} (${sy.label})`);
  const iw = W - M.l - M.r;
  const x = (v) => M.l + (iw * v) / xMax;
  for (let i = 0; i <= 4; i++) {
    svg.append(el("text", { x: x((xMax * i) / 4), y: H - M.b + 14, "text-anchor": "middle" }, fmt((xMax * i) / 4)));
  }
  svg.append(el("line", { class: "axis", x1: M.l, x2: W - M.r, y1: y(0), y2: y(0) }));
  svg.append(el("text", { x: M.l + iw / 2, y: H - M.b + 28, "text-anchor": "middle" }, `${chart.x_name} (${sx.label})`));
  if (chart.limit) {
    svg.append(el("line", { class: "limit", x1: x(chart.limit * sx.k), x2: x(chart.limit * sx.k), y1: M.t, y2: y(0) }));
  }
  const front = chart.points.filter((p) => p.front).sort((a, b) => a.x - b.x);
  svg.append(el("polyline", { points: front.map((p) => `${x(p.x * sx.k)},${y(p.y * sy.k)}`).join(" "),
    fill: "none", stroke: "#e15759", "stroke-width": 1.5 }));
  for (const p of chart.points) {
    const c = el("circle", { cx: x(p.x * sx.k), cy: y(p.y * sy.k), r: p.best ? 6 : p.front ? 4 : 2.5,
      fill: p.best ? "#13803a" : p.front ? "#e15759" : "#9aa", "data-front": p.front });
    c.append(el("title", {}, `${p.label}: ${fmt(p.x * sx.k)} ${sx.label}, ${fmt(p.y * sy.k)} ${sy.label}`));
    svg.append(c);
  }
  svg.append(el("text", { x: W - M.r, y: M.t + 12, "text-anchor": "end" },
    `${chart.points.length} points; Pareto front red, chosen green`));
  return svg;
}

function drawChart(chart) {
  const fig = document.createElement("figure");
  fig.dataset.chart = chart.id;
  const cap = document.createElement("figcaption");
  cap.textContent = chart.title;
  fig.append(cap);
  fig.append(chart.kind === "stacked" ? stacked(chart) : chart.kind === "line" ? lineChart(chart) : scatter(chart));
  const src = document.createElement("div");
  src.className = "note";
  src.textContent = `source: ${chart.source}`;
  fig.append(src);
  return fig;
}

window.llmplanCharts = { drawChart, GIB };
})();
