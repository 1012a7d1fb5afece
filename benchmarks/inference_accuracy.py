"""Roofline speed vs the published inference timings in ../shared/data/measured.jsonl.

For each decode / prefill timing row: the model (catalog id, or a stated stand-in), the accelerator, the
weight format and the layout are mapped to an InferenceJob; `estimate_inference` predicts tokens/s or ms and
the error is (predicted - measured) / measured. Constants are not tuned to these rows (formulas/roofline.py).

Writes docs/accuracy-inference.md. Run: /work/venv/bin/python benchmarks/inference_accuracy.py
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from llmplan import catalog
from llmplan.estimate.inference import estimate_inference
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/measured.jsonl")
OUT = ROOT / "docs" / "accuracy-inference.md"


@dataclass(frozen=True)
class Mapping:
    model: str
    gpu: str
    quant: QuantFormat
    compute: QuantFormat
    context: int
    prompt: int
    tp: int = 1
    pp: int = 1
    group_size: int = 128
    stand_in: str = ""


GPTFAST = "gpt-fast: prompt 5 tokens + 200 generated, torch.compile + CUDA graphs, A100 power-capped at 330 W"
_BF16, _FP16, _FP32 = QuantFormat.BF16, QuantFormat.FP16, QuantFormat.FP32

MAP: dict[str, Mapping] = {
    "gptfast-llama2-7b-bf16": Mapping("llama-2-7b", "a100-sxm-80gb", _BF16, _BF16, 205, 5),
    "gptfast-llama2-7b-int8": Mapping("llama-2-7b", "a100-sxm-80gb", QuantFormat.INT8, _BF16, 205, 5),
    "gptfast-llama2-7b-int4": Mapping(
        "llama-2-7b",
        "a100-sxm-80gb",
        QuantFormat.GPTQ_INT4,
        _BF16,
        205,
        5,
        group_size=32,
        stand_in="gpt-fast int4 g32 counted as GPTQ g32 layout",
    ),
    "gptfast-llama2-70b-int8": Mapping("llama-2-70b", "a100-sxm-80gb", QuantFormat.INT8, _BF16, 205, 5),
    "gptfast-llama31-8b-bf16": Mapping("llama-3.1-8b", "a100-sxm-80gb", _BF16, _BF16, 205, 5),
    "gptfast-llama31-70b-int8": Mapping("llama-3.1-70b", "a100-sxm-80gb", QuantFormat.INT8, _BF16, 205, 5),
    "gptfast-llama2-70b-bf16-tp8": Mapping("llama-2-70b", "a100-sxm-80gb", _BF16, _BF16, 205, 5, tp=8),
    "gptfast-llama31-8b-bf16-tp8": Mapping("llama-3.1-8b", "a100-sxm-80gb", _BF16, _BF16, 205, 5, tp=8),
    "gptfast-llama31-70b-bf16-tp2": Mapping("llama-3.1-70b", "a100-sxm-80gb", _BF16, _BF16, 205, 5, tp=2),
    "gptfast-llama31-70b-bf16-tp8": Mapping("llama-3.1-70b", "a100-sxm-80gb", _BF16, _BF16, 205, 5, tp=8),
    "gptfast-llama31-405b-int8-tp8": Mapping(
        "llama-3.1-405b", "a100-sxm-80gb", QuantFormat.INT8, _BF16, 205, 5, tp=8
    ),
    "accelerate-bmi-gptj6b-fp16-latency": Mapping(
        "gpt-j-6b",
        "quadro-rtx-6000",
        _FP16,
        _FP16,
        64,
        16,
        pp=2,
        stand_in="Titan RTX = Quadro RTX 6000 (same TU102, 672 GB/s)",
    ),
    "accelerate-bmi-gptj6b-fp32-latency": Mapping(
        "gpt-j-6b",
        "quadro-rtx-6000",
        _FP32,
        _FP32,
        64,
        16,
        pp=2,
        stand_in="Titan RTX = Quadro RTX 6000 (same TU102, 672 GB/s)",
    ),
    "accelerate-bmi-neox20b-fp16-latency": Mapping(
        "gpt-neox-20b",
        "quadro-rtx-6000",
        _FP16,
        _FP16,
        64,
        16,
        pp=2,
        stand_in="Titan RTX = Quadro RTX 6000 (same TU102, 672 GB/s)",
    ),
    "ft13b-tp1-prefill": Mapping(
        "opt-13b",
        "a100-sxm-40gb",
        _FP16,
        _FP16,
        512,
        512,
        stand_in="FasterTransformer 'test-13b' modelled as OPT-13B (40 x 5120)",
    ),
    "ft13b-tp1-decode": Mapping(
        "opt-13b",
        "a100-sxm-40gb",
        _FP16,
        _FP16,
        522,
        512,
        stand_in="FasterTransformer 'test-13b' modelled as OPT-13B (40 x 5120)",
    ),
    "ft13b-tp2-prefill": Mapping(
        "opt-13b",
        "a100-sxm-40gb",
        _FP16,
        _FP16,
        512,
        512,
        tp=2,
        stand_in="FasterTransformer 'test-13b' modelled as OPT-13B (40 x 5120)",
    ),
    "ft13b-tp2-decode": Mapping(
        "opt-13b",
        "a100-sxm-40gb",
        _FP16,
        _FP16,
        522,
        512,
        tp=2,
        stand_in="FasterTransformer 'test-13b' modelled as OPT-13B (40 x 5120)",
    ),
}


@dataclass(frozen=True)
class MemoryMapping:
    model: str
    quant: QuantFormat
    compute: QuantFormat
    context: int
    prompt: int
    scale: float
    """Bytes per unit of the row (2**30 for GiB, 1e9 for GB)."""
    what: str
    """allocated: the estimate's allocated counter; weights: weight bytes only; pp: sum over `pp` GPUs."""
    pp: int = 1
    double_quant: bool = True
    stand_in: str = ""


