"""The JSON that every `--json` prints, as pydantic models: versioned (`schema_version`), strict (unknown keys
rejected, never NaN or Infinity) and documented in docs/json.md.

Each command's output is an `Envelope` subclass built from the typed results (dataclasses from specs/ and
estimate/ are validated as they are); memory and time breakdowns are the estimate's own `Term` records
(`TermOut`). A float that is not finite (an fp16 overflow in `llmplan formats`) is written as the string
"inf", "-inf" or "nan". `dump` writes the JSON text with `allow_nan=False`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from llmplan.breakdown import Breakdown, Term, Unit
from llmplan.catalog.summary import ModelSummary
from llmplan.estimate.changes import Change
from llmplan.estimate.inference import InferenceEstimate, VllmBudget
from llmplan.estimate.suggest import Suggestion
from llmplan.estimate.training import TrainingEstimate
from llmplan.formulas.activations import ActivationBreakdown
from llmplan.formulas.model_states import ModelStates
from llmplan.formulas.overheads import Overheads
from llmplan.specs.hardware import Accelerator
from llmplan.specs.inference import InferenceJob
from llmplan.specs.training import Layout, TrainingJob
from llmplan.stacks import StackSettings

SCHEMA_VERSION = 1
"""Raised when a field is removed or changes meaning; adding a field keeps the version."""

NonFinite = Literal["inf", "-inf", "nan"]
Number = int | float | NonFinite


class Out(BaseModel):
    """Every output model: unknown keys rejected, non-finite floats refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class TermOut(Out):
    """One record: `value` in `unit` (bytes and counts as integers), the formula with its numbers, the source."""

    name: str
    value: int | float
    unit: Unit
    formula: str = ""
    source: str = ""
    parts: tuple[TermOut, ...] = ()

    @classmethod
    def of(cls, term: Term) -> TermOut:
        return cls.model_validate(term.to_json())


class BreakdownOut(Out):
    """Terms of one unit and their sum."""

    unit: Unit
    total: int | float
    terms: tuple[TermOut, ...]

    @classmethod
    def of(cls, b: Breakdown) -> BreakdownOut:
        total = int(b.total) if b.unit is Unit.BYTES else b.total
        return cls(unit=b.unit, total=total, terms=tuple(TermOut.of(t) for t in b.terms))


