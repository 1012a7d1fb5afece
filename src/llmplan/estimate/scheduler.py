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


def _elapsed(first_dt: float, slope: float, steps: int) -> float:
    """Sum of `steps` gaps first_dt + j · slope, j = 0 .. steps − 1."""
    return steps * first_dt + slope * steps * (steps - 1) / 2


def _steps_to_reach(first_dt: float, slope: float, room: float) -> int:
    """Smallest s with _elapsed(s) >= room (room > 0)."""
    if slope <= 0:
        return math.ceil(room / first_dt)
    # slope/2 · s² + (first_dt − slope/2) · s − room = 0
    half = slope / 2
    lin = first_dt - half
    s = math.ceil((-lin + math.sqrt(lin * lin + 4 * half * room)) / (2 * half) - 1e-12)
    while s > 1 and _elapsed(first_dt, slope, s - 1) >= room:
        s -= 1
    while _elapsed(first_dt, slope, s) < room:
        s += 1
    return s


class _Req:
    __slots__ = ("i", "prompt", "osl", "done", "gen", "ctx", "blocks", "first", "alive")

    def __init__(self, i: int, prompt: int, osl: int) -> None:
        self.i, self.prompt, self.osl = i, prompt, osl
        self.done = 0
        """Prompt tokens computed so far (of `prompt`)."""
        self.gen = 0.0
        self.ctx = 0.0
        """Tokens in the KV cache."""
        self.blocks = 0
        self.first = False
        self.alive = False
        """In the running list."""


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
    return _Continuous(m, cfg, workload, isl, osl, open_times, prompts).run()


