"""`llmplan serve --json`: one GPU's memory records and the roofline terms; under load, the simulation."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from llmplan.estimate.inference import InferenceEstimate, VllmBudget
from llmplan.schema.records import (
    BreakdownOut,
    Envelope,
    TermOut,
)
from llmplan.specs.inference import InferenceJob


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
