"""A discrete-event simulation of continuous batching, one engine iteration at a time.

Each iteration, as vLLM v1's `Scheduler.schedule` (vllm/v1/core/sched/scheduler.py) builds it:
1. the running requests, oldest first: a decoding request takes 1 token (k + 1 with speculative decoding), a
   request in the middle of its prompt takes its next chunk; each needs KV blocks for its new tokens — when
   none are free the newest running request is preempted (recompute: its blocks are freed and it returns to
   the front of the queue with prompt + generated tokens to prefill again);
2. then waiting requests in arrival order while the token budget (`max_num_batched_tokens`), the sequence
   limit (`max_num_seqs`) and the free blocks allow (head-of-line: the first that does not fit stops
   admission). Without chunked prefill a prompt must fit the remaining budget whole. With `RESERVE_MAX`
   (TensorRT-LLM's GUARANTEED_NO_EVICT) a request is admitted only when blocks for prompt + output are free.
The iteration's latency comes from `formulas.serving_step.step_time_s`; a prefill that completes emits the
request's first token at the end of its iteration, every decode one token (E on average with speculation).

Stretches where nothing changes but the contexts grow — only decodes, nobody admissible, no arrival — are
advanced in one jump: step j of such a stretch lasts a + b · (K0 + j · n · E) (`decode_coefficients`), summed
in closed form, so a run of 1,000 requests takes milliseconds. transformers `generate` (STATIC_BATCH) runs
whole batches: one prefill of the batch, then decode steps of the full (padded) batch until its longest
request ends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from llmplan.estimate.scheduler_continuous import Continuous, elapsed, sent_at
from llmplan.formulas.serving_step import StepModel, decode_coefficients, step_time_s
from llmplan.specs.engines import Admission
from llmplan.specs.serving import Workload


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    """0 = no limit."""
    chunked_prefill: bool
    block_size: int
    total_blocks: int
    admission: Admission
    mixed: bool = True
    """Prefill chunks and decodes share an iteration (vLLM, TensorRT-LLM); False: prefill-only iterations
    first (SGLang's default)."""
    tokens_per_step: float = 1.0
    """Tokens a decode step emits per sequence (E of speculative decoding; 1 without)."""
    verify_tokens: int = 1


@dataclass(frozen=True, slots=True)
class SimResult:
    """Per-request times (seconds from the first arrival) and the pooled inter-token gaps."""

    arrival_s: tuple[float, ...]
    first_token_s: tuple[float, ...]
    finish_s: tuple[float, ...]
    output_len: tuple[int, ...]
    input_len: tuple[int, ...]
    itl_segments: tuple[tuple[float, float, int, int], ...]
    """Inter-token gaps as runs (first gap s, increase per step s, steps, sequences that saw each gap): a run of
    decode-only steps lasts first + j · increase for j < steps."""
    iterations: int
    preemptions: int
    max_running: int

    @property
    def duration_s(self) -> float:
        return max(self.finish_s) - min(self.arrival_s)

    @property
    def total(self) -> float:
        return self.duration_s


def _lengths(workload: Workload, rng: random.Random) -> tuple[list[int], list[int]]:
    n = workload.num_requests
    ilo, ihi = workload.input_len.low, workload.input_len.high
    olo, ohi = workload.output_len.low, workload.output_len.high
    isl = [ilo if ilo == ihi else rng.randint(ilo, ihi) for _ in range(n)]
    osl = [olo if olo == ohi else rng.randint(olo, ohi) for _ in range(n)]
    return isl, osl


def _arrivals(workload: Workload, rng: random.Random) -> list[float]:
    n = workload.num_requests
    if workload.request_rate is None:
        return [0.0] * n
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(workload.request_rate)
    return out


def simulate(m: StepModel, cfg: SchedulerConfig, workload: Workload) -> SimResult:
    """Run `workload` through the engine (module docstring)."""
    rng = random.Random(workload.seed)
    isl, osl = _lengths(workload, rng)
    open_times = _arrivals(workload, rng)
    hit = workload.prefix_hit_rate
    prompts = [max(1, math.ceil(x * (1.0 - hit))) for x in isl]
    if cfg.admission is Admission.STATIC_BATCH:
        return _static(m, cfg, workload, isl, osl, open_times, prompts)
    run = Continuous(m, cfg, workload, isl, osl, open_times, prompts)
    arrival, first, finish, itl = run.run()
    return SimResult(
        tuple(arrival), tuple(first), tuple(finish), tuple(osl), tuple(isl), tuple(itl), run.iterations,
        run.preemptions, run.max_running,
    )  # fmt: skip


def _static(
    m: StepModel,
    cfg: SchedulerConfig,
    workload: Workload,
    isl: list[int],
    osl: list[int],
    open_times: list[float],
    prompts: list[int],
) -> SimResult:
    """transformers `generate` batches: each batch prefills together (padded to its longest prompt) and decodes
    the whole batch until its longest request ends; the next batch takes whoever has arrived (up to the
    concurrency)."""
    n = workload.num_requests
    cap = min(workload.concurrency or n, cfg.max_num_seqs or n)
    arrival, first, finish = [0.0] * n, [0.0] * n, [0.0] * n
    itl: list[tuple[float, float, int, int]] = []
    freed: list[float] = []
    t, i, iterations = 0.0, 0, 0
    while i < n:
        arrival[i] = sent_at(i, open_times, freed, cap)
        t = max(t, arrival[i])
        batch = [i]
        while len(batch) < cap and i + len(batch) < n:
            j = i + len(batch)
            arrival[j] = sent_at(j, open_times, freed, cap)
            if arrival[j] > t:
                break
            batch.append(j)
        b = len(batch)
        p = max(prompts[j] for j in batch)
        t += step_time_s(
            m, decode_seqs=0, decode_kv_tokens=0, prefill_tokens=b * p, prefill_pairs=b * p * (p + 1) / 2,
            head_rows=b,
        )  # fmt: skip
        start = t
        a, slope_per_token = decode_coefficients(m, b)
        first_dt = a + slope_per_token * b * max(isl[j] for j in batch)
        slope = slope_per_token * b
        done_steps = 0
        for o in sorted({osl[j] for j in batch}):
            active = sum(1 for j in batch if osl[j] >= o)
            if o - 1 > done_steps:
                itl.append((first_dt + slope * done_steps, slope, o - 1 - done_steps, active))
                done_steps = o - 1
        longest = max(osl[j] for j in batch)
        for j in batch:
            first[j] = start
            finish[j] = start + elapsed(first_dt, slope, osl[j] - 1)
        t = start + elapsed(first_dt, slope, longest - 1)
        freed.extend(sorted(finish[j] for j in batch))
        iterations += longest
        i += b
    return SimResult(
        tuple(arrival), tuple(first), tuple(finish), tuple(osl), tuple(isl), tuple(itl), iterations, 0, cap
    )