class Envelope(Out):
    """Fields every output starts with."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command: str


class PhaseOut(Out):
    phase: str
    total: int
    terms: tuple[TermOut, ...]


class ChangeOut(Out):
    """One typed change of a suggestion (`estimate.changes.Change`)."""

    part: Literal["job", "peft", "layout"]
    field: str
    before: JsonValue
    after: JsonValue

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(
            part=change.part.value, field=change.field, before=plain(change.before), after=plain(change.after)
        )


class SuggestionOut(Out):
    """A combination of changes under which the job fits (`estimate.suggest.Suggestion`), re-estimated, and
    the `llmplan train` command that reproduces its number."""

    command: str
    changes: tuple[ChangeOut, ...]
    why: tuple[str, ...]
    cost: int
    device_bytes: int
    saved_bytes: int
    headroom_bytes: int
    host_bytes: int
    nvme_bytes: int
    peak_phase: str

    @classmethod
    def of(cls, tip: Suggestion, command: str) -> SuggestionOut:
        return cls(
            command=command,
            changes=tuple(ChangeOut.of(c) for c in tip.changes),
            why=tip.why,
            cost=tip.cost,
            device_bytes=tip.device_bytes,
            saved_bytes=tip.saved_bytes,
            headroom_bytes=tip.headroom_bytes,
            host_bytes=tip.host_bytes,
            nvme_bytes=tip.nvme_bytes,
            peak_phase=tip.peak_phase.value,
        )


class TrainOut(Envelope):
    """`llmplan train --json`: the busiest GPU of the job."""

    command: Literal["train"] = "train"
    model: str
    accelerator: str
    job: TrainingJob
    layout: Layout
    stack: StackSettings
    stage: int
    params: int
    trainable_params: int
    fits: bool
    peak_phase: str
    allocated_bytes: int
    reserved_bytes: int
    device_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    host_bytes: int
    nvme_bytes: int
    memory: BreakdownOut
    """The terms at the peak phase; memory.total == device_bytes."""
    phases: tuple[PhaseOut, ...]
    counts: tuple[TermOut, ...]
    counters: tuple[TermOut, ...]
    model_states: ModelStates
    activations: ActivationBreakdown
    overheads: Overheads
    suggestions: tuple[SuggestionOut, ...]
    """Combinations of changes that make the job fit, re-estimated, each with the command that reproduces it."""
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    """Fits, but tight (`llmplan.limits.tight_headroom`)."""
    time: dict[str, JsonValue] | None = None
    """Step time and throughput (`estimate.time.TimeEstimate`: its parts are Terms)."""
    cost: dict[str, JsonValue] | None = None
    """Time to train and cost with --tokens or --epochs (`estimate.cost.CostEstimate`)."""

    @classmethod
    def of(
        cls,
        est: TrainingEstimate,
        suggestions: tuple[SuggestionOut, ...],
        warnings: tuple[str, ...] = (),
        *,
        time: object = None,
        cost: object = None,
    ) -> TrainOut:
        return cls(
            model=est.model,
            accelerator=est.accelerator,
            job=est.job,
            layout=est.layout,
            stack=est.stack,
            stage=est.stage,
            params=est.params,
            trainable_params=est.trainable_params,
            fits=est.fits,
            peak_phase=est.peak_phase.value,
            allocated_bytes=est.allocated_bytes,
            reserved_bytes=est.reserved_bytes,
            device_bytes=est.device_bytes,
            capacity_bytes=est.capacity_bytes,
            headroom_bytes=est.headroom_bytes,
            host_bytes=est.host_bytes,
            nvme_bytes=est.nvme_bytes,
            memory=BreakdownOut.of(est.terms),
            phases=tuple(
                PhaseOut(
                    phase=p.phase.value, total=p.total, terms=tuple(TermOut.of(t) for t in p.terms.terms)
                )
                for p in est.phases
            ),
            counts=tuple(TermOut.of(t) for t in est.counts),
            counters=tuple(TermOut.of(t) for t in est.counters),
            model_states=est.model_states,
            activations=est.activations,
            overheads=est.overheads,
            suggestions=suggestions,
            notes=est.notes,
            warnings=warnings,
            time=None if time is None else plain(time),
            cost=None if cost is None else plain(cost),
        )


class ServeOut(Envelope):
    """`llmplan serve --json`: one GPU of the serving job."""

    command: Literal["serve"] = "serve"
    model: str
    accelerator: str
    job: InferenceJob
    fits: bool
    allocated_bytes: int
    reserved_bytes: int
    device_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    memory: BreakdownOut
    """weights (parts: quantized payload, scales / zeros, high-precision), kv_cache, temporaries, overheads."""
    max_batch_at_context: int
    max_context_at_batch: int
    vllm: VllmBudget | None
    speed: tuple[TermOut, ...]
    """Seconds: ttft and tpot, each with its memory / compute / communication parts."""
    tokens_per_s: float
    tokens_per_s_per_sequence: float
    critical_batch: float | None
    notes: tuple[str, ...]

    @classmethod
    def of(cls, est: InferenceEstimate) -> ServeOut:
        mem, speed = est.memory, est.speed
        return cls(
            model=est.model,
            accelerator=est.accelerator,
            job=est.job,
            fits=est.fits,
            allocated_bytes=mem.allocated_bytes,
            reserved_bytes=mem.reserved_bytes,
            device_bytes=mem.device_bytes,
            capacity_bytes=est.capacity_bytes,
            headroom_bytes=est.headroom_bytes,
            memory=BreakdownOut.of(est.terms),
            max_batch_at_context=est.max_batch_at_context,
            max_context_at_batch=est.max_context_at_batch,
            vllm=est.vllm,
            speed=tuple(TermOut.of(t) for t in speed.terms),
            tokens_per_s=speed.tokens_per_s,
            tokens_per_s_per_sequence=speed.tokens_per_s_per_sequence,
            critical_batch=speed.critical_batch,
            notes=est.notes,
        )


class ServeLoadOut(ServeOut):
    """`llmplan serve --input-len ... --json`: the one-GPU estimate, its roofline under `roofline`, and the
    engine's scheduler simulated under load (cli/serve_load.py)."""

    roofline: tuple[TermOut, ...]
    """The `ttft` / `tpot` roofline terms of the one-batch estimate."""
    speed: dict[str, JsonValue]  # type: ignore[assignment]
    """Simulated TTFT / TPOT / ITL / E2E percentiles (ms) and throughput."""
    cost: dict[str, JsonValue]
    serving: dict[str, JsonValue]
    """Engine settings with sources, workload, KV pool term, decode step term, iterations, preemptions."""
    slo: dict[str, JsonValue] | None = None


