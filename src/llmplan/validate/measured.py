"""The published memory measurements, as llmplan configurations (`measured_cases.json`).

Every memory row of `shared/data/measured.jsonl` has one entry in `measured_cases.json`: either a full llmplan
configuration (model, job, layout, GPU, the counter the number is, its unit) with a one-line justification of
each assumption taken from the row's notes, or the reason it is left out (not a decoder-only model, not fully
specified, a rule of thumb). This module turns the entries into typed cases; it needs no torch.

Units: "GB" = 10^9 bytes, "GiB" = 2^30, "MiB" = 2^20. A total over GPUs (`divide_by` > 1) is divided by the
GPU count to give the per-GPU figure; rows from a device-map split (`scope` = whole_model) are compared with a
single-device estimate of the whole model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any

from llmplan.errors import SpecError
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)

UNIT_BYTES: dict[str, int] = {"GB": 10**9, "GiB": 2**30, "MiB": 2**20}
"""Bytes per unit as the sources print them: decimal GB, binary GiB and MiB."""


class CaseStatus(str, Enum):
    """What a measured row is used for."""

    STATS = "stats"
    """Fully specified (flags name the approximations): in the accuracy statistics."""
    VERDICT = "verdict"
    """A boolean (out of memory or not): checked as a fits / does-not-fit verdict."""
    INFORMATIONAL = "informational"
    """Estimated and shown when it can be expressed, kept out of the statistics for the stated reason."""
    EXCLUDED = "excluded"
    """Not fully specified: listed with the reason."""
    OUT_OF_SCOPE = "out_of_scope"
    """Not a decoder-only language model (T5, T0, BERT)."""
    RULE_OF_THUMB = "rule_of_thumb"
    """Someone's estimate, not a measurement."""


class Counter(str, Enum):
    """The memory counters of design.md."""

    ALLOCATED = "allocated"
    """torch.cuda.max_memory_allocated: bytes in live tensors."""
    RESERVED = "reserved"
    """torch.cuda.max_memory_reserved: what the caching allocator holds."""
    DEVICE = "device"
    """nvidia-smi: reserved + CUDA context + library workspaces."""


class Scope(str, Enum):
    """What the measured figure covers."""

    PER_GPU = "per_gpu"
    """One GPU (after dividing a total over GPUs by their count)."""
    WHOLE_MODEL = "whole_model"
    """The sum over the GPUs of a layer-wise device-map split: compared with a single-device estimate."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceSetting:
    """An inference run as the row states it (mapped onto the inference engine's job by `compare`)."""

    batch_size: int
    prompt_len: int
    new_tokens: int
    weights: str
    """Weight format: fp32, fp16, bf16, int8 (LLM.int8), fp4 / nf4 (bitsandbytes 4-bit), gptq-int4."""
    attention: AttentionImpl


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasuredCase:
    """One memory row of measured.jsonl and its llmplan configuration."""

    row: str
    """The row's `id` in measured.jsonl."""
    source: str
    """The publication it comes from (the grouping of the per-source summaries)."""
    status: CaseStatus
    published: str
    """The row's metric, value and unit as published, for the report."""
    trust: str
    reason: str = ""
    flags: tuple[str, ...] = ()
    """Approximations taken (dynamic-padding, counter-assumed, unit-assumed, approximation, range, ...)."""
    assumptions: tuple[str, ...] = ()
    model_id: str | None = None
    training: TrainingJob | None = None
    inference: InferenceSetting | None = None
    layout: Layout = field(default_factory=Layout)
    gpu: str | None = None
    counter: Counter | None = None
    value: float | None = None
    unit: str | None = None
    divide_by: int = 1
    scope: Scope = Scope.PER_GPU
    expect_fits: bool | None = None

    @property
    def measured_bytes(self) -> int | None:
        """The measured figure per GPU (or for the whole model, see `scope`) in bytes."""
        if self.value is None or self.unit is None:
            return None
        return round(self.value * UNIT_BYTES[self.unit] / self.divide_by)

    @property
    def computable(self) -> bool:
        """True when the case has a configuration the engines can run."""
        return self.model_id is not None and (self.training is not None or self.inference is not None)

    @property
    def in_stats(self) -> bool:
        return self.status is CaseStatus.STATS


def to_bytes(value: float, unit: str) -> int:
    """`value` `unit` in bytes; SpecError for a unit other than GB, GiB, MiB."""
    try:
        return round(value * UNIT_BYTES[unit])
    except KeyError:
        raise SpecError("unit", f"{unit!r} is not a memory unit (allowed: {', '.join(UNIT_BYTES)})") from None


def _peft(data: dict[str, Any]) -> PeftSpec:
    values = dict(data)
    if "lora_targets" in values:
        values["lora_targets"] = tuple(values["lora_targets"])
    return PeftSpec(**values)


_JOB_ENUMS = {
    "method": Method,
    "precision": Precision,
    "optimizer": Optimizer,
    "optimizer_impl": OptimizerImpl,
    "recompute": Recompute,
    "attention": AttentionImpl,
}
_LAYOUT_ENUMS = {
    "zero": ZeroStage,
    "fsdp": FsdpStrategy,
    "offload_params": OffloadTarget,
    "offload_optimizer": OffloadTarget,
}


def _training_job(data: dict[str, Any]) -> TrainingJob:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "peft":
            values[key] = _peft(value)
        elif key in _JOB_ENUMS:
            values[key] = _JOB_ENUMS[key](value)
        else:
            values[key] = value
    return TrainingJob(**values)


def _layout(data: dict[str, Any]) -> Layout:
    return Layout(**{k: _LAYOUT_ENUMS[k](v) if k in _LAYOUT_ENUMS else v for k, v in data.items()})


def _case(data: dict[str, Any]) -> MeasuredCase:
    kind = data.get("kind")
    job = data.get("job")
    training = _training_job(job) if kind == "training" and job is not None else None
    inference = None
    if kind == "inference" and job is not None:
        inference = InferenceSetting(**{**job, "attention": AttentionImpl(job["attention"])})
    counter = data.get("counter")
    return MeasuredCase(
        row=data["row"],
        source=data["source"],
        status=CaseStatus(data["status"]),
        published=data["published"],
        trust=data["trust"],
        reason=data.get("reason", ""),
        flags=tuple(data.get("flags", ())),
        assumptions=tuple(data.get("assumptions", ())),
        model_id=data.get("model"),
        training=training,
        inference=inference,
        layout=_layout(data.get("layout", {})),
        gpu=data.get("gpu"),
        counter=Counter(counter) if counter else None,
        value=data.get("value"),
        unit=data.get("unit"),
        divide_by=data.get("divide_by", 1),
        scope=Scope(data.get("scope", "per_gpu")),
        expect_fits=data.get("expect_fits"),
    )


@cache
def load_cases() -> tuple[MeasuredCase, ...]:
    """Every curated case of `measured_cases.json`, in file order."""
    text = resources.files("llmplan.validate").joinpath("measured_cases.json").read_text(encoding="utf-8")
    return tuple(_case(c) for c in json.loads(text)["cases"])