_GIB = float(2**30)
_OCTO = "bigcode/octocoder = StarCoder architecture (catalog starcoder); ~20-token prompt + 60 new"
_QWEN = "Qwen profile.py, generate 2048 tokens from a 1-token prompt; 'GB' read as 1e9 bytes"
MEMORY: dict[str, MemoryMapping] = {
    "hfblog-octocoder-bf16-short": MemoryMapping(
        "starcoder", _BF16, _BF16, 80, 20, _GIB, "allocated", stand_in=_OCTO
    ),
    "hfblog-octocoder-int8-short": MemoryMapping(
        "starcoder", QuantFormat.INT8, _FP16, 80, 20, _GIB, "allocated", stand_in=_OCTO
    ),
    "hfblog-octocoder-nf4-short": MemoryMapping(
        "starcoder",
        QuantFormat.NF4,
        _FP16,
        80,
        20,
        _GIB,
        "allocated",
        double_quant=False,
        stand_in=_OCTO + "; bnb fp4 without double quant (same bytes as nf4)",
    ),
    "qwen1-infer-7b-bf16-mem": MemoryMapping(
        "qwen-7b", _BF16, _BF16, 2049, 1, 1e9, "allocated", stand_in=_QWEN
    ),
    "qwen1-infer-7b-int4-mem": MemoryMapping(
        "qwen-7b", QuantFormat.GPTQ_INT4, _FP16, 2049, 1, 1e9, "allocated", stand_in=_QWEN
    ),
    "qwen1-infer-14b-bf16-mem": MemoryMapping(
        "qwen-14b", _BF16, _BF16, 2049, 1, 1e9, "allocated", stand_in=_QWEN
    ),
    "qwen1-infer-72b-bf16-mem": MemoryMapping(
        "qwen-72b",
        _BF16,
        _BF16,
        2049,
        1,
        1e9,
        "pp",
        pp=2,
        stand_in=_QWEN + "; 2 GPUs (device_map), sum of both",
    ),
    "qwen1-infer-72b-int4-mem": MemoryMapping(
        "qwen-72b", QuantFormat.GPTQ_INT4, _FP16, 2049, 1, 1e9, "allocated", stand_in=_QWEN
    ),
    "accelerate-bmi-gptj6b-fp16-mem": MemoryMapping("gpt-j-6b", _FP16, _FP16, 1, 1, 1e9, "weights"),
    "accelerate-bmi-gptj6b-fp32-mem": MemoryMapping("gpt-j-6b", _FP32, _FP32, 1, 1, 1e9, "weights"),
    "accelerate-bmi-neox20b-fp16-mem": MemoryMapping("gpt-neox-20b", _FP16, _FP16, 1, 1, 1e9, "weights"),
    "qlora-guanaco65b-size": MemoryMapping("llama-65b", QuantFormat.NF4, _BF16, 1, 1, 1e9, "weights"),
}


