"""Trace a model cut to a few decoder layers and compose the whole model's timeline exactly.

Why it is exact. Write the layer stack as a prefix of special layers, then M repeats of a period of p layers
(one block kind: p = 1; Gemma 2's alternating sliding / full layers: p = 2; DeepSeek's leading dense layers: a
prefix). At any event inside the k-th period's segment (forward or backward) the live bytes of each category
are A + k·B + M·C for constants A, B, C of that event (k earlier periods' saved activations or gradients, M
periods' weights and states), and events outside the layers are A + M·C. The first and the last period differ
from the others (nothing before / after them), so the identical periods run from k = 1 to k = M-2, and the
maximum over k of an affine function sits at an end: the peak lies in the first two periods, the last two, or
outside the layers. Models cut to 4 and to 5 periods contain exactly those; after dropping the 5-period
model's middle period, their events align one to one, and every aligned event's bytes are affine in M:
v(M) = v(5) + (M - 5)·(v(5) - v(4)). Only the first and last event of each run of births (or deaths) need to
align, which makes loops over parameters (AdamW creating its states) align too. The tests check this against
full traces of small models; when the two cut traces do not align (the per-parameter optimizer loop), the
whole model is traced instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from llmplan.breakdown import Breakdown
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, TrainingJob
from llmplan.trace import build, step
from llmplan.trace.result import PhasePeak, TraceResult, trace_breakdown
from llmplan.trace.tracker import CATS, Tracker

EDGE_PERIODS = 2
"""Periods kept at each end of the stack: the first and the last differ from the others (nothing before /
after them; FSDP prefetches nothing there), and the second and the second-to-last are the ends of the run of
identical periods between them."""
CUT_PERIODS = (2 * EDGE_PERIODS, 2 * EDGE_PERIODS + 1)
"""Periods in the two cut models that are traced to compose a deeper one."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """The layer stack as `prefix` leading layers then `periods` repeats of `period` layers.

    One block kind: prefix 0, period 1. DeepSeek's first dense layers: a prefix. Gemma 2's alternating
    sliding / full layers: period 2.
    """

    prefix: int
    period: int
    periods: int

    def layers(self, periods: int) -> int:
        return self.prefix + periods * self.period

    def key(self, layer: int, num_layers: int) -> Any:
        """Alignment key of a layer of a model with `num_layers` layers; None for a dropped middle layer."""
        if layer < self.prefix:
            return ("prefix", layer)
        q, pos = divmod(layer - self.prefix, self.period)
        m = (num_layers - self.prefix) // self.period
        if q < EDGE_PERIODS:
            return (q, pos)
        if q >= m - EDGE_PERIODS:
            return ("from_end", m - 1 - q, pos)
        return None


def layer_pattern(spec: ModelSpec) -> Pattern | None:
    """The shortest prefix and period that describe `spec.layers`, when composing it saves work."""
    kinds = spec.layers
    L = len(kinds)
    for prefix in range(0, 4):
        for period in range(1, 7):
            if (L - prefix) % period or (L - prefix) // period <= CUT_PERIODS[1]:
                continue
            if all(kinds[i] == kinds[i - period] for i in range(prefix + period, L)):
                return Pattern(prefix, period, (L - prefix) // period)
    return None


class _Misaligned(Exception):
    """The two cut traces' segments do not pair up event by event."""


@dataclass(slots=True)
class RawTrace:
    """Live bytes per category after every event, with each event's phase and segment label."""

    values: list[tuple[int, ...]]
    phases: list[tuple[str, int]]
    """(phase name, step) of every event."""
    labels: list[tuple[int, str, int]]
    """(phase index, segment kind, layer index) of every event."""
    signs: list[int]
    """+1 for a birth, -1 for a death."""
    num_layers: int
    total_params: int
    trainable_params: int


