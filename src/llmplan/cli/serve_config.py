"""`llmplan serve --emit TARGET` (the plan's launch arguments) and `serve --from FILE` (a vLLM YAML or
`vllm serve` line read back into `serve` options), docs/emit.md.

Read-back sets an engine option only where the file's value differs from the engine's default for the GPU and
tp (`llmplan.specs.engines`): an equal value is the default, so that emit → read back prints the emitting
command's estimate byte for byte (tests/test_emit_serving_readback.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from llmplan import catalog
from llmplan.cli._common import gib, write_output
from llmplan.emit import LaunchConfig, ServeTarget, read_error
from llmplan.emit import sglang as sglang_emit
from llmplan.emit import trtllm as trtllm_emit
from llmplan.emit import vllm as vllm_emit
from llmplan.emit.serving import ServePlan
from llmplan.errors import SpecError
from llmplan.estimate.inference import InferenceEstimate
from llmplan.estimate.serving import EngineOverrides, resolved
from llmplan.specs.engines import ServingEngine, engine_defaults
from llmplan.specs.hardware import Accelerator
from llmplan.specs.inference import InferenceJob, KvDtype, QuantFormat

ENGINE_OF = {
    ServeTarget.VLLM: ServingEngine.VLLM,
    ServeTarget.SGLANG: ServingEngine.SGLANG,
    ServeTarget.TRTLLM: ServingEngine.TRTLLM,
}


def engine_model(ref: str) -> str:
    """What the engine loads: a catalog model's hub id, else the reference as given."""
    if catalog.is_model_id(ref):
        return catalog.model_entry(ref).hub_id or ref
    return ref


def write(
    target: ServeTarget,
    *,
    model: str,
    engine: ServingEngine,
    overrides: EngineOverrides,
    job: InferenceJob,
    est: InferenceEstimate,
    acc: Accelerator,
    context: int,
    ep: int,
    prefix_hit_rate: float,
    spec_tokens: int,
    out: Path | None,
) -> None:
    """Write the launch config (to `out` or stdout) and, on stderr, the plan's estimate and the command."""
    eng = resolved(engine_defaults(engine, acc, job.tp), overrides)
    verdict = "fits" if est.fits else "DOES NOT FIT"
    pool = f"; KV pool {est.vllm.num_gpu_blocks:,} blocks" if est.vllm else ""
    summary = (
        f"plan: {est.model} on {job.tp * job.pp} x {est.accelerator}, {job.quant.value} weights, kv "
        f"{job.kv_dtype.value}, context {context}: {gib(est.device_bytes)} GiB per GPU of "
        f"{gib(est.capacity_bytes)} ({verdict}){pool}"
    )
    plan = ServePlan.of(
        model=engine_model(model), engine=eng, job=job, context=context, ep=ep,
        prefix_hit_rate=prefix_hit_rate, spec_tokens=spec_tokens, summary=summary,
    )  # fmt: skip
    cfg = launch(target, plan)
    if out is None:
        sys.stdout.write(cfg.text)
    else:
        write_output(out, cfg.text, "--out")
        print(f"wrote {out}", file=sys.stderr)
    print(summary, file=sys.stderr)
    print(f"launch: {cfg.command}", file=sys.stderr)


def launch(target: ServeTarget, plan: ServePlan) -> LaunchConfig:
    if target is ServeTarget.VLLM:
        return vllm_emit.launch(plan)
    if target is ServeTarget.SGLANG:
        return sglang_emit.launch(plan)
    return trtllm_emit.launch(plan)