def predict_memory(m: MemoryMapping) -> float:
    job = InferenceJob(
        quant=m.quant,
        compute_dtype=m.compute,
        context_len=m.context,
        prompt_len=m.prompt,
        pp=m.pp,
        nf4_double_quant=m.double_quant,
    )
    est = estimate_inference(
        load_model(m.model), job, Cluster(accelerator=catalog.accelerator("a100-sxm-80gb"))
    )
    if m.what == "weights":
        value = est.memory.weights.total * m.pp
    else:
        value = est.memory.allocated_bytes * m.pp
    return value / m.scale


SKIPPED = {
    "accelerate-bmi-opt30b-fp16-latency": "OPT-30B offloads 14 GB to the CPU: the roofline has no offload term",
    "accelerate-bmi-t0pp-fp32-latency": "T0pp is an encoder-decoder (T5): not a decoder-only ModelSpec",
    "accelerate-bmi-t0pp-fp32-mem": "T0pp is an encoder-decoder (T5): not a decoder-only ModelSpec",
    "accelerate-bmi-opt30b-fp16-mem": "OPT-30B is split between GPUs and CPU (14.1 GB offloaded)",
    "hfblog-octocoder-bf16-longprompt-eager": "prompt length not printed in the source",
    "hfblog-octocoder-bf16-longprompt-flash": "prompt length not printed in the source",
    "hf-perfdoc-bertlarge-weights-only": "BERT is an encoder: not a decoder-only ModelSpec",
}


@dataclass(frozen=True)
class Row:
    id: str
    metric: str
    measured: float
    predicted: float
    unit: str
    note: str

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured


def predict(m: Mapping, metric: str) -> float:
    acc = catalog.accelerator(m.gpu)
    job = InferenceJob(
        quant=m.quant,
        compute_dtype=m.compute,
        context_len=m.context,
        prompt_len=m.prompt,
        tp=m.tp,
        pp=m.pp,
        group_size=m.group_size,
    )
    speed = estimate_inference(load_model(m.model), job, Cluster(accelerator=acc, gpus_per_node=8)).speed
    if metric == "decode_tokens_per_s":
        return speed.tokens_per_s_per_sequence
    if metric == "decode_s_per_token":
        return speed.tpot_s
    if metric == "decode_latency_ms_per_token":
        return speed.tpot_s * 1e3
    if metric == "prefill_latency_ms":
        return speed.ttft_s * 1e3
    raise ValueError(metric)


def _memory_skipped() -> list[tuple[str, str]]:
    return [(i, why) for i, why in SKIPPED.items() if i.endswith(("-mem", "eager", "flash", "weights-only"))]