class _Continuous:
    def __init__(
        self,
        m: StepModel,
        cfg: SchedulerConfig,
        workload: Workload,
        isl: list[int],
        osl: list[int],
        open_times: list[float],
        prompts: list[int],
    ) -> None:
        self.m, self.cfg, self.w = m, cfg, workload
        self.isl, self.osl, self.prompts = isl, osl, prompts
        n = workload.num_requests
        self.arrival = [0.0] * n
        self.first = [0.0] * n
        self.finish = [0.0] * n
        self.open_times = open_times
        self.cap = workload.concurrency if workload.concurrency is not None else n
        self.next_i = 0
        self.in_flight = 0
        self.waiting: list[_Req] = []
        self.running: list[_Req] = []
        self.free = cfg.total_blocks
        self.t = 0.0
        self.itl: list[tuple[float, float, int, int]] = []
        self.freed: list[float] = []
        """Finish times in order: request i takes the slot freed by the (i − concurrency)-th finish."""
        self.iterations = 0
        self.preemptions = 0
        self.max_running = 0
        self.budget = cfg.max_num_batched_tokens or 1 << 62

    def _release(self) -> None:
        """Send requests whose time has come while fewer than `concurrency` are in flight."""
        n = self.w.num_requests
        while (
            self.next_i < n and self.in_flight < self.cap and self.open_times[self.next_i] <= self.t + 1e-12
        ):
            i = self.next_i
            self.arrival[i] = _sent_at(i, self.open_times, self.freed, self.cap)
            self.waiting.append(_Req(i, self.prompts[i], self.osl[i]))
            self.next_i += 1
            self.in_flight += 1

    def _next_arrival(self) -> float:
        if self.next_i < self.w.num_requests and self.in_flight < self.cap:
            return self.open_times[self.next_i]
        return math.inf

    def _blocks_for(self, tokens: float) -> int:
        return math.ceil(tokens / self.cfg.block_size)

    def _preempt(self, victim: _Req) -> None:
        self.running.pop()
        victim.alive = False
        self.free += victim.blocks
        victim.blocks = 0
        victim.prompt = self.prompts[victim.i] + math.ceil(victim.gen)
        victim.done = 0
        victim.ctx = 0.0
        self.waiting.insert(0, victim)
        self.preemptions += 1

    def run(self) -> SimResult:
        n = self.w.num_requests
        finished = 0
        while finished < n:
            self._release()
            if not self.running and not self.waiting:
                self.t = max(self.t, self._next_arrival())
                continue
            self.finished_any = False
            if self._can_jump():
                finished += self._jump()
            else:
                finished += self._step()
            if self.finished_any:
                self.running = [r for r in self.running if r.alive]
        return SimResult(
            tuple(self.arrival), tuple(self.first), tuple(self.finish), tuple(self.osl), tuple(self.isl),
            tuple(self.itl), self.iterations, self.preemptions, self.max_running,
        )  # fmt: skip

    def _admissible(self) -> bool:
        if not self.waiting or len(self.running) >= self.cfg.max_num_seqs:
            return False
        head = self.waiting[0]
        if self.cfg.admission is Admission.RESERVE_MAX:
            need = self._blocks_for(head.prompt + head.osl)
        else:
            need = self._blocks_for(min(head.prompt, self.budget))
        return need <= self.free

    def _can_jump(self) -> bool:
        return (
            bool(self.running)
            and all(r.first and r.done >= r.prompt for r in self.running)
            and not self._admissible()
        )

    def _jump(self) -> int:
        cfg, run = self.cfg, self.running
        e, v = cfg.tokens_per_step, cfg.verify_tokens
        d = len(run)
        k = min(math.ceil((r.osl - r.gen) / e - 1e-9) for r in run)
        if cfg.admission is Admission.ON_DEMAND:
            grow = math.ceil(k * e / cfg.block_size) + 1
            if d * grow > self.free:
                k = max(0, (self.free // d - 1) * cfg.block_size // max(1, math.ceil(e)))
                if k == 0:
                    return self._step()
        a, b = decode_coefficients(self.m, d, v)
        k0 = sum(r.ctx for r in run)
        slope = b * d * e
        first_dt = a + b * k0
        steps = k
        room = self._next_arrival() - self.t
        if room < _elapsed(first_dt, slope, k):
            # stop at the step that ends at or after the next arrival: smallest s with elapsed(s) >= room
            steps = max(1, min(k, _steps_to_reach(first_dt, slope, room)))
        self.t += _elapsed(first_dt, slope, steps)
        self._record_itl(first_dt, slope, steps, d)
        self.iterations += steps
        return self._advance_decodes(run, steps * e)

    def _record_itl(self, first_dt: float, slope: float, steps: int, weight: int) -> None:
        self.itl.append((first_dt, slope, steps, weight))

    def _advance_decodes(self, decoders: list[_Req], tokens: float) -> int:
        done = 0
        for r in list(decoders):
            r.gen += tokens
            r.ctx += tokens
            if self.cfg.admission is Admission.ON_DEMAND:
                need = self._blocks_for(r.ctx) - r.blocks
                if need > 0:
                    self.free -= need
                    r.blocks += need
            if r.gen >= r.osl - 1e-9:
                done += self._finish(r)
        return done

    def _finish(self, r: _Req) -> int:
        self.finish[r.i] = self.t
        self.freed.append(self.t)
        r.alive = False
        self.finished_any = True
        self.free += r.blocks
        self.in_flight -= 1
        return 1

    def _step(self) -> int:
        cfg = self.cfg
        budget = self.budget
        decoders: list[_Req] = []
        chunks: list[tuple[_Req, int]] = []
        kv = 0.0
        for r in list(self.running):
            if not r.alive:
                continue
            if r.first and r.done >= r.prompt:
                need_tokens = cfg.verify_tokens
                if cfg.admission is Admission.ON_DEMAND:
                    while self._blocks_for(r.ctx + need_tokens) - r.blocks > self.free:
                        victim = self.running[-1]
                        self._preempt(victim)
                        if victim is r:
                            break
                    if not r.alive:
                        continue
                    need = self._blocks_for(r.ctx + need_tokens) - r.blocks
                    self.free -= max(0, need)
                    r.blocks += max(0, need)
                decoders.append(r)
                kv += r.ctx
                budget -= need_tokens
            elif budget > 0:
                chunk = self._chunk(r, budget)
                if chunk:
                    chunks.append((r, chunk))
                    budget -= chunk
        while self.waiting and budget > 0 and len(self.running) < cfg.max_num_seqs:
            r = self.waiting[0]
            if cfg.admission is Admission.RESERVE_MAX:
                need = self._blocks_for(r.prompt + r.osl)
                if need > self.free:
                    break
                self.free -= need
                r.blocks = need
            chunk = self._chunk(r, budget)
            if not chunk:
                if cfg.admission is Admission.RESERVE_MAX:
                    self.free += r.blocks
                    r.blocks = 0
                break
            self.waiting.pop(0)
            self.running.append(r)
            r.alive = True
            chunks.append((r, chunk))
            budget -= chunk
        self.max_running = max(self.max_running, len(self.running))
        prefill = sum(c for _, c in chunks)
        pairs = sum(((r.done + c) * (r.done + c + 1) - r.done * (r.done + 1)) / 2 for r, c in chunks)
        finishing = sum(1 for r, c in chunks if r.done + c >= r.prompt)
        if not decoders and not chunks:
            # nothing fits: wait for the next arrival (or nothing can ever run)
            nxt = self._next_arrival()
            if math.isinf(nxt):
                raise RuntimeError("scheduler stalled: no request can be scheduled")  # guarded by the caller
            self.t = nxt
            return 0
        dt = step_time_s(
            self.m, decode_seqs=len(decoders), decode_kv_tokens=kv, prefill_tokens=prefill, prefill_pairs=pairs,
            head_rows=len(decoders) * cfg.verify_tokens + finishing, verify_tokens=cfg.verify_tokens,
        )  # fmt: skip
        self.t += dt
        self.iterations += 1
        if decoders:
            self._record_itl(dt, 0.0, 1, len(decoders))
        done = 0
        for r, c in chunks:
            r.done += c
            r.ctx += c
            if cfg.admission is Admission.ON_DEMAND:
                need = self._blocks_for(r.ctx) - r.blocks
                self.free -= need
                r.blocks += need
            if r.done >= r.prompt:
                if not r.first:
                    r.first = True
                    self.first[r.i] = self.t
                r.gen += 1
                if r.gen >= r.osl:
                    done += self._finish(r)
        return done + self._advance_decodes(decoders, cfg.tokens_per_step)

    def _chunk(self, r: _Req, budget: int) -> int:
        left = r.prompt - r.done
        if left <= budget:
            chunk = left
        elif self.cfg.chunked_prefill:
            chunk = budget
        else:
            return 0
        if self.cfg.admission is Admission.ON_DEMAND:
            need = self._blocks_for(r.ctx + chunk) - r.blocks
            if need > self.free:
                if not self.cfg.chunked_prefill:
                    return 0
                room = (self.free + r.blocks) * self.cfg.block_size - math.ceil(r.ctx)
                chunk = max(0, min(chunk, room))
        return chunk


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
        arrival[i] = _sent_at(i, open_times, freed, cap)
        t = max(t, arrival[i])
        batch = [i]
        while len(batch) < cap and i + len(batch) < n:
            j = i + len(batch)
            arrival[j] = _sent_at(j, open_times, freed, cap)
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
            finish[j] = start + _elapsed(first_dt, slope, osl[j] - 1)
        t = start + _elapsed(first_dt, slope, longest - 1)
        freed.extend(sorted(finish[j] for j in batch))
        iterations += longest
        i += b
    return SimResult(
        tuple(arrival), tuple(first), tuple(finish), tuple(osl), tuple(isl), tuple(itl), iterations, 0, cap
    )


def _sent_at(i: int, open_times: list[float], freed: list[float], cap: int) -> float:
    """When the client sends request i: its scheduled time, or later when a slot frees (`vllm bench serve`
    takes a semaphore of --max-concurrency slots before it starts the request's clock)."""
    if i < cap:
        return open_times[i]
    return max(open_times[i], freed[i - cap])
