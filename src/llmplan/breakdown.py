"""One breakdown type for every estimate: each term a record of its value, its unit, the formula with its
numbers and the source it cites.

Memory (bytes), time (seconds), FLOPs and cost are all reported as `Term`s. `--explain`, the JSON output, the
accuracy pages and the web page are generated from these records, so the arithmetic a user reads is the
arithmetic that produced the number: nothing restates a formula as a separate string.

Vocabulary: a term's `name` is a dotted key that is stable across commands and releases (`weights`,
`optimizer_states`, `time.compute`, `comm.tp_all_reduce`); docs/json.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Unit(str, Enum):
    """What a term's value counts."""

    BYTES = "bytes"
    """Bytes (an integer value)."""
    SECONDS = "s"
    """Seconds of wall-clock time."""
    FLOPS = "flop"
    """Floating-point operations (a multiply-add is 2)."""
    USD = "usd"
    """US dollars."""
    KWH = "kwh"
    """Energy in kilowatt-hours."""
    GPU_HOURS = "gpu_h"
    """GPU-hours: GPUs × hours of wall-clock time."""
    BYTES_PER_S = "bytes/s"
    """A bandwidth."""
    RATIO = "ratio"
    """A dimensionless fraction (efficiency, utilisation, overlap)."""
    COUNT = "count"
    """A number of things (parameters, tokens, requests)."""


# Vocabulary of memory terms, shared by training, inference and trace (docs/json.md lists them).
WEIGHTS = "weights"
"""Parameters as the model holds them on the GPU (16-bit, fp32, quantized payload + scales)."""
MASTER_WEIGHTS = "master_weights"
"""fp32 master copies of the trainable weights (mixed precision)."""
GRADIENTS = "gradients"
OPTIMIZER_STATES = "optimizer_states"
ACTIVATIONS = "activations"
"""Tensors saved by the forward pass for backward."""
LOGITS = "logits"
"""Saved tensors of the head and the loss."""
TEMPORARIES = "temporaries"
"""Transients alive at the peak: optimizer scratch, backward transients, weight casts, the prefill peak."""
COMM_BUFFERS = "comm_buffers"
"""ZeRO-3 / FSDP gathered parameters and gradient reduce buckets."""
KV_CACHE = "kv_cache"
OVERHEADS = "overheads"
"""Memory outside the model's tensors; its parts are the four below (and CUDA graphs when serving)."""
CUBLAS_WORKSPACE = "cublas_workspace"
ALLOCATOR_GAP = "allocator_gap"
CUDA_CONTEXT = "cuda_context"
NCCL_BUFFERS = "nccl_buffers"
CUDA_GRAPHS = "cuda_graphs"
TENSOR_TERMS = (
    WEIGHTS,
    MASTER_WEIGHTS,
    GRADIENTS,
    OPTIMIZER_STATES,
    ACTIVATIONS,
    LOGITS,
    TEMPORARIES,
    COMM_BUFFERS,
    KV_CACHE,
)
"""The terms that are live tensors, in display order."""
TRACE_TERMS = tuple(name for name in TENSOR_TERMS if name != COMM_BUFFERS)
"""The categories a trace tags tensors with (llmplan.trace): a trace sees communication buffers as
temporaries."""


@dataclass(frozen=True, slots=True)
class Term:
    """One line of a breakdown: `value` in `unit`, how it was computed and from which source.

    `formula` states the arithmetic with the numbers filled in ("2 · 6.74e9 · 2 B"); `source` names the paper
    and equation, or the library file whose behaviour the term mirrors. `parts` refine the term (their values
    need not add up to it when the term is a maximum or an overlap; `formula` says how they combine).
    """

    name: str
    value: float
    unit: Unit
    formula: str = ""
    source: str = ""
    parts: tuple[Term, ...] = ()

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"term {self.name!r} has a non-finite value {self.value!r}")

    def find(self, name: str) -> Term | None:
        """This term or the first part (depth first) with this name."""
        if self.name == name:
            return self
        for part in self.parts:
            found = part.find(name)
            if found is not None:
                return found
        return None

    def to_json(self) -> dict[str, object]:
        """Strict-JSON record (finite numbers only; bytes as integers)."""
        value: float | int = int(self.value) if self.unit in (Unit.BYTES, Unit.COUNT) else self.value
        out: dict[str, object] = {"name": self.name, "value": value, "unit": self.unit.value}
        if self.formula:
            out["formula"] = self.formula
        if self.source:
            out["source"] = self.source
        if self.parts:
            out["parts"] = [p.to_json() for p in self.parts]
        return out


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Terms of one unit that add up to `total` (a memory peak, a step time)."""

    unit: Unit
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        for t in self.terms:
            if t.unit is not self.unit:
                raise ValueError(f"term {t.name!r} is in {t.unit.value}, the breakdown in {self.unit.value}")

    @property
    def total(self) -> float:
        return sum(t.value for t in self.terms)

    def get(self, name: str) -> Term:
        """The term with this name (searching parts too); KeyError naming the known terms otherwise."""
        for t in self.terms:
            found = t.find(name)
            if found is not None:
                return found
        raise KeyError(f"no term {name!r} (terms: {', '.join(t.name for t in self.terms)})")

    def value(self, name: str) -> float:
        """The value of the named term, 0 when the breakdown has no such term."""
        try:
            return self.get(name).value
        except KeyError:
            return 0.0

    def to_json(self) -> list[dict[str, object]]:
        return [t.to_json() for t in self.terms]


def trace_categories(terms: Breakdown) -> dict[str, int]:
    """An estimate's tensor terms in the trace's categories (TRACE_TERMS), the communication buffers (gathered
    parameters, reduce buckets: transient tensors in a trace) counted as temporaries."""
    out = {name: int(terms.value(name)) for name in TRACE_TERMS}
    out[TEMPORARIES] += int(terms.value(COMM_BUFFERS))
    return out