def main() -> None:
    rows: list[Row] = []
    skipped: list[tuple[str, str]] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("task") != "inference" or rec["metric"] not in {
            "decode_tokens_per_s",
            "decode_s_per_token",
            "decode_latency_ms_per_token",
            "prefill_latency_ms",
        }:
            continue
        if rec["id"] in SKIPPED:
            skipped.append((rec["id"], SKIPPED[rec["id"]]))
            continue
        m = MAP[rec["id"]]
        note = "; ".join(x for x in (m.stand_in, GPTFAST if rec["id"].startswith("gptfast") else "") if x)
        rows.append(
            Row(rec["id"], rec["metric"], float(rec["value"]), predict(m, rec["metric"]), rec["unit"], note)
        )
    memory_rows: list[Row] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("task") != "inference" or rec["id"] not in MEMORY:
            continue
        m = MEMORY[rec["id"]]
        note = f"{m.what}; {m.stand_in}" if m.stand_in else m.what
        memory_rows.append(
            Row(rec["id"], rec["metric"], float(rec["value"]), predict_memory(m), rec["unit"], note)
        )
    errors = [abs(r.error) for r in rows]
    memory_errors = [abs(r.error) for r in memory_rows]
    lines = [
        "# Inference speed: roofline vs published measurements",
        "",
        "Generated by `benchmarks/inference_accuracy.py` from `../shared/data/measured.jsonl`. Error = (predicted −",
        "measured) / measured. The roofline's constants (formulas/roofline.py: HBM fraction 0.8, prefill 0.6 of",
        "peak, all-reduce latency 10 µs) are set from their cited sources, not fitted to these rows.",
        "",
        f"Rows: {len(rows)}; median |error| {100 * statistics.median(errors):.0f} %; "
        f"mean |error| {100 * statistics.mean(errors):.0f} %; max |error| {100 * max(errors):.0f} %.",
        "",
        "| id | metric | measured | predicted | error | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.id} | {r.metric} ({r.unit}) | {r.measured:g} | {r.predicted:.4g} | "
            f"{100 * r.error:+.0f} % | {r.note} |"
        )
    lines += [
        "",
        "## Memory rows",
        "",
        f"Rows: {len(memory_rows)}; median |error| {100 * statistics.median(memory_errors):.1f} %; "
        f"max |error| {100 * max(memory_errors):.1f} %. `allocated` rows compare the estimate's allocated counter",
        "(torch.cuda.max_memory_allocated); `weights` rows the weight bytes alone.",
        "",
        "| id | metric | measured | predicted | error | compared / notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in memory_rows:
        lines.append(
            f"| {r.id} | {r.metric} ({r.unit}) | {r.measured:g} | {r.predicted:.4g} | "
            f"{100 * r.error:+.1f} % | {r.note} |"
        )
    lines += ["", "Rows left out:", ""] + [f"- {i}: {why}" for i, why in skipped + _memory_skipped()]
    lines += [
        "",
        "## Reading the errors",
        "",
        "- Single-GPU batch-1 decode (gpt-fast bf16 / int8 / int4) is the roofline's home ground: the A100 in those",
        "  runs was power-capped at 330 W, and gpt-fast reports 0.42-0.69 of the 2039 GB/s peak achieved, below the",
        "  0.8 the constant assumes — predictions run fast by that ratio. int4 kernels reach the lowest fraction",
        "  (dequantization costs compute), so int4 is the most optimistic row.",
        "- Tensor parallel at batch 1 is latency-bound: 2 all-reduces per layer (64-160 per token) cost more than",
        "  the 10 µs each assumed when the per-GPU weight slice is small (Llama-3.1-8B tp8: 2 GB per GPU); the",
        "  roofline over-predicts tokens/s there. A fitted latency would hide this; it stays visible instead.",
        "- accelerate's `device_map` rows run eager PyTorch on Turing cards through a naive 2-GPU layer split: per",
        "  token they pay Python and kernel-launch overhead the roofline does not model (it is a lower bound on",
        "  time for eager engines).",
        "- FasterTransformer's 13B prefill at 512 tokens sits at 0.6-0.7 of peak, in line with the prefill constant.",
        "- Memory: the bf16 / int8 allocated rows agree within 3 %; weights-only rows within 4 % (the sources'",
        "  'GB' may be 2^30). Not explained yet: Qwen-7B GPTQ (-15 %; AutoGPTQ's kernels likely allocate",
        "  dequantization / exllama buffers beyond the weights), octocoder 4-bit (-9 %), and the QLoRA paper's",
        "  65B footprint (-16 %; that column probably includes the adapters and runtime, not weights alone).",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(line for line in lines if line.startswith(("Rows:", "| "))))


if __name__ == "__main__":
    main()
