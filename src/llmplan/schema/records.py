"""The building blocks of every output model: strict base model, the Term / Breakdown records, the envelope
(schema_version, command), and the conversion to strict JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmplan.breakdown import Breakdown, Term, Unit

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
