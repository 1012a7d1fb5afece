"""Speed of the serving estimate: one run at a concurrency, one at a request rate, and an SLO search.

Acceptance of issue 11: one estimate at a concurrency <= 5 ms, an SLO search <= 200 ms. Each figure is the
median of REPEATS runs (wall clock, this machine), with the plan (engine defaults, KV pool, step constants)
built once per configuration as `llmplan serve` does. Writes benchmarks/results/serving_speed.json.

Run: python benchmarks/serving_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from llmplan import catalog
from llmplan.estimate.serving import plan_serving
from llmplan.estimate.serving_slo import Slo, search
from llmplan.loading import load_model
from llmplan.specs.engines import ServingEngine
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat
from llmplan.specs.serving import LengthDist, Workload

REPEATS = 7
OUT = Path(__file__).resolve().parent / "results" / "serving_speed.json"


def _median_ms(fn) -> dict[str, float]:  # noqa: ANN001
    """Median wall-clock and CPU milliseconds of REPEATS calls (CPU time is what the call itself costs; the wall
    clock also counts the other processes of a shared machine: see `load_average`)."""
    wall, cpu = [], []
    for _ in range(REPEATS):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return {"wall_ms": round(statistics.median(wall), 3), "cpu_ms": round(statistics.median(cpu), 3)}


def main() -> None:
    model = load_model("llama-3.1-8b")
    cluster = Cluster(accelerator=catalog.accelerator("h100"), gpus_per_node=8)
    job = InferenceJob(quant=QuantFormat.BF16, context_len=1536)
    results = {}
    lengths = {
        "input_len": LengthDist.of("i", 1024),
        "output_len": LengthDist.of("o", 512),
        "num_requests": 1000,
    }
    conc = Workload(concurrency=64, **lengths)
    rate = Workload(request_rate=10.0, **lengths)
    slo = Slo(ttft_s=1.0, tpot_s=0.03, stat="p90")
    for engine in (ServingEngine.VLLM, ServingEngine.SGLANG, ServingEngine.TRTLLM):
        plan = plan_serving(model, job, cluster, engine, context=1536)
        found = search(plan, conc, slo)
        results[engine.value] = {
            "plan": _median_ms(lambda e=engine: plan_serving(model, job, cluster, e, context=1536)),
            "estimate_at_concurrency_64": _median_ms(lambda p=plan: p.run(conc)),
            "estimate_at_rate_10": _median_ms(lambda p=plan: p.run(rate)),
            "slo_search": _median_ms(lambda p=plan: search(p, conc, slo)),
            "slo_search_simulations": found.evaluations,
            "slo_best_concurrency": found.best_load,
        }
    out = {
        "what": "llama-3.1-8b bf16 on 1 x H100, 1000 requests of 1024 -> 512 tokens; SLO p90 TTFT 1 s, TPOT 30 ms",
        "repeats": REPEATS,
        "load_average": os.getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "results": results,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
