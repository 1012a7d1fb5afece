"""Cost of the suggestion search (`estimate.suggest`) for jobs that do not fit: how many combinations the axes
give, how many were estimated, the suggestions found and the wall time (median of RUNS, the model's inventory
remembered, as in `llmplan train`).

Writes benchmarks/results/suggest_speed.json.
Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_suggest_speed.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from llmplan import catalog
from llmplan.estimate import suggest as suggest_module
from llmplan.estimate.changes import axes, combinations
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import Layout, Method, PeftSpec, TrainingJob

OUT = Path(__file__).parent / "results" / "suggest_speed.json"
RUNS = 5
CASES = [
    ("llama-3.1-8b", "h100-sxm-80gb", 1, TrainingJob(), Layout()),
    ("llama-2-13b", "a100-sxm-80gb", 1, TrainingJob(), Layout()),
    (
        "llama-2-13b",
        "rtx-4090",
        1,
        TrainingJob(method=Method.LORA, peft=PeftSpec(lora_rank=64, lora_targets=("all-linear",))),
        Layout(),
    ),
    ("llama-3.1-70b", "h100-sxm-80gb", 8, TrainingJob(micro_batch_size=2), Layout(dp=8)),
    ("llama-3.1-405b", "h100-sxm-80gb", 64, TrainingJob(micro_batch_size=8, seq_len=8192), Layout(dp=64)),
    ("llama-3.1-405b", "h100-sxm-80gb", 1, TrainingJob(), Layout()),
]


def main() -> None:
    results = []
    for model_id, gpu, gpus, job, layout in CASES:
        model = load_model(model_id)
        cluster = Cluster(
            accelerator=catalog.accelerator(gpu), gpus_per_node=min(gpus, 8), nodes=max(1, gpus // 8)
        )
        calls = [0]
        real = suggest_module.reestimate

        def counted(*args, real=real, calls=calls):
            calls[0] += 1
            return real(*args)

        suggest_module.reestimate = counted
        tips = suggest_module.suggest(model, job, layout, cluster)
        suggest_module.reestimate = real
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            suggest_module.suggest(model, job, layout, cluster)
            times.append(time.perf_counter() - start)
        results.append(
            {
                "model": model_id,
                "gpu": gpu,
                "gpus": gpus,
                "method": job.method.value,
                "combinations": sum(1 for _ in combinations(axes(job, layout, cluster))),
                "estimated": calls[0],
                "suggestions": len(tips),
                "kept_method": sum(t.keeps_method for t in tips),
                "ms": round(1e3 * statistics.median(times), 1),
            }
        )
    report = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "median_of_runs": RUNS,
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