def run_trace(
    spec: ModelSpec,
    work: TrainingJob | step.InferenceRun,
    num_layers: int,
    *,
    wrap: Callable[[Any], Any] | None = None,
    dtype: str | None = None,
) -> RawTrace:
    """Build `spec` cut to `num_layers` layers on fake tensors and trace one step of `work`.

    `wrap` transforms the prepared model (FSDP sharding); `dtype` overrides the weights' dtype.
    """
    torch = build.require("torch")
    fake = build.require("torch._subclasses.fake_tensor")
    training = isinstance(work, TrainingJob)
    if training:
        dtype = dtype or build.MODEL_DTYPE[work.precision]
        attention = build.attention_name(work.attention, work.recompute)
    else:
        dtype, attention = work.dtype, work.attention
    with fake.FakeTensorMode(allow_non_fake_inputs=False):
        torch.manual_seed(0)
        model = build.build_model(spec, dtype=dtype, attention=attention, num_layers=num_layers)
        if training:
            model = build.prepare_training(model, spec, work)
            step.cuda_dropout(model)
        if wrap is not None:
            model = wrap(model)
        tracker = Tracker()
        handles = step.install_markers(model, tracker)
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        with tracker:
            if training:
                step.train(model, work, tracker, spec.vocab_size)
            else:
                step.infer(model, work, tracker, spec.vocab_size)
        for handle in handles:
            handle.remove()
        del model
    phase_of = tracker.event_phase()
    phases = [(tracker.phases[p].name, tracker.phases[p].step) for p in phase_of]
    labels = [tracker.segments[seg] for _idx, _sign, seg in tracker.events]
    signs = [sign for _idx, sign, _seg in tracker.events]
    return RawTrace(tracker.timeline(), phases, labels, signs, num_layers, total, trainable)


def _runs(trace: RawTrace, pattern: Pattern) -> list[tuple[tuple[int, str, Any], list[int]]]:
    """Consecutive events grouped by their segment's alignment key; middle periods dropped."""
    n = trace.num_layers
    out: list[tuple[tuple[int, str, Any], list[int]]] = []
    for i, (phase, kind, layer) in enumerate(trace.labels):
        key = -1 if layer < 0 else pattern.key(layer, n)
        if key is None:
            continue
        label = (phase, kind, key)
        if out and out[-1][0] == label:
            out[-1][1].append(i)
        else:
            out.append((label, [i]))
    return [(label, _run_ends(events, trace.signs)) for label, events in out]


def _run_ends(events: list[int], signs: list[int]) -> list[int]:
    """The first and last event of each run of births (or of deaths): a segment's highest bytes are at the end
    of a run of births, or at the first event of a run of deaths, which opens a phase at its previous value.
    Only these need to align (a loop creating one optimizer state per parameter is one run)."""
    keep = []
    for k, e in enumerate(events):
        first = k == 0 or signs[events[k - 1]] != signs[e]
        last = k + 1 == len(events) or signs[events[k + 1]] != signs[e]
        if first or last:
            keep.append(e)
    return keep


def compose(
    a: RawTrace, b: RawTrace, pattern: Pattern
) -> tuple[list[tuple[int, ...]], list[tuple[str, int]]]:
    """Per-event live bytes of the whole model from cut traces `a` (n periods) and `b` (n + 1 periods)."""
    if b.num_layers != a.num_layers + pattern.period:
        raise ValueError("compose needs traces of n and n+1 periods")
    runs_a, runs_b = _runs(a, pattern), _runs(b, pattern)
    if [(lab, len(ev)) for lab, ev in runs_a] != [(lab, len(ev)) for lab, ev in runs_b]:
        raise _Misaligned
    extra = pattern.periods - CUT_PERIODS[1]
    values: list[tuple[int, ...]] = []
    phases: list[tuple[str, int]] = []
    for (_lab, ev_a), (_lab_b, ev_b) in zip(runs_a, runs_b, strict=True):
        for i, j in zip(ev_a, ev_b, strict=True):
            va, vb = a.values[i], b.values[j]
            values.append(tuple(y + extra * (y - x) for x, y in zip(va, vb, strict=True)))
            phases.append(b.phases[j])
    return values, phases


