"""Serving accuracy: llmplan's scheduler simulation vs published TTFT / TPOT, with the roofline and GenZ beside it.

Rows: the fully specified serving rows of shared/data/throughput.jsonl (aiconfigurator's silicon points, one
TTFT row and one TPOT row per run) and the batch-1 decode rows of shared/data/measured.jsonl (gpt-fast). They
are turned into `src/llmplan/validate/serving_cases.json` by `--extract` (the mapping of each field is in
`extract`); without it the checked-in cases are used, so the page can be regenerated without shared/.

Columns: llmplan (`llmplan.validate.serving.predict`), the roofline baseline (`roofline`: what `llmplan serve`
printed before the scheduler existed) and GenZ (`genz-llm` 0.0.16 `prefill_moddeling` / `decode_moddeling` on
one batch of `concurrency` requests, efficiency 1, the same GPU figures as llmplan's catalog; install it with
`pip install 'llmplan[peers]'`; the column is left out when it is not installed). Error = predicted / measured
− 1.

Run: python benchmarks/serving_accuracy.py [--extract] [--fast] — writes docs/accuracy-serving.md and
benchmarks/results/serving_accuracy.json (with --fast, only the results file of the CI subset).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from llmplan import catalog
from llmplan.validate.serving import NUM_REQUESTS, ServingCase, cases, predict, roofline

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT / "shared"
)
"""shared/data of the checkout's workspace (../shared from the main checkout, ../../shared from a worktree)."""
CASES = ROOT / "src" / "llmplan" / "validate" / "serving_cases.json"
FAST = 12
"""CI subset: every FAST-th case (spread over models, engines, tp and loads)."""
MODELS = {
    "Qwen/Qwen3-32B": "qwen3-32b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "Llama-2-7B": "llama-2-7b",
    "Llama-2-70B": "llama-2-70b",
    "Llama-3.1-8B": "llama-3.1-8b",
    "Llama-3.1-70B": "llama-3.1-70b",
    "Llama-3.1-405B": "llama-3.1-405b",
}
GPUS = {"H100 SXM 80GB": "h100-sxm-80gb", "H200 SXM 141GB": "h200-sxm-141gb"}


