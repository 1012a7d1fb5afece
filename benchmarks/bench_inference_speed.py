"""In-process speed of `estimate_inference` (issue 5, item 8).

Acceptance: one estimate under 1 ms; the search for the largest context x concurrency that fits under 10 ms.
"One estimate" is timed twice: cold (the model's inventory sums computed afresh, as for the first call) and warm
(a later estimate of the same ModelSpec object, as in a plan search). The fit search (largest batch at the
context and largest context at the batch, both binary searches) is timed on its own.
Writes benchmarks/results/inference_speed.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from llmplan import catalog
from llmplan.estimate import inference as inf
from llmplan.estimate import inference_memory as mem
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, QuantFormat

OUT = Path(__file__).parent / "results" / "inference_speed.json"
RUNS = 200
CASES = [
    ("llama-2-7b", "a100-sxm-80gb", InferenceJob(quant=QuantFormat.FP16, compute_dtype=QuantFormat.FP16)),
    ("llama-3-8b", "h100", InferenceJob(engine=Engine.VLLM, context_len=8192)),
    ("llama-3-70b", "h100", InferenceJob(quant=QuantFormat.Q4_K_M, context_len=8192, batch=8)),
    ("mixtral-8x7b-v0.1", "h100", InferenceJob(quant=QuantFormat.AWQ_INT4, tp=2, engine=Engine.VLLM)),
    ("deepseek-v3", "h200", InferenceJob(quant=QuantFormat.FP8, tp=8, engine=Engine.VLLM, context_len=32768)),
]


def median_ms(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    results = []
    for model_id, gpu, job in CASES:
        model = load_model(model_id)
        cluster = Cluster(accelerator=catalog.accelerator(gpu))

        def cold(model=model, job=job, cluster=cluster) -> None:
            mem._MEMO.clear()
            inf.estimate_inference(model, job, cluster)

        def warm(model=model, job=job, cluster=cluster) -> None:
            inf.estimate_inference(model, job, cluster)

        fp = mem.Footprint(model, job, cluster.accelerator)

        def search(fp=fp, job=job, model=model) -> None:
            mem.max_batch(fp, job.context_len)
            mem.max_context(fp, job.batch, max(model.max_position_embeddings, job.context_len))

        results.append(
            {
                "model": model_id,
                "gpu": gpu,
                "quant": job.quant.value,
                "engine": job.engine.value,
                "tp": job.tp,
                "estimate_cold_ms": round(median_ms(cold, 50), 3),
                "estimate_warm_ms": round(median_ms(warm), 3),
                "fit_search_ms": round(median_ms(search), 3),
            }
        )
        print(results[-1])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
                "targets_ms": {"one_estimate": 1.0, "fit_search": 10.0},
                "median_of_runs": RUNS,
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
