"""`llmplan serve ... --input-len N --output-len M --concurrency C | --request-rate R`: serving under load.

Formatting only: the numbers come from `llmplan.estimate.serving` (simulation) and `serving_slo` (SLO search).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from llmplan.cli._common import console, gib
from llmplan.errors import SpecError
from llmplan.estimate.serving import ServingEstimate, ServingPlan
from llmplan.estimate.serving_slo import Slo, SloResult, search
from llmplan.formulas.serving_step import SpecDecode
from llmplan.schema import ServeLoadOut, dump, plain
from llmplan.specs.engines import EngineDefaults
from llmplan.specs.serving import LengthDist, Workload

InputLenOption = Annotated[
    str | None,
    typer.Option("--input-len", help="Prompt tokens: N, or LOW-HIGH (uniform). Turns on the simulation."),
]
OutputLenOption = Annotated[
    str | None, typer.Option("--output-len", help="Output tokens: N, or LOW-HIGH (uniform).")
]
RateOption = Annotated[
    float | None, typer.Option("--request-rate", help="Requests per second, Poisson arrivals (seeded).")
]
NumRequestsOption = Annotated[
    int, typer.Option("--num-requests", help="Requests simulated (vllm bench: 1000).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the arrival times and lengths.")]
PrefixOption = Annotated[
    float, typer.Option("--prefix-hit-rate", help="Fraction of each prompt in the prefix cache.")
]
SpecTokensOption = Annotated[
    int, typer.Option("--spec-tokens", help="Speculative decoding: draft tokens per step.")
]
AcceptanceOption = Annotated[
    float | None,
    typer.Option("--acceptance-rate", help="Speculative decoding: per-token acceptance rate, 0..1."),
]
EpOption = Annotated[int, typer.Option("--ep", help="Expert-parallel degree of MoE layers (all-to-all).")]
PriceOption = Annotated[
    float | None, typer.Option("--price", help="USD per GPU-hour (default: the catalog's).")
]
SloTtftOption = Annotated[float | None, typer.Option("--slo-ttft-ms", help="SLO on TTFT (ms).")]
SloTpotOption = Annotated[float | None, typer.Option("--slo-tpot-ms", help="SLO on TPOT (ms).")]
SloStatOption = Annotated[
    str, typer.Option("--slo-stat", help="Statistic the SLO bounds: mean, p50, p90, p99.")
]
TargetRateOption = Annotated[
    float | None,
    typer.Option("--target-rate", help="Requests/s to serve: replicas and GPUs needed (with an SLO)."),
]


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadRequest:
    """What the user asked of the serving simulation."""

    workload: Workload
    slo: Slo | None
    target_rate: float | None


def check_finite(
    name: str, value: float | None, *, upper: float | None = None, positive: bool = True
) -> None:
    """One clear message for NaN / inf / out-of-range floats given on the command line: allowed are finite
    numbers > 0 (`positive`) or >= 0, and <= `upper` when given."""
    if value is None:
        return
    low_ok = value > 0 if positive else value >= 0
    if not (math.isfinite(value) and low_ok and (upper is None or value <= upper)):
        low = "> 0" if positive else ">= 0"
        allowed = f"a finite number {low}" + (f" and <= {upper:g}" if upper is not None else "")
        raise SpecError(name, f"{value!r} is out of range (allowed: {allowed})")


def context_of(input_len: str | None, output_len: str | None) -> int:
    """The longest context of the workload (input + output upper bounds)."""
    return _len("input_len", input_len).high + _len("output_len", output_len).high


def _len(field: str, text: str | None) -> LengthDist:
    if text is None:
        raise SpecError(
            field,
            f"missing: a load needs both lengths (allowed: --{field.replace('_', '-')} N or LOW-HIGH with "
            "--input-len / --output-len)",
        )
    return LengthDist.parse(field, text)


def spec_decode(tokens: int, acceptance: float | None) -> SpecDecode | None:
    if acceptance is not None and not (math.isfinite(acceptance) and 0.0 <= acceptance <= 1.0):
        raise SpecError("acceptance_rate", f"{acceptance!r} is out of range (allowed: 0 <= rate <= 1)")
    if tokens == 0:
        if acceptance is not None:
            raise SpecError("spec_tokens", "0 with --acceptance-rate (allowed: draft tokens >= 1)")
        return None
    if acceptance is None:
        raise SpecError(
            "acceptance_rate", "missing: --spec-tokens needs --acceptance-rate (allowed: 0 <= rate <= 1)"
        )
    return SpecDecode(draft_tokens=tokens, acceptance_rate=acceptance)


def request(
    input_len: str | None,
    output_len: str | None,
    concurrency: int | None,
    rate: float | None,
    num_requests: int,
    seed: int,
    prefix_hit_rate: float,
    slo_ttft_ms: float | None,
    slo_tpot_ms: float | None,
    slo_stat: str,
    target_rate: float | None,
) -> LoadRequest:
    check_finite("request_rate", rate)
    check_finite("prefix_hit_rate", prefix_hit_rate, upper=1.0, positive=False)
    check_finite("target_rate", target_rate)
    workload = Workload(
        input_len=_len("input_len", input_len),
        output_len=_len("output_len", output_len),
        concurrency=concurrency if concurrency is not None or rate is not None else 1,
        request_rate=rate,
        num_requests=num_requests,
        seed=seed,
        prefix_hit_rate=prefix_hit_rate,
    )
    slo = None
    if slo_ttft_ms is not None or slo_tpot_ms is not None:
        check_finite("slo_ttft_ms", slo_ttft_ms)
        check_finite("slo_tpot_ms", slo_tpot_ms)
        slo = Slo(
            ttft_s=slo_ttft_ms / 1e3 if slo_ttft_ms is not None else None,
            tpot_s=slo_tpot_ms / 1e3 if slo_tpot_ms is not None else None,
            stat=slo_stat,
        )
    elif target_rate is not None:
        raise SpecError("target_rate", "needs an SLO (--slo-ttft-ms and / or --slo-tpot-ms)")
    return LoadRequest(workload=workload, slo=slo, target_rate=target_rate)


def run(plan: ServingPlan, req: LoadRequest, base_json: dict[str, Any] | None) -> None:
    """Simulate (and search the SLO), then print a table, or JSON when `base_json` is given."""
    est = plan.run(req.workload)
    slo = search(plan, req.workload, req.slo, req.target_rate) if req.slo is not None else None
    if base_json is not None:
        sys.stdout.write(dump(ServeLoadOut.model_validate(_json(base_json, est, slo))) + "\n")
        return
    _print_engine(est.engine)
    _print(est)
    if slo is not None:
        _print_slo(slo, req.slo)


def speed_json(est: ServingEstimate) -> dict[str, Any]:
    t = est.throughput
    return {
        "ttft_ms": est.ttft_s.to_ms_json(),
        "tpot_ms": est.tpot_s.to_ms_json(),
        "itl_ms": est.itl_s.to_ms_json(),
        "e2e_ms": est.e2e_s.to_ms_json(),
        "output_tokens_per_s": t.output_tokens_per_s,
        "output_tokens_per_s_per_gpu": t.output_tokens_per_s_per_gpu,
        "output_tokens_per_s_per_user": t.output_tokens_per_s_per_user,
        "requests_per_s": t.requests_per_s,
    }


def _json(base: dict[str, Any], est: ServingEstimate, slo: SloResult | None) -> dict[str, Any]:
    out = dict(base)
    out["roofline"] = out.pop("speed", None)
    out["speed"] = speed_json(est)
    out["cost"] = {
        "usd_per_million_output_tokens": est.usd_per_million_output_tokens,
        "usd_per_gpu_hour": est.price_usd_per_gpu_hour,
        "gpus": est.gpus,
    }
    out["serving"] = {
        "engine": {"engine": est.engine.engine.value, "version": est.engine.version}
        | {name: {"value": s.value, "source": s.source} for name, s in est.engine.settings()},
        "workload": plain(est.workload)
        | {"input_len": str(est.workload.input_len), "output_len": str(est.workload.output_len)},
        "kv_pool": est.pool.term.to_json() | {"blocks": est.pool.blocks, "tokens": est.pool.tokens},
        "step": est.step.to_json(),
        "iterations": est.iterations,
        "preemptions": est.preemptions,
        "max_running": est.max_running,
        "notes": list(est.notes),
    }
    if slo is not None:
        out["slo"] = {
            "by": slo.by,
            "best": slo.best_load,
            "evaluations": slo.evaluations,
            "speed": speed_json(slo.estimate) if slo.estimate else None,
            "target_rate": slo.target_rate,
            "replicas": slo.replicas,
            "gpus": slo.gpus,
        }
    return out


def _print_engine(eng: EngineDefaults) -> None:
    table = Table(title=f"{eng.engine.value} {eng.version} scheduling settings")
    table.add_column("setting")
    table.add_column("value", justify="right")
    table.add_column("source")
    for name, s in eng.settings():
        table.add_row(name, str(s.value), s.source)
    table.add_row("admission", eng.admission.value, "specs/engines.py")
    console.print(table)


def _print(est: ServingEstimate) -> None:
    w = est.workload
    load = []
    if w.concurrency is not None:
        load.append(f"concurrency {w.concurrency}")
    if w.request_rate is not None:
        load.append(f"rate {w.request_rate:g} req/s (Poisson, seed {w.seed})")
    table = Table(
        title=f"{est.model} on {est.gpus} x {est.accelerator}: {w.num_requests} requests, input {w.input_len}, "
        f"output {w.output_len}, {', '.join(load)} (simulated)"
    )
    for col in ("metric (ms)", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right" if col != "metric (ms)" else "left")
    for name, p in (("TTFT", est.ttft_s), ("TPOT", est.tpot_s), ("ITL", est.itl_s), ("E2E", est.e2e_s)):
        table.add_row(name, *(f"{p.get(k) * 1e3:,.2f}" for k in ("mean", "p50", "p90", "p99")))
    console.print(table)
    t = est.throughput
    console.print(
        f"throughput: {t.output_tokens_per_s:,.1f} output tokens/s ({t.output_tokens_per_s_per_gpu:,.1f} per GPU, "
        f"{t.output_tokens_per_s_per_user:,.1f} per user), {t.requests_per_s:,.2f} requests/s"
    )
    if est.usd_per_million_output_tokens is not None:
        console.print(
            f"cost: ${est.usd_per_million_output_tokens:,.3f} per million output tokens "
            f"({est.gpus} GPUs at ${est.price_usd_per_gpu_hour:,.2f}/GPU-hour)"
        )
    console.print(
        f"KV pool: {gib(est.pool.bytes)} GiB per GPU = {est.pool.tokens:,} tokens ({est.pool.term.formula}); "
        f"{est.max_running} requests ran at once at most, {est.preemptions} preemptions, {est.iterations:,} iterations"
    )
    console.print(f"one decode step at the mean batch: {est.step.value * 1e3:,.2f} ms =")
    for part in est.step.parts:
        console.print(f"  {part.name} {part.value * 1e3:,.3f} ms: {part.formula}")
    for note in est.notes:
        console.print(f"note: {note}")


def _print_slo(res: SloResult, slo: Slo | None) -> None:
    assert slo is not None
    limits = []
    if slo.ttft_s is not None:
        limits.append(f"{slo.stat} TTFT <= {slo.ttft_s * 1e3:g} ms")
    if slo.tpot_s is not None:
        limits.append(f"{slo.stat} TPOT <= {slo.tpot_s * 1e3:g} ms")
    if res.best_load is None or res.estimate is None:
        console.print(f"SLO ({', '.join(limits)}): not met even at the lightest load tried")
        return
    e = res.estimate
    unit = "" if res.by == "concurrency" else " req/s"
    console.print(
        f"SLO ({', '.join(limits)}): largest {res.by.replace('_', ' ')} {res.best_load:g}{unit} → "
        f"TTFT {e.ttft_s.get(slo.stat) * 1e3:,.1f} ms, TPOT {e.tpot_s.get(slo.stat) * 1e3:,.2f} ms, "
        f"{e.throughput.output_tokens_per_s:,.0f} tokens/s, {e.throughput.requests_per_s:,.2f} req/s "
        f"({res.evaluations} simulations)"
    )
    if res.replicas is not None:
        console.print(
            f"target {res.target_rate:g} req/s: {res.replicas} replicas x {e.gpus} GPUs = {res.gpus} GPUs"
        )
