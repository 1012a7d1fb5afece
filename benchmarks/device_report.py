"""docs/accuracy-device.md from the GPU campaign's results: analytic vs trace vs measured per case, the roofline's
predicted vs measured inference times, and the calibration kernels' efficiencies against the time model's
constants.

    python benchmarks/device_report.py [--results benchmarks/results/device] [--plan benchmarks/results/device-plan]

Measured numbers come only from files the campaign wrote on a GPU (`status` ok or oom, not a dry run); the trace
column comes from the committed dry run (the plan); the analytic column is computed now, by the code in this
tree. With no measured file the page says that no campaign has run, and why. `check` is what
tests/test_device_accuracy.py holds the analytic engine to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import device_campaign  # noqa: E402
import device_cases as dc  # noqa: E402
import device_kernels  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "device"
PLAN = ROOT / "benchmarks" / "results" / "device-plan"
DOC = ROOT / "docs" / "accuracy-device.md"
GIB = 2**30

TOLERANCE = {"allocated": 0.10, "reserved": 0.15, "device": 0.15}
"""Largest |analytic - measured| / measured per counter that tests/test_device_accuracy.py accepts. PROVISIONAL:
no campaign has run, so these are not set from measurements; they are the spread the analytic engine already
shows against the published measurements per counter (docs/accuracy.md: p90 9.1 % allocated, about 20 %
reserved and device), tightened for reserved and device because here the allocator, the context and the step are
the model's own. The first campaign's results must replace them, and this docstring must say so."""
UNREACHED = 0.15
"""An OOM case fails the check when the analytic device estimate is below (1 - UNREACHED) of the GPU's memory:
the estimate said it fits with room to spare."""


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """The case records of a folder, by case id."""
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(record, dict) and "case" in record:
            out[record["case"]] = record
    return out


def measured(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records measured on a GPU: status ok or oom, not written by a dry run."""
    return {
        k: r
        for k, r in results.items()
        if r.get("status") in ("ok", "oom") and not r.get("environment", {}).get("dry_run", True)
    }


def rel(estimate: float, reference: float) -> float:
    return (estimate - reference) / reference


def check(records: dict[str, dict[str, Any]]) -> list[str]:
    """Every way the current analytic estimate leaves a measured training or inference case beyond TOLERANCE."""
    cases = dc.by_id()
    failures = []
    for case_id, record in sorted(records.items()):
        case = cases.get(case_id)
        if case is None or isinstance(case, dc.KernelCase):
            continue
        est = dc.analytic(case, record.get("analytic", {}).get("gpu", dc.GPU))
        if "error" in est:
            failures.append(f"{case_id}: the analytic engine refuses a case the GPU ran: {est['error']}")
            continue
        m = record.get("measured") or {}
        if record["status"] == "oom":
            total = record["environment"]["gpu_total_bytes"]
            if est["device_bytes"] < (1 - UNREACHED) * total:
                failures.append(
                    f"{case_id}: OOM on the GPU, but the analytic device estimate is "
                    f"{est['device_bytes'] / GIB:.2f} GiB of {total / GIB:.2f} GiB"
                )
            continue
        for counter, key in (
            ("allocated", "peak_allocated_bytes"),
            ("reserved", "peak_reserved_bytes"),
            ("device", "device_used_bytes"),
        ):
            err = rel(est[f"{counter}_bytes"], m[key])
            if abs(err) > TOLERANCE[counter]:
                failures.append(
                    f"{case_id}: analytic {counter} {est[f'{counter}_bytes'] / GIB:.2f} GiB vs measured "
                    f"{m[key] / GIB:.2f} GiB ({100 * err:+.1f} %, tolerance {100 * TOLERANCE[counter]:.0f} %)"
                )
    return failures


def _g(n: float | None) -> str:
    return "—" if n is None else f"{n / GIB:.2f}"


def _pct(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or not b else f"{100 * rel(a, b):+.1f}"


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3f}"


def _ms(s: float | None) -> str:
    return "—" if s is None else f"{1e3 * s:.2f}"


