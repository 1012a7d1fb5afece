"""The outputs of the listing and tool commands: params, models, gpus, clusters, formats, trace, measure,
validate; and the web API's document of `llmplan emit`."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from llmplan.catalog.summary import ModelSummary
from llmplan.schema.records import (
    Envelope,
    Number,
    Out,
)
from llmplan.specs.hardware import Accelerator


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


class EmitOut(Envelope):
    """The web API's `/api/emit`: the file `llmplan emit TARGET ... --out FILE` writes (`text`, byte for byte),
    the launch command it prints on stderr, and the plan's figures it prints beside them."""

    command: Literal["emit"] = "emit"
    target: str
    filename: str
    text: str
    launch: str
    model: str
    accelerator: str
    gpus: int
    device_bytes: int
    capacity_bytes: int
    fits: bool
    trainable_params: int
