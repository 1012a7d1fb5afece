"""Continuous batching (vLLM, SGLang, TensorRT-LLM) for `estimate.scheduler.simulate`.

The decoding requests are kept as one group rather than one by one: a decode step adds E tokens to every one
of them, so the group needs only its size n, the sum of its members' context offsets S (cached tokens of
member r = c0_r + G, G the tokens each member has decoded since the start) and a heap of the G at which each
member finishes. A step therefore costs O(prefill chunks + finishing requests), not O(running requests).

KV blocks: requests being prefilled hold ceil(ctx / block_size) blocks each, exactly; the decoding group holds
(S + n·G) / block_size + n·(block_size − 1) / (2·block_size) blocks (its tokens plus the expected half-empty
last block of each member), rounded up — exact for block_size 1 (SGLang), within one block per request
otherwise. `RESERVE_MAX` engines hold, per request, the blocks of prompt + output from admission to the end.

Scheduling of one iteration as `estimate.scheduler` describes; engines that do not mix prefill and decode in
one batch (SGLang without --enable-mixed-chunk) run a prefill-only iteration whenever a prefill can be
scheduled (prefill priority, python/sglang/srt/managers/scheduler.py `get_next_batch_to_run`) and the
decoding requests wait, which lengthens their next inter-token gap.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from llmplan.formulas.serving_step import decode_coefficients, step_time_s
from llmplan.specs.engines import Admission
from llmplan.specs.serving import Workload

WAITING, PREFILLING, DECODING, DONE = 0, 1, 2, 3


def elapsed(first_dt: float, slope: float, steps: int) -> float:
    """Sum of `steps` gaps first_dt + j · slope, j = 0 .. steps − 1."""
    return steps * first_dt + slope * steps * (steps - 1) / 2


def steps_to_reach(first_dt: float, slope: float, room: float) -> int:
    """Smallest s >= 1 with elapsed(s) >= room."""
    if room <= first_dt:
        return 1
    if slope <= 0:
        s = math.ceil(room / first_dt)
    else:
        half = slope / 2
        lin = first_dt - half
        s = math.ceil((-lin + math.sqrt(lin * lin + 4 * half * room)) / (2 * half))
    while s > 1 and elapsed(first_dt, slope, s - 1) >= room:
        s -= 1
    while elapsed(first_dt, slope, s) < room:
        s += 1
    return s


def sent_at(i: int, open_times: list[float], freed: list[float], cap: int) -> float:
    """When the client sends request i: its scheduled time, or later when a slot frees (`vllm bench serve`
    takes one of --max-concurrency slots before it starts the request's clock)."""
    if i < cap:
        return open_times[i]
    return max(open_times[i], freed[i - cap])


def _live(entry: tuple[float, int, int, Req]) -> bool:
    return entry[3].state == DECODING and entry[3].ver == entry[2]


class Req:
    __slots__ = ("i", "prompt", "osl", "done", "gen", "ctx", "blocks", "first", "state", "g0", "c0", "ver")

    def __init__(self, i: int, prompt: int, osl: int, cached: int) -> None:
        self.i, self.prompt, self.osl = i, prompt, osl
        self.done = 0
        """Prompt tokens computed so far (of `prompt`)."""
        self.gen = 0.0
        self.ctx = float(cached)
        """Tokens in the KV cache (a prefix-cache hit starts with the cached part)."""
        self.blocks = 0
        self.first = False
        self.state = WAITING
        self.g0 = 0.0
        self.c0 = 0.0
        self.ver = 0
        """Bumped each time the request joins the decoding group (stale heap entries are skipped)."""


class Continuous:
    """One run of the continuous-batching scheduler (module docstring)."""

    def __init__(self, m, cfg, workload: Workload, isl, osl, open_times, prompts) -> None:  # noqa: ANN001
        self.m, self.cfg, self.w = m, cfg, workload
        self.isl, self.osl, self.prompts = isl, osl, prompts
        n = workload.num_requests
        self.arrival, self.first, self.finish = [0.0] * n, [0.0] * n, [0.0] * n
        self.open_times = open_times
        self.cap = workload.concurrency if workload.concurrency is not None else n
        self.next_i = 0
        self.in_flight = 0
        self.freed: list[float] = []
        self.waiting: deque[Req] = deque()
        self.prefilling: list[Req] = []
        self.order: list[Req] = []
        """Admitted requests in admission order (victims of preemption are taken from the end)."""
        self.nd, self.sum_c0, self.g = 0, 0.0, 0.0
        self.heap: list[tuple[float, int, int, Req]] = []
        self.prefill_blocks = 0
        self.reserved = 0
        self.t = 0.0
        self.stall = 0.0
        self.itl: list[tuple[float, float, int, int]] = []
        self.iterations = self.preemptions = self.max_running = 0
        self.done = 0
        self.budget = cfg.max_num_batched_tokens or 1 << 62
        self.on_demand = cfg.admission is Admission.ON_DEMAND
        self.bs = cfg.block_size
        self.e, self.v = cfg.tokens_per_step, cfg.verify_tokens

    # --- blocks ---------------------------------------------------------------------------------------------
    def _decode_blocks(self, g: float) -> int:
        if self.nd == 0:
            return 0
        tokens = self.sum_c0 + self.nd * g
        return math.ceil(tokens / self.bs + self.nd * (self.bs - 1) / (2 * self.bs) - 1e-9)

    def _free(self) -> int:
        if not self.on_demand:
            return self.cfg.total_blocks - self.reserved
        return self.cfg.total_blocks - self.prefill_blocks - self._decode_blocks(self.g)

    # --- arrivals, finishes, preemption -------------------------------------------------------------------
    def _release(self) -> None:
        n = self.w.num_requests
        while (
            self.next_i < n and self.in_flight < self.cap and self.open_times[self.next_i] <= self.t + 1e-12
        ):
            i = self.next_i
            self.arrival[i] = sent_at(i, self.open_times, self.freed, self.cap)
            self.waiting.append(Req(i, self.prompts[i], self.osl[i], self.isl[i] - self.prompts[i]))
            self.next_i += 1
            self.in_flight += 1

    def _next_arrival(self) -> float:
        if self.next_i < self.w.num_requests and self.in_flight < self.cap:
            return self.open_times[self.next_i]
        return math.inf

    def _end(self, r: Req) -> None:
        r.state = DONE
        self.finish[r.i] = self.t
        self.freed.append(self.t)
        self.in_flight -= 1
        self.done += 1
        if not self.on_demand:
            self.reserved -= r.blocks

    def _join_decode(self, r: Req) -> None:
        if r.gen >= r.osl - 1e-9:
            if self.on_demand:
                self.prefill_blocks -= r.blocks
            self._end(r)
            return
        r.state = DECODING
        if self.on_demand:
            self.prefill_blocks -= r.blocks
        r.g0 = self.g - r.gen
        r.c0 = r.ctx - self.g
        self.nd += 1
        self.sum_c0 += r.c0
        r.ver += 1
        heapq.heappush(self.heap, (r.g0 + r.osl, r.i, r.ver, r))

    def _pop_finished(self) -> None:
        heap = self.heap
        while heap and (not _live(heap[0]) or heap[0][0] <= self.g + 1e-9):
            entry = heapq.heappop(heap)
            r = entry[3]
            if not _live(entry):
                continue
            self.nd -= 1
            self.sum_c0 -= r.c0
            self._end(r)

    def _preempt(self) -> bool:
        """Preempt the newest running request (recompute); False when none is left."""
        while self.order and self.order[-1].state not in (PREFILLING, DECODING):
            self.order.pop()
        if not self.order:
            return False
        r = self.order.pop()
        if r.state == DECODING:
            r.gen = self.g - r.g0
            self.nd -= 1
            self.sum_c0 -= r.c0
        else:
            self.prefill_blocks -= r.blocks
            self.prefilling.remove(r)
        r.blocks = 0
        r.state = WAITING
        r.prompt = self.prompts[r.i] + math.ceil(r.gen)
        r.done = 0
        r.ctx = float(self.isl[r.i] - self.prompts[r.i])
        self.waiting.appendleft(r)
        self.preemptions += 1
        return True

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> tuple[list[float], list[float], list[float], list[tuple[float, float, int, int]]]:
        n = self.w.num_requests
        while self.done < n:
            self._release()
            if not self.prefilling and not self.waiting and self.nd == 0:
                nxt = self._next_arrival()
                if math.isinf(nxt):
                    raise RuntimeError("scheduler stalled with requests left")  # never: all were released
                self.t = max(self.t, nxt)
                continue
            if self.nd and not self.prefilling and not self._admissible():
                self._jump()
            else:
                self._step()
            self.max_running = max(self.max_running, self.nd + len(self.prefilling))
        return self.arrival, self.first, self.finish, self.itl

    def _room(self) -> int:
        return self.budget - (self.nd * self.v if self.cfg.mixed else 0)

    def _admissible(self) -> bool:
        if not self.waiting or self.nd + len(self.prefilling) >= self.cfg.max_num_seqs:
            return False
        room = self._room()
        head = self.waiting[0]
        if room <= 0 or (not self.cfg.chunked_prefill and head.prompt - head.done > room):
            return False
        if not self.on_demand:
            return math.ceil((self.isl[head.i] + head.osl) / self.bs) <= self._free()
        need = math.ceil((head.ctx + min(head.prompt - head.done, room)) / self.bs) - head.blocks
        return need <= self._free()

    def _record(self, dt: float, slope: float, steps: int) -> None:
        if self.stall:
            self.itl.append((dt + self.stall, 0.0, 1, self.nd))
            dt += slope
            steps -= 1
            self.stall = 0.0
        if steps:
            self.itl.append((dt, slope, steps, self.nd))

    def _jump(self) -> None:
        self._pop_finished()
        if self.nd == 0:
            return
        k = max(1, math.ceil((self.heap[0][0] - self.g) / self.e - 1e-9))
        if self.on_demand:
            free_tokens = (self.cfg.total_blocks - self.prefill_blocks) * self.bs
            free_tokens -= self.nd * (self.bs - 1) / 2 + self.sum_c0 + self.nd * self.g
            k = min(k, math.floor(free_tokens / (self.nd * self.e)))
            if k < 1:
                self._step()
                return
        a, b = decode_coefficients(self.m, self.nd, self.v)
        first_dt = a + b * (self.sum_c0 + self.nd * self.g)
        slope = b * self.nd * self.e
        room = self._next_arrival() - self.t
        if room < elapsed(first_dt, slope, k):
            k = min(k, steps_to_reach(first_dt, slope, room))
        self.t += elapsed(first_dt, slope, k) + self.stall
        self._record(first_dt, slope, k)
        self.iterations += k
        self.g += k * self.e
        self._pop_finished()

    def _chunk(self, r: Req, room: int) -> int:
        left = r.prompt - r.done
        if left <= room:
            chunk = left
        elif self.cfg.chunked_prefill:
            chunk = room
        else:
            return 0
        if self.on_demand:
            free = self._free()
            if math.ceil((r.ctx + chunk) / self.bs) - r.blocks > free:
                if not self.cfg.chunked_prefill:
                    return 0
                chunk = max(0, min(chunk, (free + r.blocks) * self.bs - math.ceil(r.ctx)))
        return chunk

    def _take(self, r: Req, chunk: int, chunks: list[tuple[Req, int]]) -> None:
        chunks.append((r, chunk))
        if self.on_demand:
            need = math.ceil((r.ctx + chunk) / self.bs) - r.blocks
            r.blocks += need
            self.prefill_blocks += need

    def _step(self) -> None:
        cfg = self.cfg
        prefill_pending = bool(self.prefilling) or self._admissible()
        decode = self.nd > 0 and (cfg.mixed or not prefill_pending)
        room = self.budget
        if decode:
            if self.on_demand:
                while (
                    self.nd
                    and self._decode_blocks(self.g + self.v) - self._decode_blocks(self.g) > self._free()
                ):
                    if not self._preempt():
                        break
            room -= self.nd * self.v
            decode = self.nd > 0
        chunks: list[tuple[Req, int]] = []
        if not decode or cfg.mixed:
            for r in list(self.prefilling):
                if room <= 0:
                    break
                c = self._chunk(r, room)
                if c:
                    self._take(r, c, chunks)
                    room -= c
            while self.waiting and room > 0 and self.nd + len(self.prefilling) < cfg.max_num_seqs:
                r = self.waiting[0]
                if not self.on_demand:
                    need = math.ceil((self.isl[r.i] + r.osl) / self.bs)
                    if need > self._free():
                        break
                c = self._chunk(r, room)
                if not c:
                    break
                self.waiting.popleft()
                if not self.on_demand:
                    r.blocks = need
                    self.reserved += need
                r.state = PREFILLING
                self.prefilling.append(r)
                self.order.append(r)
                self._take(r, c, chunks)
                room -= c
        if not decode and not chunks:
            nxt = self._next_arrival()
            if math.isinf(nxt):
                raise RuntimeError("scheduler stalled: no request can be scheduled")  # guarded by ServingPlan
            self.t = max(self.t, nxt)
            return
        nd = self.nd if decode else 0
        kv = self.sum_c0 + self.nd * self.g if decode else 0.0
        prefill = sum(c for _, c in chunks)
        pairs = 0.0
        finishing = 0
        for r, c in chunks:
            lo, hi = r.ctx, r.ctx + c
            pairs += (hi * (hi + 1) - lo * (lo + 1)) / 2
            finishing += r.done + c >= r.prompt
        dt = step_time_s(
            self.m, decode_seqs=nd, decode_kv_tokens=kv, prefill_tokens=prefill, prefill_pairs=pairs,
            head_rows=nd * self.v + finishing, verify_tokens=self.v,
        )  # fmt: skip
        self.t += dt
        self.iterations += 1
        if decode:
            self._record(dt, 0.0, 1)
            self.g += self.e
        elif self.nd:
            self.stall += dt
        for r, c in chunks:
            r.done += c
            r.ctx += c
            if r.done >= r.prompt:
                self.prefilling.remove(r)
                if not r.first:
                    r.first = True
                    self.first[r.i] = self.t
                r.gen += 1
                self._join_decode(r)
        if decode:
            self._pop_finished()
