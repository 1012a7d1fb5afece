"""The error to expect from a memory estimate, measured: the p90 of |error| over the published measurements of
the same class of job (issue 15 item 7).

The validation benchmark (benchmarks/validate_all.py) compares the analytic engine with every fully specified
published row (`llmplan.validate.measured`, docs/accuracy.md) and writes the p90 of |error| per class and
counter to `llmplan/catalog/error_bands.json` (`llmplan.validate.bands`); tests/test_error_bands.py checks that the file is
what `benchmarks/results/validation.json` gives. An estimate reads its band here (`band_for`): the class and
counter when at least MIN_ROWS rows measured them, else the class over every counter, else all rows.

Classes (`job_class`): inference; offload (ZeRO-Offload / parameter offload / activation offload); QLoRA; LoRA
and the other PEFT methods; full training (and freezing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources

from llmplan.breakdown import Term, Unit
from llmplan.specs.training import Layout, Method, OffloadTarget, TrainingJob

MIN_ROWS = 5
"""Fewest measured rows for a band of its own (fewer: the wider group's band)."""
BANDS_FILE = "error_bands.json"
SOURCE = "p90 of |error| over published measurements (benchmarks/validate_all.py, docs/accuracy.md)"
ALL = "all"


class JobClass(str, Enum):
    """What kind of job an estimate is, for its error band."""

    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"
    OFFLOAD = "offload"
    INFERENCE = "inference"


def job_class(job: TrainingJob | None, layout: Layout | None = None) -> JobClass:
    """The class of a training job on `layout` (None: inference)."""
    if job is None:
        return JobClass.INFERENCE
    lay = layout or Layout()
    if job.activation_offload or (lay.offload_optimizer, lay.offload_params) != (OffloadTarget.NONE,) * 2:
        return JobClass.OFFLOAD
    if job.method is Method.QLORA:
        return JobClass.QLORA
    return JobClass.FULL if job.method in (Method.FULL, Method.FREEZE) else JobClass.LORA


@dataclass(frozen=True, slots=True)
class ErrorBand:
    """The expected error of one estimate: p90 of |error| of `n` measured jobs in `group`."""

    p90_pct: float
    n: int
    group: str
    """"lora / reserved" (class and counter), "lora" (class, any counter) or "all"."""

    def bytes_of(self, estimate_bytes: int) -> int:
        """The band in bytes around `estimate_bytes`."""
        return round(estimate_bytes * self.p90_pct / 100.0)

    def describe(self, estimate_bytes: int) -> str:
        gib = estimate_bytes / 2**30
        return f"{gib:.1f} GiB, expect ±{self.p90_pct:.0f} % (p90 of {self.n} measured jobs like this: {self.group})"


def group_name(cls: str, counter: str | None) -> str:
    """The key of a band: "lora / reserved", or the class alone."""
    return cls if counter is None else f"{cls} / {counter}"


@cache
def _bands() -> dict[str, dict[str, float]]:
    text = resources.files("llmplan.catalog").joinpath(BANDS_FILE).read_text("utf-8")
    return json.loads(text)["bands"]


def band_for(cls: JobClass, counter: str) -> ErrorBand | None:
    """The band of a job of class `cls` estimating `counter` (module docstring for the fallbacks)."""
    bands = _bands()
    for group in (group_name(cls.value, counter), cls.value, ALL):
        found = bands.get(group)
        if found is not None and (found["n"] >= MIN_ROWS or group == ALL):
            return ErrorBand(float(found["p90_pct"]), int(found["n"]), group)
    return None


def band_term(band: ErrorBand, estimate_bytes: int, counter: str) -> Term:
    """The band as a record for --explain and the JSON: bytes = estimate × p90."""
    return Term(
        "error_band",
        band.bytes_of(estimate_bytes),
        Unit.BYTES,
        f"{counter} {estimate_bytes:,} B × {band.p90_pct:g} % (p90 of |error| of {band.n} measured jobs: "
        f"{band.group})",
        SOURCE,
    )


def device_band(job: TrainingJob | None, layout: Layout | None, device_bytes: int) -> tuple[ErrorBand, Term] | None:
    """The band of an estimate of the `device` counter (what the verdict compares with the GPU) and its record."""
    band = band_for(job_class(job, layout), "device")
    return None if band is None else (band, band_term(band, device_bytes, "device"))
