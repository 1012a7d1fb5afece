"""The largest concurrency (or request rate) whose latencies meet the SLOs, and the replicas a target rate needs.

An SLO is met when the chosen statistic (p90 by default; `mean`, `p50`, `p90`, `p99`) of TTFT and of TPOT is at
or below its limit. Latency grows with the load, so the search doubles the concurrency from 1 until the SLO
fails (or the engine's max_num_seqs / the pool's admission limit is reached), then bisects between the last
pass and the first failure; for a rate the same on a geometric grid, to 2 % of the rate. Replicas for a
target rate R = ⌈R / requests/s at the best load⌉, each replica tp · pp GPUs (data parallel, no sharing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmplan.errors import SpecError
from llmplan.estimate.serving import ServingEstimate, ServingPlan
from llmplan.specs.serving import Workload

STATS = ("mean", "p50", "p90", "p99")


@dataclass(frozen=True, kw_only=True, slots=True)
class Slo:
    ttft_s: float | None = None
    tpot_s: float | None = None
    stat: str = "p90"

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise SpecError("slo_stat", f"{self.stat!r} (allowed: {', '.join(STATS)})")
        for name, value in (("slo_ttft_ms", self.ttft_s), ("slo_tpot_ms", self.tpot_s)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise SpecError(name, f"{value!r} is out of range (allowed: a finite number > 0)")
        if self.ttft_s is None and self.tpot_s is None:
            raise SpecError("slo_ttft_ms", "give --slo-ttft-ms, --slo-tpot-ms or both")

    def met(self, est: ServingEstimate) -> bool:
        ok = self.ttft_s is None or est.ttft_s.get(self.stat) <= self.ttft_s
        return ok and (self.tpot_s is None or est.tpot_s.get(self.stat) <= self.tpot_s)


@dataclass(frozen=True, slots=True)
class SloResult:
    """The best load meeting the SLO (None when even the lightest fails) and the replicas for a target rate."""

    by: str
    """'concurrency' or 'request_rate'."""
    best_load: float | None
    estimate: ServingEstimate | None
    evaluations: int
    target_rate: float | None
    replicas: int | None
    gpus: int | None

    @property
    def total(self) -> float:
        return self.best_load or 0.0


def _limit(plan: ServingPlan, workload: Workload) -> int:
    cap = min(plan.sched.max_num_seqs, 4096)
    if plan.hf_max_batch and plan.sched.total_blocks == 0:
        cap = min(cap, plan.hf_max_batch)
    return max(1, min(cap, workload.num_requests))


def search(plan: ServingPlan, workload: Workload, slo: Slo, target_rate: float | None = None) -> SloResult:
    """Largest load meeting `slo` (module docstring); by rate when the workload has one, else by concurrency."""
    if target_rate is not None and not (math.isfinite(target_rate) and target_rate > 0):
        raise SpecError("target_rate", f"{target_rate!r} is out of range (allowed: a finite number > 0)")
    evals = 0
    cache: dict[float, ServingEstimate] = {}

    def at(load: float) -> ServingEstimate:
        nonlocal evals
        if load not in cache:
            if by == "concurrency":
                w = replace(workload, concurrency=int(load))
            else:
                w = replace(workload, request_rate=load)
            cache[load] = plan.run(w)
            evals += 1
        return cache[load]

    by = "request_rate" if workload.request_rate is not None else "concurrency"
    if by == "concurrency":
        hi_cap = _limit(plan, workload)
        good, bad = 0, None
        c = 1
        while True:
            if not slo.met(at(c)):
                bad = c
                break
            good = c
            if c >= hi_cap:
                break
            c = min(2 * c, hi_cap)
        if good and bad is not None:
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if slo.met(at(mid)) else (good, mid)
        best = float(good) if good else None
    else:
        assert workload.request_rate is not None
        lo_rate = workload.request_rate / 64
        good_r: float | None = None
        bad_r: float | None = None
        r = lo_rate
        for _ in range(24):
            if slo.met(at(r)):
                good_r = r
                r *= 2
            else:
                bad_r = r
                break
        if good_r is not None and bad_r is not None:
            while bad_r / good_r > 1.02:
                mid = math.sqrt(good_r * bad_r)
                good_r, bad_r = (mid, bad_r) if slo.met(at(mid)) else (good_r, mid)
        best = good_r
    est = at(best) if best is not None else None
    replicas = gpus = None
    if target_rate is not None and est is not None:
        replicas = math.ceil(target_rate / est.throughput.requests_per_s)
        gpus = replicas * plan.gpus
    return SloResult(by, best, est, evals, target_rate, replicas, gpus)