def _training_rows(plan: dict, runs: dict) -> list[str]:
    rows = [
        "| case | analytic alloc | trace alloc | analytic − trace % | measured alloc | analytic − measured % | "
        "analytic reserved | measured reserved | analytic device | measured device | analytic fits | measured | "
        "step s time model | step s measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in dc.TRAIN_CASES:
        a = dc.analytic(case)
        planned = plan.get(case.id) or {}
        t = planned.get("trace") or {}
        traced = t.get("peak_allocated_bytes")
        trace_cell = "untraceable" if planned.get("status") == "untraceable" else _g(traced)
        r = runs.get(case.id)
        m = (r or {}).get("measured") or {}
        alloc = m.get("peak_allocated_bytes")
        status = r["status"] if r else "not run"
        rows.append(
            f"| `{case.id}` | {_g(a.get('allocated_bytes'))} | {trace_cell} | "
            f"{_pct(a.get('allocated_bytes'), traced)} | {_g(alloc)} | "
            f"{_pct(a.get('allocated_bytes'), alloc)} | {_g(a.get('reserved_bytes'))} | "
            f"{_g(m.get('peak_reserved_bytes'))} | {_g(a.get('device_bytes'))} | {_g(m.get('device_used_bytes'))} | "
            f"{'yes' if a.get('fits') else 'no'} | {status} | {_s(a.get('step_time_s'))} | "
            f"{_s(m.get('step_time_s'))} |"
        )
    return rows


def _inference_rows(plan: dict, runs: dict) -> list[str]:
    rows = [
        "| case | analytic alloc | trace alloc | measured alloc | analytic − measured % | analytic KV | "
        "TTFT ms roofline | TTFT ms measured | TPOT ms roofline | TPOT ms measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in dc.INFER_CASES:
        a = dc.analytic(case)
        t = (plan.get(case.id) or {}).get("trace") or {}
        m = (runs.get(case.id) or {}).get("measured") or {}
        alloc = m.get("peak_allocated_bytes")
        rows.append(
            f"| `{case.id}` | {_g(a.get('allocated_bytes'))} | {_g(t.get('peak_allocated_bytes'))} | {_g(alloc)} | "
            f"{_pct(a.get('allocated_bytes'), alloc)} | {_g(a.get('kv_cache_bytes'))} | {_ms(a.get('ttft_s'))} | "
            f"{_ms(m.get('ttft_s'))} | {_ms(a.get('tpot_s'))} | {_ms(m.get('tpot_s'))} |"
        )
    return rows


def _kernel_rows(runs: dict) -> list[str]:
    from llmplan import catalog

    acc = catalog.accelerator(dc.GPU)
    rows = [
        "| kernel | shape | ms time model | ms measured | measured − model % | achieved | of datasheet peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in dc.KERNEL_CASES:
        r = runs.get(case.id)
        m = (r or {}).get("measured") or {}
        key = "fwd_bwd_s" if case.op.startswith("sdpa-") else "time_s"
        model_s = device_kernels.predicted(case, acc)[key]
        shape = " ".join(f"{k}={v}" for k, v in case.params.items())
        if "flops_per_s" in m or "fwd_bwd_flops_per_s" in m:
            achieved = f"{m.get('flops_per_s', m.get('fwd_bwd_flops_per_s')) / 1e12:.0f} TFLOP/s"
        elif "bytes_per_s" in m:
            achieved = f"{m['bytes_per_s'] / 1e12:.2f} TB/s"
        else:
            achieved = r["status"] if r else "not run"
        eff = "—" if "efficiency" not in m else f"{m['efficiency']:.2f}"
        rows.append(
            f"| `{case.id}` | {shape} | {_ms(model_s)} | {_ms(m.get(key))} | {_pct(m.get(key), model_s)} | "
            f"{achieved} | {eff} |"
        )
    return rows


def _status(runs: dict) -> list[str]:
    if not runs:
        return [
            "**No campaign has run yet.** No GPU was lent to the task that prepared it: the device availability "
            'check answered `"can_start_another": false` and `"not_drawn": "for now this workplace lends no device '
            'machine through the draw, and it may lend again to later tasks; do this task without one"`. '
            "Every measured column below is empty (—) and no number on this page was measured; the analytic and "
            "trace columns are computed on the CPU. tests/test_device_accuracy.py skips, saying so, until results "
            "are committed under `benchmarks/results/device/`.",
        ]
    envs = {
        json.dumps({k: r["environment"].get(k) for k in ("gpu", "nvidia_smi", "torch", "cuda")})
        for r in runs.values()
    }
    dates = sorted(r["environment"]["date"] for r in runs.values())
    lines = [f"{len(runs)} cases measured, {dates[0]} to {dates[-1]}, on:", ""]
    lines += [f"- {e}" for e in sorted(envs)]
    return lines


def render(results: Path = RESULTS, plan_dir: Path = PLAN) -> str:
    runs = measured(load(results))
    plan = load(plan_dir)
    failures = check(runs) if runs else []
    tol = ", ".join(f"{k} ±{100 * v:.0f} %" for k, v in TOLERANCE.items())
    out = [
        "# Accuracy on a real GPU: the measurement campaign",
        "",
        "Generated by `benchmarks/device_report.py` from `benchmarks/results/device/` (measured on the GPU), "
        "`benchmarks/results/device-plan/` (the trace of every case, the campaign's committed `--dry-run`) and "
        "the analytic engine of this tree. Do not edit by hand. Memory in GiB (2^30 bytes); counters as in "
        "design.md: `allocated` (max_memory_allocated), `reserved` (max_memory_reserved), `device` "
        "(cudaMemGetInfo total − free after the step, what nvidia-smi shows).",
        "",
        "## Status",
        "",
        *_status(runs),
        "",
        "## How to run it",
        "",
        "On any machine with one CUDA GPU, from the repository root (bitsandbytes installed for the 8-bit AdamW "
        "and QLoRA cases; a case that cannot run is recorded with its error and the rest go on):",
        "",
        "```",
        f"PYTHONPATH=$PWD/src python benchmarks/device_campaign.py --out {RESULTS.relative_to(ROOT)}",
        "```",
        "",
        "On the H200 machine lent to some tasks (Python 3.12, torch 2.11, transformers, peft, accelerate; no "
        "network), bitsandbytes travels as a wheel. Once, in the repository root: `echo /.whl/ >> "
        ".git/info/exclude` and",
        "",
        "```",
        device_campaign.WHEEL_COMMAND,
        "```",
        "",
        'then one call of the device `run` tool with `carry: [".whl"]` and `timeout_s: 600`:',
        "",
        "```",
        device_campaign.DEVICE_COMMAND,
        "```",
        "",
        "It writes one JSON per case into /tmp/device as it goes (the device returns at most 8 files, so the "
        "folder comes back as `$OUT/device.tgz`, with the log), is resumable (a case whose JSON exists is "
        "skipped; the committed results seed a fresh machine), starts no case after `--budget-s` seconds (420: "
        "the call stays under 8 minutes with the model builds; rerun the same call to finish), and records an "
        "OOM as that case's result. Unpack the tarball into `benchmarks/results/`, run "
        "`python benchmarks/device_report.py`, set `TOLERANCE` in `device_report.py` from what was measured, "
        "and commit. Without a GPU, `python benchmarks/device_campaign.py --dry-run --out DIR` builds and "
        "traces every case on fake tensors (about 4 minutes on 2 cores; the committed run is "
        "`benchmarks/results/device-plan/`, and CI dry-runs a representative subset in "
        "tests/test_device_campaign.py).",
        "",
        "## Tolerances",
        "",
        f"tests/test_device_accuracy.py fails when the analytic estimate leaves a measured peak by more than: {tol} "
        f"(|analytic − measured| / measured), or when a case the GPU could not hold (OOM) was estimated below "
        f"{100 * (1 - UNREACHED):.0f} % of the GPU's memory. These values are **provisional**: they were not "
        "set from measurements (there are none yet) but from the engine's spread against the published "
        "measurements (docs/accuracy.md); the first campaign sets them from what it measured.",
        "",
    ]
    if runs:
        out += [f"Check against the measured cases: {'passes' if not failures else 'FAILS'}.", ""]
        out += [f"- {f}" for f in failures]
        out.append("")
    out += [
        "## Training: one step, `llmplan measure`",
        "",
        "Analytic on the catalog's `h200-sxm-141gb`; trace = the same step on fake tensors; measured = the "
        "second step on the GPU (the first creates the optimizer states). QLoRA is measured with bitsandbytes' "
        "`Linear4bit` and traced with torchao's NF4 (the same bytes); 8-bit AdamW is bitsandbytes' and cannot be "
        "traced. Step times: the time model (`llmplan.estimate.time`, a plain PyTorch loop on one GPU) vs the "
        "measured second step.",
        "",
        *_training_rows(plan, runs),
        "",
        "## Inference: prefill and decode with a KV cache",
        "",
        f"{dc.INFER_PROMPT} prompt tokens per sequence, {dc.INFER_DECODE} decode steps (HF, sdpa, bf16). The "
        "analytic allocated counter includes the cuBLAS workspace, which no traced tensor holds. The roofline "
        "columns are `estimate_inference`'s TTFT and time per output token (formulas/roofline.py); measured TTFT "
        "is the prefill call, TPOT the mean decode step.",
        "",
        *_inference_rows(plan, runs),
        "",
        "## Calibration kernels",
        "",
        "Measured with CUDA events on random data (benchmarks/device_kernels.py for the FLOP and byte "
        "conventions); efficiency = achieved / the catalog's datasheet peak (dense bf16 / fp8 FLOP/s, HBM "
        "bandwidth). The time model's seconds (`device_kernels.predicted`) come from `formulas.compute_time`: "
        "GEMMs at the MAMF fraction times the tile efficiency, attention (forward + backward) at "
        "`flash_efficiency(seq)`, copy and AdamW at HBM_BANDWIDTH_FRACTION; these measurements calibrate "
        "those constants.",
        "",
        *_kernel_rows(runs),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--plan", type=Path, default=PLAN)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    args.out.write_text(render(args.results, args.plan), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