def _load(path: Path) -> tuple[dict[str, Any], str, ServingEngine]:
    """The file's settings under vLLM's EngineArgs names (an SGLang line mapped), its name and its engine."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            "--from", f"cannot read {name!r}: {exc.strerror} (allowed: a readable file)"
        ) from None
    except UnicodeDecodeError:
        raise SpecError(
            "--from", f"{name}: not UTF-8 text (allowed: a vLLM YAML or vllm serve line)"
        ) from None
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    line = " ".join(ln.rstrip("\\") for ln in body)
    if body and body[0].lstrip().startswith("vllm "):
        return vllm_emit.read(vllm_emit.parse_command(line, name), name), name, ServingEngine.VLLM
    if body and body[0].lstrip().startswith("python -m sglang"):
        values = sglang_emit.as_vllm(sglang_emit.read_command(line, name), name)
        return values, name, ServingEngine.SGLANG
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("--from", f"{name}: not YAML ({exc}) (allowed: a vLLM YAML)") from None
    if not isinstance(data, dict):
        raise read_error(name, "(top level)", "is not a mapping (allowed: a vLLM --config YAML)")
    return vllm_emit.read(data, name), name, ServingEngine.VLLM


def params(path: Path, given: dict[str, Any], context_of: Any) -> dict[str, Any]:
    """`given` (the `serve` parameters) with the file's values put in, and `from_file` cleared."""
    v, name, engine = _load(path)
    labels = sglang_emit.LABELS if engine is ServingEngine.SGLANG else {}

    def label(k: str) -> str:  # the file's own spelling of a setting in messages
        return labels.get(k, k)

    out: dict[str, Any] = {**given, "from_file": None, "engine": engine}
    tp = out["tp"] = v.get("tensor_parallel_size", given["tp"])
    out["pp"] = v.get("pipeline_parallel_size", given["pp"])
    if v.get("data_parallel_size", 1) != 1:
        raise read_error(
            name, label("data_parallel_size"), f"{v['data_parallel_size']} replicas: the estimate is one (allowed: 1; "
            "--target-rate sizes the replicas)",
        )  # fmt: skip
    if "enable_expert_parallel" in v:
        out["ep"] = tp if v["enable_expert_parallel"] else 1
    if "ep_size" in v:
        out["ep"] = v["ep_size"]
    out |= _formats(v, name, out)
    if "max_model_len" in v:
        loaded = given["input_len"] is not None or given["output_len"] is not None
        need = context_of(given["input_len"], given["output_len"]) if loaded else None
        if need is not None and v["max_model_len"] != need:
            raise read_error(
                name, label("max_model_len"), f"{v['max_model_len']} is not the workload's longest request {need} "
                f"(allowed: {need}, or leave --input-len / --output-len out)",
            )  # fmt: skip
        out["context"] = v["max_model_len"]
    if v.get("enable_prefix_caching") is False and given["prefix_hit_rate"] > 0:
        raise read_error(
            name, label("enable_prefix_caching"), f"turns prefix caching off, but --prefix-hit-rate is {given['prefix_hit_rate']} "
            "(allowed: true, or --prefix-hit-rate 0)",
        )  # fmt: skip
    defaults = engine_defaults(engine, catalog.accelerator(given["gpu"]), tp)
    for key, option, setting in (
        ("gpu_memory_utilization", "gpu_memory_utilization", "memory_fraction"),
        ("block_size", "block_size", "block_size"),
        ("max_num_seqs", "max_num_seqs", "max_num_seqs"),
        ("max_num_batched_tokens", "max_num_batched_tokens", "max_num_batched_tokens"),
        ("enable_chunked_prefill", "chunked_prefill", "chunked_prefill"),
    ):
        if key in v:
            out[option] = None if v[key] == getattr(defaults, setting).value else v[key]
    if "enforce_eager" in v:
        out["enforce_eager"] = v["enforce_eager"]
    graphs = defaults.cuda_graph_max_batch.value
    if v.get("max_cudagraph_capture_size", graphs) != graphs:
        raise read_error(
            name, label("max_cudagraph_capture_size"), f"{v['max_cudagraph_capture_size']} is not modelled (allowed: "
            f"{graphs}, vLLM's default the estimate uses)",
        )  # fmt: skip
    return out


def _formats(v: dict[str, Any], name: str, given: dict[str, Any]) -> dict[str, Any]:
    """--quant, --compute-dtype and --kv-dtype from `dtype`, `quantization` and `kv_cache_dtype`."""
    out: dict[str, Any] = {}
    dtypes = {d: q for q, d in vllm_emit.DTYPES.items()} | {
        "half": QuantFormat.FP16,
        "float": QuantFormat.FP32,
    }
    dtype = v.get("dtype", "auto")
    if dtype != "auto" and dtype not in dtypes:
        raise read_error(name, "dtype", f"{dtype!r} is not read (allowed: auto, {', '.join(dtypes)})")
    quant = v.get("quantization")
    quants = {q: f for f, q in vllm_emit.QUANTIZATION.items()}
    if quant is not None and quant not in quants:
        raise read_error(name, "quantization", f"{quant!r} is not read (allowed: {', '.join(quants)})")
    if quant is not None:
        out["quant"] = quants[quant]
        if dtype != "auto":
            out["compute_dtype"] = dtypes[dtype]
    elif dtype != "auto":
        out["quant"] = dtypes[dtype]
    if "kv_cache_dtype" in v:
        kvs = {d: k for k, d in vllm_emit.KV_DTYPES.items()} | {"fp8_e4m3": KvDtype.FP8}
        kv = v["kv_cache_dtype"]
        if kv not in kvs:
            raise read_error(name, "kv_cache_dtype", f"{kv!r} is not read (allowed: {', '.join(kvs)})")
        out["kv_dtype"] = kvs[kv]
    return out
