"""In-process speed of `estimate_training` (issue 3, item 10): one estimate must take under 1 ms (median).

Each case is timed warm (a later estimate of the same ModelSpec object, as in a plan search or the suggestion
ladder: the per-model inventory sums and decoder-block kinds of `formulas.model_states.memo_by_model` are
remembered) and cold (those cleared first, as for the first call). `activations_ms` times
`formulas.activations.training_activations` alone for the same case, to show where the time goes.
Writes benchmarks/results/estimate_speed.json.
Run: /work/venv/bin/python benchmarks/bench_estimate_speed.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from llmplan import catalog
from llmplan.estimate.training import adapted_linears, estimate_training
from llmplan.formulas import model_states as msf
from llmplan.formulas.activations import training_activations
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    Layout,
    Method,
    OffloadTarget,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)

OUT = Path(__file__).parent / "results" / "estimate_speed.json"
RUNS = 200
TARGET_MS = 1.0
CASES = [
    ("llama-2-7b", 1, TrainingJob(precision=Precision.BF16), Layout()),
    (
        "llama-3-8b",
        1,
        TrainingJob(method=Method.LORA, peft=PeftSpec(lora_rank=16, lora_targets=("all-linear",))),
        Layout(),
    ),
    (
        "llama-2-70b",
        8,
        TrainingJob(method=Method.QLORA, recompute=Recompute.FULL),
        Layout(dp=8, zero=ZeroStage.PARAMETERS),
    ),
    ("llama-3-70b", 64, TrainingJob(seq_len=4096), Layout(dp=4, tp=8, pp=2, zero=ZeroStage.OPTIMIZER)),
    (
        "mixtral-8x7b-v0.1",
        8,
        TrainingJob(recompute=Recompute.FULL),
        Layout(dp=8, ep=8, zero=ZeroStage.GRADIENTS, offload_optimizer=OffloadTarget.CPU),
    ),
]


def median_ms(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    h100 = catalog.accelerator("h100-sxm-80gb")
    results = []
    for model_id, gpus, job, layout in CASES:
        model = load_model(model_id)
        cluster = Cluster(accelerator=h100, gpus_per_node=min(gpus, 8), nodes=max(1, gpus // 8))

        def warm(model=model, job=job, layout=layout, cluster=cluster) -> None:
            estimate_training(model, job, layout, cluster)

        def cold(model=model, job=job, layout=layout, cluster=cluster) -> None:
            msf._MEMO.clear()
            estimate_training(model, job, layout, cluster)

        adapted = adapted_linears(model, job)

        def act(model=model, job=job, layout=layout, adapted=adapted) -> None:
            training_activations(model, job, layout, adapted)

        warm()
        results.append(
            {
                "model": model_id,
                "gpus": gpus,
                "method": job.method.value,
                "layout": f"dp{layout.dp} tp{layout.tp} pp{layout.pp} ep{layout.ep} "
                f"zero{layout.sharding_stage}",
                "estimate_warm_ms": round(median_ms(warm), 3),
                "estimate_cold_ms": round(median_ms(cold), 3),
                "activations_ms": round(median_ms(act), 3),
            }
        )
    warm_all = [r["estimate_warm_ms"] for r in results]
    report = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "target_ms": TARGET_MS,
        "median_of_runs": RUNS,
        "median_warm_ms": round(statistics.median(warm_all), 3),
        "meets_target": statistics.median(warm_all) < TARGET_MS,
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