def summarise(
    values: list[tuple[int, ...]], phases: list[tuple[str, int]]
) -> tuple[Breakdown, str, int, tuple[PhasePeak, ...]]:
    """The peak's breakdown, phase and step, and each phase's peak and end bytes."""
    best, best_i = -1, 0
    timeline: list[PhasePeak] = []
    for i, v in enumerate(values):
        total = sum(v)
        if total > best:
            best, best_i = total, i
        if not timeline or (timeline[-1].phase, timeline[-1].step) != phases[i]:
            timeline.append(PhasePeak(phases[i][0], phases[i][1], total, total))
        else:
            last = timeline[-1]
            timeline[-1] = PhasePeak(last.phase, last.step, max(last.peak_bytes, total), total)
    peak = trace_breakdown({c.value: n for c, n in zip(CATS, values[best_i], strict=True)} if values else {})
    phase, step_no = phases[best_i] if values else ("setup", 0)
    return peak, phase, step_no, tuple(timeline)


def trace(
    spec: ModelSpec,
    work: TrainingJob | step.InferenceRun,
    *,
    layout: Layout | None = None,
    compose_layers: bool = True,
) -> TraceResult:
    """Trace one training step (a TrainingJob) or an inference run (an InferenceRun) of `spec` on fake tensors.

    With `compose_layers` and a layer stack of more than 5 repeats of a short pattern, two cut models are
    traced and the whole model composed (module docstring); otherwise the whole model is traced.
    """
    build.check_native(spec)
    training = isinstance(work, TrainingJob)
    if training:
        build.check_job(work)
        build.check_layout(layout)
        if layout is not None and layout.fsdp is not None and layout.dp > 1:
            from llmplan.trace import fsdp

            return fsdp.trace_fsdp(spec, work, ranks=layout.dp, compose_layers=compose_layers)
    return trace_with(spec, work, run_trace, compose_layers=compose_layers)


def trace_with(
    spec: ModelSpec,
    work: TrainingJob | step.InferenceRun,
    runner: Callable[[ModelSpec, Any, int], RawTrace],
    *,
    compose_layers: bool = True,
    ranks: int = 1,
) -> TraceResult:
    """Run `runner` on the whole model, or on two cut models composed (module docstring)."""
    training = isinstance(work, TrainingJob)
    started = time.perf_counter()
    L = spec.num_hidden_layers
    notes: list[str] = []
    pattern = layer_pattern(spec) if compose_layers else None
    composed = pattern is not None
    if compose_layers and not composed and L > CUT_PERIODS[1]:
        notes.append("the layer kinds follow no short repeating pattern: the whole model was traced")
    if pattern is not None:
        cut = (pattern.layers(CUT_PERIODS[0]), pattern.layers(CUT_PERIODS[1]))
        a = runner(spec, work, cut[0])
        b = runner(spec, work, cut[1])
        try:
            values, phases = compose(a, b, pattern)
            extra = pattern.periods - CUT_PERIODS[1]
            total = b.total_params + extra * (b.total_params - a.total_params)
            trainable = b.trainable_params + extra * (b.trainable_params - a.trainable_params)
            traced: tuple[int, ...] = cut
        except _Misaligned:
            composed = False
            notes.append(
                "cut traces did not align (per-parameter optimizer loop): the whole model was traced"
            )
    if not composed:
        full = runner(spec, work, L)
        values, phases = full.values, full.phases
        total, trainable, traced = full.total_params, full.trainable_params, (L,)
    peak, phase, step_no, timeline = summarise(values, phases)
    return TraceResult(
        model=spec.name,
        mode="train" if training else "infer",
        peak=peak,
        peak_phase=phase,
        peak_step=step_no,
        timeline=timeline,
        total_params=total,
        trainable_params=trainable,
        num_layers=L,
        traced_layers=traced,
        composed=composed,
        ranks=ranks,
        wall_s=time.perf_counter() - started,
        notes=tuple(notes),
    )


def with_layers(spec: ModelSpec, num_layers: int) -> ModelSpec:
    """`spec` with its config and inventory cut to `num_layers` decoder layers (for tests and benchmarks)."""
    config = dict(spec.config)
    config["num_hidden_layers"] = num_layers
    if isinstance(config.get("layer_types"), list):
        config["layer_types"] = config["layer_types"][:num_layers]
    return replace(spec, num_hidden_layers=num_layers, layers=spec.layers[:num_layers], config=config)
