"""Speed and size of the trace engine (issue 4, item 5), written to benchmarks/results/trace_speed.json.

Each case runs in a fresh Python process so that its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`)
is its own; the wall time covers building the fake models and tracing (imports excluded, reported apart).
Acceptance: Llama-2-7B bf16 full training step at 2048 tokens <= 60 s and <= 2 GB RSS; Llama-2-70B LoRA
step <= 10 minutes.

    python benchmarks/bench_trace.py            # all cases
    python benchmarks/bench_trace.py --case NAME
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "trace_speed.json"

CASES = {
    "llama-2-7b full bf16 2048 (composed)": {
        "model": "llama-2-7b",
        "job": {"precision": "bf16", "seq_len": 2048},
        "compose": True,
        "limit_s": 60,
        "limit_rss_bytes": 2 * 10**9,
    },
    "llama-2-7b full bf16 2048 (every layer traced)": {
        "model": "llama-2-7b",
        "job": {"precision": "bf16", "seq_len": 2048},
        "compose": False,
        "limit_s": None,
        "limit_rss_bytes": None,
    },
    "llama-2-7b lora r16 all-linear bf16 2048 (composed)": {
        "model": "llama-2-7b",
        "job": {"precision": "bf16", "seq_len": 2048, "method": "lora", "lora_rank": 16, "all_linear": True},
        "compose": True,
        "limit_s": None,
        "limit_rss_bytes": None,
    },
    "llama-2-70b lora r16 all-linear bf16 2048 (composed)": {
        "model": "llama-2-70b",
        "job": {"precision": "bf16", "seq_len": 2048, "method": "lora", "lora_rank": 16, "all_linear": True},
        "compose": True,
        "limit_s": 600,
        "limit_rss_bytes": None,
    },
}


def run_case(name: str) -> dict:
    """Trace one case in this process and return its figures."""
    started = time.perf_counter()
    from llmplan.loading import load_model
    from llmplan.specs.training import Method, PeftSpec, Precision, TrainingJob
    from llmplan.trace import build, by_category, trace_training

    for module in ("torch", "transformers", "peft"):
        build.require(module)
    imported = time.perf_counter()
    case = CASES[name]
    j = case["job"]
    peft = PeftSpec(
        lora_rank=j.get("lora_rank", 8),
        lora_targets=("all-linear",) if j.get("all_linear") else ("q_proj", "v_proj"),
    )
    job = TrainingJob(
        method=Method(j.get("method", "full")),
        precision=Precision(j["precision"]),
        seq_len=j["seq_len"],
        peft=peft,
    )
    spec = load_model(case["model"])
    result = trace_training(spec, job, compose=case["compose"])
    wall = time.perf_counter() - imported
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {
        "case": name,
        "model": case["model"],
        "job": j,
        "composed": result.composed,
        "traced_layers": list(result.traced_layers),
        "wall_s": round(wall, 2),
        "import_s": round(imported - started, 2),
        "max_rss_bytes": rss,
        "limit_s": case["limit_s"],
        "limit_rss_bytes": case["limit_rss_bytes"],
        "ok": (case["limit_s"] is None or wall <= case["limit_s"])
        and (case["limit_rss_bytes"] is None or rss <= case["limit_rss_bytes"]),
        "peak_allocated_bytes": result.total,
        "peak_phase": result.peak_phase,
        "peak_step": result.peak_step,
        "peak": by_category(result.peak),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process, print its JSON")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return 0
    rows = []
    for name in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{name}: {row['wall_s']} s, {row['max_rss_bytes'] / 1e9:.2f} GB RSS, ok={row['ok']}", flush=True
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    RESULTS.write_text(json.dumps({"machine": machine, "cases": rows}, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