class ParamsOut(Envelope):
    """`llmplan params --json`."""

    command: Literal["params"] = "params"
    model: str
    model_type: str
    tie_word_embeddings: bool
    params: dict[str, int]
    """Parameters per component, `biases` (already inside the components) and `total`."""
    total: int
    active_per_token: int


class ModelsOut(Envelope):
    """`llmplan models --json`."""

    command: Literal["models"] = "models"
    models: tuple[ModelSummary, ...]


class GpusOut(Envelope):
    """`llmplan gpus --json`: the accelerator records of the catalog."""

    command: Literal["gpus"] = "gpus"
    gpus: tuple[Accelerator, ...]


class ClustersOut(Envelope):
    """`llmplan clusters --json`: the cluster presets (GPUs per node, intra- and inter-node links)."""

    command: Literal["clusters"] = "clusters"
    clusters: list[dict[str, JsonValue]]


class EncodingOut(Out):
    format: str
    bits: int
    sign_bit: str
    exponent_field: str
    mantissa_field: str
    exponent: int | None
    stored: Number
    scale: Number | None
    abs_error: Number
    rel_error: Number
    max_value: Number
    min_normal: Number | None
    min_subnormal: Number | None
    note: str
    total: Number


class FormatsOut(Envelope):
    """`llmplan formats VALUE --json`."""

    command: Literal["formats"] = "formats"
    value: Number
    encodings: tuple[EncodingOut, ...]


class TraceOut(Envelope):
    """`llmplan trace --json`: the traced step and the analytic comparison (JSON-shaped records)."""

    command: Literal["trace"] = "trace"
    trace: dict[str, JsonValue]
    analytic: dict[str, JsonValue] | None
    notes: tuple[str, ...]


class MeasureOut(Envelope):
    """`llmplan measure --json`: one step measured on a CUDA device."""

    command: Literal["measure"] = "measure"
    result: dict[str, JsonValue]


class ValidateOut(Envelope):
    """`llmplan validate --json`: error statistics and every compared case."""

    command: Literal["validate"] = "validate"
    measured_summary: list[JsonValue]
    trace_stats: dict[str, JsonValue] | None
    trace: list[dict[str, JsonValue]]
    measured: list[dict[str, JsonValue]]
    broken: list[str]


def plain(value: Any) -> Any:
    """Dataclasses, enums and tuples -> JSON types (a dataclass's `total` property included); ints stay ints;
    a non-finite float becomes "inf", "-inf" or "nan"."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        total = getattr(type(value), "total", None)
        if isinstance(total, property):
            out["total"] = plain(value.total)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def dump(out: Envelope) -> str:
    """The JSON text of an output model (strict: NaN and Infinity refused)."""
    return json.dumps(out.model_dump(mode="json"), indent=2, allow_nan=False)