def extract() -> list[dict[str, object]]:
    """serving_cases.json entries from shared/data (module docstring)."""
    out: list[dict[str, object]] = []
    pairs: dict[str, dict[str, dict]] = {}
    for line in (SHARED / "throughput.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["metric"] in ("ttft_ms", "tpot_ms") and row["fully_specified"]:
            pairs.setdefault(row["quote"], {})[row["metric"]] = row
    for pair in pairs.values():
        ttft, tpot = pair["ttft_ms"], pair["tpot_ms"]
        extra = ttft["extra"]
        engine, _, version = ttft["framework"].partition(" ")
        out.append(
            {
                "id": ttft["id"].removesuffix("-ttft_ms"),
                "source": ttft["source"],
                "model": MODELS[ttft["model"]],
                "gpu": GPUS[ttft["gpu"]],
                "engine": engine,
                "engine_version": version.strip() or "not stated",
                "quant": "fp8" if ttft["precision"].startswith("fp8") else "bf16",
                "kv_dtype": "fp8" if engine == "trtllm" and ttft["precision"].startswith("fp8") else "auto",
                "tp": ttft["tp"],
                "input_len": extra["isl"],
                "output_len": extra["osl"],
                "concurrency": extra["concurrency"] or ttft["global_batch"],
                "ttft_ms": ttft["value"],
                "tpot_ms": tpot["value"],
            }
        )
    for line in (SHARED / "measured.jsonl").read_text().splitlines():
        row = json.loads(line)
        if not row["id"].startswith("gptfast-"):
            continue
        precision = row["precision"]
        quant, group = ("bf16", 128)
        if precision.startswith("int8"):
            quant = "int8"
        elif precision.startswith("int4"):
            quant, group = "gptq-int4", 32
        tp = int(row["parallelism"].split()[-1]) if "tensor parallel" in row["parallelism"] else 1
        out.append(
            {
                "id": row["id"],
                "source": row["source"],
                "model": MODELS[row["model"]],
                "gpu": "a100-sxm-80gb",
                "engine": "vllm",
                "engine_version": "gpt-fast (torch.compile + CUDA graphs; vLLM's defaults stand in)",
                "quant": quant,
                "kv_dtype": "auto",
                "tp": tp,
                "input_len": 5,
                "output_len": 200,
                "concurrency": 1,
                "ttft_ms": None,
                "tpot_ms": 1e3 / row["value"],
                "group_size": group,
            }
        )
    return out


def genz(case: ServingCase) -> tuple[float, float] | None:
    """GenZ's TTFT and TPOT (ms) for one batch of `concurrency` requests, or None when it cannot run it."""
    try:
        from GenZ import decode_moddeling, prefill_moddeling
        from GenZ.Models.default_models import MODEL_DICT, ModelConfig
    except ImportError:
        return None
    if MODEL_DICT.get_model("Qwen/Qwen3-32B") is None:
        MODEL_DICT.add_model(  # the catalog's config.json of Qwen/Qwen3-32B
            ModelConfig(
                model="Qwen/Qwen3-32B", hidden_size=5120, num_attention_heads=64, num_key_value_heads=8,
                head_dim=128, num_ffi=2, intermediate_size=25600, num_decoder_layers=64, vocab_size=151936,
                max_model_len=40960, hidden_act="silu",
            )
        )  # fmt: skip
    names = {"qwen3-32b": "Qwen/Qwen3-32B", "llama-3.1-8b": "meta-llama/Llama-3.1-8B"}
    names |= {"llama-3.1-70b": "meta-llama/Llama-3.1-70B", "llama-2-7b": "meta-llama/Llama-2-7B"}
    name = names.get(case.model)
    if name is None or MODEL_DICT.get_model(name) is None:
        return None
    acc = catalog.accelerator(case.gpu)
    system = {
        "Flops": acc.peak_flops("bf16") / 1e12,
        "Memory_size": acc.memory_bytes / 2**30,
        "Memory_BW": acc.memory_bandwidth_bytes_per_s / 1e9,
        "ICN": acc.intra_node.one_way_bytes_per_s / 1e9 if acc.intra_node else 32,
        "real_values": True,
    }
    bits = "fp8" if case.quant.value == "fp8" else ("int8" if case.quant.value == "int8" else "bf16")
    kw = {"model": name, "batch_size": case.concurrency, "system_name": system, "bits": bits}
    try:
        pre = prefill_moddeling(input_tokens=case.input_len, tensor_parallel=case.tp, **kw)
        dec = decode_moddeling(
            input_tokens=case.input_len + case.output_len // 2, output_tokens=0, tensor_parallel=case.tp, **kw
        )
    except Exception as exc:  # GenZ raises on layouts it does not model; the row shows "n/a"
        print(f"GenZ failed on {case.id}: {exc}", file=sys.stderr)
        return None
    return float(pre["Latency"]), float(dec["Latency"])


def _err(pred: float | None, meas: float | None) -> float | None:
    return None if pred is None or meas is None else pred / meas - 1


def _stats(errors: list[float | None]) -> dict[str, float | int]:
    vals = sorted(abs(e) for e in errors if e is not None)
    if not vals:
        return {"n": 0}
    p90 = vals[min(len(vals) - 1, round(0.9 * (len(vals) - 1)))]
    return {"n": len(vals), "median": statistics.median(vals), "p90": p90}


def run(selected: list[ServingCase]) -> dict[str, object]:
    rows = []
    t0 = time.perf_counter()
    for case in selected:
        ours = predict(case)
        base = roofline(case)
        peer = genz(case)
        rows.append(
            {
                "id": case.id,
                "model": case.model,
                "gpu": case.gpu,
                "engine": f"{case.engine.value} {case.engine_version}",
                "tp": case.tp,
                "isl": case.input_len,
                "osl": case.output_len,
                "concurrency": case.concurrency,
                "ttft_ms": {"measured": case.ttft_ms, "llmplan": ours.ttft_ms, "roofline": base.ttft_ms,
                            "genz": peer[0] if peer else None},
                "tpot_ms": {"measured": case.tpot_ms, "llmplan": ours.tpot_ms, "roofline": base.tpot_ms,
                            "genz": peer[1] if peer else None},
            }
        )  # fmt: skip
    summary: dict[str, object] = {}
    for metric in ("ttft_ms", "tpot_ms"):
        for who in ("llmplan", "roofline", "genz"):
            errs = [_err(r[metric][who], r[metric]["measured"]) for r in rows]  # type: ignore[index]
            summary[f"{metric}.{who}"] = _stats(errs)
    return {
        "rows": rows,
        "summary": summary,
        "num_requests": NUM_REQUESTS,
        "seconds": time.perf_counter() - t0,
    }


def _fmt(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def page(result: dict[str, object]) -> str:
    s = result["summary"]
    lines = [
        "# Serving accuracy: TTFT and TPOT under load",
        "",
        "Generated by `python benchmarks/serving_accuracy.py` (do not edit). llmplan = the engine's scheduler",
        "simulated (`llmplan serve ... --input-len --output-len --concurrency`); roofline = the single-batch",
        "roofline `llmplan serve` printed before (prefill of all `concurrency` prompts at once, decode of the whole",
        "batch); GenZ = `genz-llm` 0.0.16 on one batch of `concurrency` requests. Error = predicted / measured − 1.",
        f"Each run simulates {result['num_requests']} requests, closed loop at the row's concurrency.",
        "Assumptions for the rows: `src/llmplan/validate/serving.py` (docstring).",
        "",
        "## Summary (|error|)",
        "",
        "| metric | rows | llmplan median | llmplan p90 | roofline median | roofline p90 | GenZ median | GenZ p90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for metric in ("ttft_ms", "tpot_ms"):
        ours, base, peer = (s[f"{metric}.{w}"] for w in ("llmplan", "roofline", "genz"))  # type: ignore[index]
        cells = [metric.removesuffix("_ms").upper(), str(ours.get("n", 0))]
        for d in (ours, base, peer):
            cells += [
                f"{100 * d['median']:.1f} %" if d.get("n") else "n/a",
                f"{100 * d['p90']:.1f} %" if d.get("n") else "n/a",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Acceptance of issue 11: median |error| <= 15 % and p90 <= 35 % for TTFT and TPOT on these rows.",
        "",
        "## Rows",
        "",
        "| case | engine | GPU | tp | ISL/OSL | conc. | TTFT meas. | llmplan | roofline | GenZ | TPOT meas. | llmplan | roofline | GenZ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:  # type: ignore[union-attr]
        t, p = r["ttft_ms"], r["tpot_ms"]
        lines.append(
            f"| {r['id']} ({r['model']}) | {r['engine']} | {r['gpu']} | {r['tp']} | {r['isl']}/{r['osl']} | "
            f"{r['concurrency']} | {_fmt(t['measured'])} | {_fmt(t['llmplan'])} | {_fmt(t['roofline'])} | "
            f"{_fmt(t['genz'])} | {_fmt(p['measured'], 2)} | {_fmt(p['llmplan'], 2)} | {_fmt(p['roofline'], 2)} | "
            f"{_fmt(p['genz'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extract", action="store_true", help="rebuild serving_cases.json from shared/data")
    parser.add_argument("--fast", action="store_true", help=f"every {FAST}th case only (the CI subset)")
    args = parser.parse_args()
    if args.extract:
        CASES.write_text(json.dumps({"cases": extract()}, indent=1) + "\n")
        cases.cache_clear()
    selected = list(cases())[:: FAST if args.fast else 1]
    result = run(selected)
    out = (
        ROOT
        / "benchmarks"
        / "results"
        / ("serving_accuracy_fast.json" if args.fast else "serving_accuracy.json")
    )
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.fast:
        (ROOT / "docs" / "accuracy-serving.md").write_text(page(result))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
