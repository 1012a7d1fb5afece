"""Accuracy of the training-time estimate against published speeds: docs/accuracy-time.md.

    python benchmarks/time_accuracy.py            # estimate every case, write the page and the results
    python benchmarks/time_accuracy.py --refresh  # rebuild validate/time_cases.json from ../shared/data (--shared)
    python benchmarks/time_accuracy.py --fit      # refit the sustained GEMM fraction per architecture

The llm-analysis column needs `pip install --no-deps llm-analysis==0.2.2 fire termcolor`.

Mapping of the shared rows (--refresh):
- llm-foundry (throughput.jsonl): model `mpt-<size>` of the catalog with `max_seq_len` set to the row's (its
  learned position table), attention from the config's `attn_config.attn_impl` (triton); precision amp_bf16 →
  bf16-mixed, bf16 with FSDP `mixed_precision: PURE` → bf16-mixed (noted: PURE reduces in bf16), amp_fp8 →
  fp8-mixed; dp = GPUs, FSDP full-shard or shard-grad-op as the row says, grad accumulation from `extra`;
  cluster: the DGX preset of the GPU (the A100 rows state 8 × 200 Gb/s RoCE per node, the DGX A100's 8 × HDR
  200; the H100 rows state no network: DGX H100's 8 × 400 Gb/s).
- Megatron-LM README (throughput.jsonl, step_time_s): GPT-3 175B (catalog gpt-3-175b), tp 8, pp 16, dp 8,
  1536 sequences of 2048 per step (192 micro-batches of 1), full recomputation, fp16, Megatron's fused
  softmax over explicit scores (eager), 1F1B; DGX A100 80GB nodes (Selene).
- measured.jsonl: the rows in MEASURED below, each with its configuration read from the row and its notes.
Every other row of both files is listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmplan.validate.stats import ErrorStats  # noqa: E402
from llmplan.validate.time_cases import TimeComparison, compare, in_fit, load_cases  # noqa: E402
from llmplan.validate.time_report import render, spearman  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CASES_FILE = ROOT / "src" / "llmplan" / "validate" / "time_cases.json"
GPU_PRESET = {"A100 SXM 40GB": "dgx-a100-40gb", "A100 SXM 80GB": "dgx-a100-80gb", "H100 SXM 80GB": "dgx-h100"}
PRECISION = {"amp_bf16": "bf16-mixed", "bf16": "bf16-mixed", "amp_fp8": "fp8-mixed"}

# measured.jsonl rows llmplan expresses: id -> configuration (dp·tp·pp·cp = GPUs; grad_accum = global /
# (dp · micro)). NeMo / Megatron-Bridge recipes run sequence parallelism with tp > 1 and TE/cuDNN fused
# attention (a FlashAttention-class kernel: `sdpa`); torchtitan runs SDPA's flash backend.
MEASURED: dict[str, dict[str, object]] = {
    "torchtitan-202412-table1-8b-8gpu-fsdp-tps": dict(
        model="llama-3.1-8b",
        cluster="meta-grand-teton-h100-96gb",
        nodes=1,
        precision="bf16-mixed",
        micro_batch=2,
        seq_len=8192,
        recompute="selective",
        attention="sdpa",
        dp=8,
        fsdp="full-shard",
    ),
    "torchtitan-202412-table3-8b-128gpu-fsdp-tps": dict(
        model="llama-3.1-8b",
        cluster="meta-grand-teton-h100-96gb",
        nodes=16,
        precision="bf16-mixed",
        micro_batch=2,
        seq_len=8192,
        recompute="selective",
        attention="sdpa",
        dp=128,
        fsdp="full-shard",
    ),
    "nemo2407-pretrain-llama2-7b": dict(
        model="llama-2-7b",
        cluster="dgx-h100",
        nodes=1,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=4096,
        grad_accum=16,
        attention="sdpa",
        dp=8,
    ),
    "nemo2407-pretrain-llama2-13b": dict(
        model="llama-2-13b",
        cluster="dgx-h100",
        nodes=2,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=4096,
        grad_accum=32,
        attention="sdpa",
        dp=4,
        pp=4,
        schedule="interleaved",
        virtual_stages=10,
    ),
    "nemo2407-pretrain-llama2-70b": dict(
        model="llama-2-70b",
        cluster="dgx-h100",
        nodes=8,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=4096,
        grad_accum=32,
        attention="sdpa",
        dp=4,
        tp=4,
        pp=4,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=20,
    ),
    "nemo2407-pretrain-llama3-8b": dict(
        model="llama-3-8b",
        cluster="dgx-h100",
        nodes=1,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=8192,
        grad_accum=32,
        attention="sdpa",
        dp=4,
        cp=2,
    ),
    "nemo2407-pretrain-llama3-70b": dict(
        model="llama-3-70b",
        cluster="dgx-h100",
        nodes=8,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=8192,
        grad_accum=64,
        attention="sdpa",
        dp=2,
        tp=4,
        pp=4,
        cp=2,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=5,
    ),
    "nemo2407-pretrain-gpt3-175b": dict(
        model="gpt-3-175b",
        cluster="dgx-h100",
        nodes=16,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=2048,
        grad_accum=64,
        attention="sdpa",
        dp=4,
        tp=4,
        pp=8,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=6,
    ),
    "megatronbridge-2511-dgx-h100-llama3_8b": dict(
        model="llama-3-8b",
        cluster="dgx-h100",
        nodes=1,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=8192,
        grad_accum=16,
        attention="sdpa",
        dp=8,
    ),
    "megatronbridge-2511-dgx-h100-llama3_70b": dict(
        model="llama-3-70b",
        cluster="dgx-h100",
        nodes=8,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=8192,
        grad_accum=64,
        attention="sdpa",
        dp=2,
        tp=4,
        pp=8,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=5,
    ),
    "nemo2407-pretrain-nemotron-340b": dict(
        model="nemotron-4-340b",
        cluster="dgx-h100",
        nodes=16,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=4096,
        grad_accum=16,
        attention="sdpa",
        dp=2,
        tp=8,
        pp=8,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=12,
    ),
    "megatronbridge-2511-dgx-h100-llama3.1_405b": dict(
        model="llama-3.1-405b",
        cluster="dgx-h100",
        nodes=128,
        precision="fp8-mixed",
        micro_batch=1,
        seq_len=8192,
        grad_accum=64,
        attention="sdpa",
        dp=8,
        tp=8,
        pp=8,
        cp=2,
        sequence_parallel=True,
        schedule="interleaved",
        virtual_stages=8,
    ),
    "megatronbridge-2511-dgx-b200-llama3_8b": dict(
        model="llama-3-8b",
        cluster="dgx-b200",
        nodes=1,
        precision="fp8-mixed",
        micro_batch=2,
        seq_len=8192,
        grad_accum=8,
        attention="sdpa",
        dp=8,
    ),
}


def _foundry(row: dict) -> dict[str, object]:
    size = row["model"].split("-", 1)[1].lower()
    precision = row["precision"].split(" ")[0]
    notes = []
    if precision == "bf16":
        notes.append("FSDP PURE (bf16 reduce) modelled as bf16-mixed (fp32 reduce-scatter)")
    n = row["n_gpus"]
    return {
        "id": row["id"],
        "source": row["source"],
        "model": f"mpt-{size}",
        "config": {"max_seq_len": row["seq_len"]},
        "cluster": GPU_PRESET[row["gpu"]],
        "nodes": max(1, n // 8),
        "precision": PRECISION[precision],
        "micro_batch": row["micro_batch"],
        "seq_len": row["seq_len"],
        "grad_accum": row["extra"]["grad_accum"],
        "recompute": "full" if row["recompute"].startswith("full") else "none",
        "attention": "triton",
        "dp": n,
        "fsdp": "full-shard" if "FULL_SHARD" in row["zero_or_fsdp"] else "shard-grad-op",
        "metric": "tokens_per_s_per_gpu",
        "value": row["value"],
        "fully_specified": row["fully_specified"],
        "notes": "; ".join(notes),
    }


def refresh(shared: Path) -> None:
    cases: list[dict[str, object]] = []
    skipped: list[dict[str, str]] = []
    for line in (shared / "throughput.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["metric"] in ("ttft_ms", "tpot_ms", "output_tokens_per_s_total"):
            continue  # serving rows: docs/accuracy-inference.md
        if row["framework"].startswith("llm-foundry"):
            cases.append(_foundry(row))
        elif row["id"] == "megatron-readme-2021-gpt3-step_time_s":
            cases.append(
                dict(
                    id=row["id"],
                    source=row["source"],
                    model="gpt-3-175b",
                    cluster="dgx-a100-80gb",
                    nodes=128,
                    precision="fp16-mixed",
                    micro_batch=1,
                    seq_len=2048,
                    grad_accum=192,
                    recompute="full",
                    attention="eager",
                    dp=8,
                    tp=8,
                    pp=16,
                    metric="step_time_s",
                    value=row["value"],
                    fully_specified=True,
                    notes="schedule not stated: 1F1B",
                )
            )
        else:
            reason = (
                "the same run as the step_time_s row"
                if row["id"].startswith("megatron-readme-2021")
                else ("configuration not published (trust B/C: layout, micro-batch or precision not stated)")
            )
            skipped.append({"id": row["id"], "reason": reason})
    for line in (shared / "measured.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["metric"] not in ("tokens_per_s_per_gpu", "step_time_s", "mfu"):
            continue
        if row["id"] in MEASURED:
            entry = {"id": row["id"], "source": row["source"], **MEASURED[row["id"]]}
            entry.update(
                metric=row["metric"],
                value=float(row["value"]),
                fully_specified=False,
                notes=f"measured.jsonl trust {row['trust']}",
            )
            cases.append(entry)
        else:
            skipped.append({"id": row["id"], "reason": _measured_reason(row)})
    CASES_FILE.write_text(json.dumps({"cases": cases, "skipped": skipped}, indent=1) + "\n")
    print(f"{len(cases)} cases, {len(skipped)} skipped -> {CASES_FILE.relative_to(ROOT)}")


def _measured_reason(row: dict) -> str:
    attention = str(row.get("attention", "")).lower()
    if "compile" in attention:
        return "torch.compile fuses the memory-bound ops (not modelled)"
    if row["metric"] == "mfu" or "-" in str(row["value"]):
        return "an MFU range or a layout the source does not state"
    if row["task"] in ("lora", "qlora"):
        return "LoRA / QLoRA fine-tuning on a padded dataset: tokens per step not stated"
    if "finetune" in row["id"]:
        return "fine-tuning on packed SQuAD: tokens per step follow the packing, not stated"
    if "gb200" in row["id"]:
        return "a part of a GB200 NVL72 domain: the partition and its network are not stated"
    if "gptoss" in row["id"] or "gpt3-5b" in row["id"] or "gpt3-20b" in row["id"]:
        return "model configuration not in the catalog (GPT OSS 120B, NeMo's GPT3-5B / 20B)"
    return "layout or batch not fully stated in the source"


def fit() -> None:
    import llmplan.formulas.compute_time as ct

    cases, _ = load_cases()
    for arch in ("Ampere", "Hopper"):
        chosen = [c for c in cases if c.cluster.accelerator.architecture == arch and in_fit(c)]
        best = None
        for k in range(55, 96):
            ct.SUSTAINED_FRACTION[arch] = k / 100
            med = statistics.median(abs(compare(c).error_pct) for c in chosen)
            if best is None or med < best[1]:
                best = (k / 100, med)
        assert best is not None
        ct.SUSTAINED_FRACTION[arch] = best[0]
        print(
            f"{arch}: sustained fraction {best[0]:.2f} (median |error| {best[1]:.1f} % on {len(chosen)} rows)"
        )


def speed(cases) -> dict[str, object]:
    """One estimate (process CPU time, best of 5 × 100; the development machine's 2 cores are shared, so wall
    time follows the load) and the CLI (wall and CPU time of the child, best of 3)."""
    from llmplan.estimate.time import estimate_time

    case = next(c for c in cases if c.model_id == "llama-2-70b")
    runs, best = 100, float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(runs):
            estimate_time(case.model, case.job, case.layout, case.cluster)
        best = min(best, (time.process_time() - start) / runs)
    cmd = [
        sys.executable,
        "-m",
        "llmplan",
        "train",
        "llama-3.1-70b",
        "--nodes",
        "4",
        "--tp",
        "8",
        "--pp",
        "2",
        "--grad-accum",
        "8",
        "--tokens",
        "1T",
        "--json",
    ]
    walls, cpus = [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={"PYTHONPATH": str(ROOT / "src")})
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "estimate_ms": best * 1e3,
        "case": case.id,
        "cli_wall_s": min(walls),
        "cli_cpu_s": min(cpus),
        "cli_command": "llmplan " + " ".join(cmd[3:]),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (for --refresh)")
    args = parser.parse_args()
    if args.refresh:
        refresh(args.shared)
        return
    if args.fit:
        fit()
        return
    cases, skipped = load_cases()
    comps: list[TimeComparison] = [compare(c) for c in cases]
    fast = speed(cases)
    (ROOT / "benchmarks" / "results" / "time_speed.json").write_text(json.dumps(fast, indent=1) + "\n")
    (ROOT / "docs" / "accuracy-time.md").write_text(render(comps, skipped, fast))
    primary = [
        c.error_pct for c in comps if c.case.fully_specified and c.case.metric == "tokens_per_s_per_gpu"
    ]
    stats = ErrorStats.of(primary)
    result = {
        "cases": len(comps),
        "fully_specified_tokens_per_s": dataclasses.asdict(stats) if stats else None,
        "spearman": spearman(comps),
        "rows": [
            {
                "id": c.case.id,
                "measured": c.case.measured,
                "predicted": c.predicted,
                "error_pct": c.error_pct,
                "seed_rule_pct": c.seed_rule_pct,
                "llm_analysis_pct": c.llm_analysis_pct,
            }
            for c in comps
        ],
    }
    (ROOT / "benchmarks" / "results" / "time_accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1), json.dumps(fast))


if __name__ == "__main__":
    main()
