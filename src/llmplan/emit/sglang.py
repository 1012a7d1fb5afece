"""`python -m sglang.launch_server` arguments of a serving plan (`sglang.srt.server_args.ServerArgs` fields).

Each value is the one the serving estimate used (`llmplan.emit.serving.ServePlan`, SGLang's defaults in
`llmplan.specs.engines`): `tp_size`, `pp_size`, `dp_size` 1 (one replica), `ep_size`; `mem_fraction_static`,
`max_running_requests`, `chunked_prefill_size` (-1 without chunked prefill), `page_size`, `cuda_graph_max_bs`;
`max_prefill_tokens` (the same token budget: with chunked prefill off it is the one that bounds a prefill
batch); `context_length`; `kv_cache_dtype` (fp8 as fp8_e4m3); `dtype` and `quantization` (fp8 only). SGLang's boolean
arguments are `store_true` flags, so a flag is written when it is on and its absence is the default off:
`--disable-cuda-graph` without CUDA graphs, `--disable-radix-cache` when the workload has no prefix hits (the
estimate has none), never `--enable-mixed-chunk` (SGLang's default, and the estimate's, runs prefill batches
alone).
"""

from __future__ import annotations

import shlex
from typing import Any

from llmplan.emit import EmitError, LaunchConfig, read_error
from llmplan.emit.serving import ServePlan, check_engine
from llmplan.specs.engines import SGLANG_VERSION, ServingEngine
from llmplan.specs.inference import KvDtype, QuantFormat

TARGET = "sglang"

DTYPES = {QuantFormat.BF16: "bfloat16", QuantFormat.FP16: "float16", QuantFormat.FP32: "float32"}
"""Activation dtype -> SGLang `--dtype`."""
KV_DTYPES = {KvDtype.AUTO: "auto", KvDtype.FP8: "fp8_e4m3"}
"""KV dtype -> SGLang `--kv-cache-dtype` (choices auto, fp8_e5m2, fp8_e4m3 in server_args.py)."""
QUANTIZATION = {QuantFormat.FP8: "fp8"}


def args(plan: ServePlan) -> dict[str, Any]:
    """The ServerArgs fields of the plan; booleans are the store_true flags that are on."""
    check_engine(TARGET, ServingEngine.SGLANG, plan)
    if plan.tp % plan.ep:
        raise EmitError(
            TARGET, "--ep", f"{plan.ep} does not divide --tp {plan.tp} (allowed: a divisor of tp)"
        )
    if plan.kv_dtype not in KV_DTYPES:
        allowed = ", ".join(k.value for k in KV_DTYPES)
        raise EmitError(
            TARGET, "--kv-dtype", f"{plan.kv_dtype.value} has no SGLang cache dtype (allowed: {allowed})"
        )
    if not plan.quant.is_float and plan.quant not in QUANTIZATION:
        raise EmitError(
            TARGET,
            "--quant",
            f"{plan.quant.value} is read from the checkpoint's quantization_config (allowed: bf16, fp16, fp32, fp8)",
        )
    tokens = plan.setting("max_num_batched_tokens")
    out: dict[str, Any] = {
        "tp_size": plan.tp,
        "pp_size": plan.pp,
        "dp_size": 1,
        "ep_size": plan.ep,
        "dtype": DTYPES[plan.compute_dtype],
    }
    if plan.quant in QUANTIZATION:
        out["quantization"] = QUANTIZATION[plan.quant]
    out |= {
        "kv_cache_dtype": KV_DTYPES[plan.kv_dtype],
        "context_length": plan.context,
        "mem_fraction_static": plan.setting("memory_fraction"),
        "page_size": plan.setting("block_size"),
        "max_running_requests": plan.setting("max_num_seqs"),
        "chunked_prefill_size": tokens if plan.setting("chunked_prefill") else -1,
        "max_prefill_tokens": tokens,
        "cuda_graph_max_bs": plan.setting("cuda_graph_max_batch"),
        "disable_cuda_graph": not plan.setting("cuda_graphs"),
        "disable_radix_cache": not plan.prefix_caching,
        "enable_mixed_chunk": bool(plan.setting("mixed_batches")),
    }
    return out


def flags(values: dict[str, Any]) -> list[str]:
    """`--key-name value`; a boolean as its flag when on, nothing when off (store_true)."""
    out: list[str] = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out += [flag] if value else []
        else:
            out += [flag, str(value)]
    return out


def launch(plan: ServePlan) -> LaunchConfig:
    """A shell script: the comment header and the launch_server line."""
    command = shlex.join(
        ["python", "-m", "sglang.launch_server", "--model-path", plan.model, *flags(args(plan))]
    )
    header = f"# sglang {SGLANG_VERSION} launch_server (ServerArgs) written by llmplan\n# {plan.summary}\n"
    return LaunchConfig(TARGET, "sglang.sh", f"#!/bin/sh\n{header}{command}\n", command)


_INT = (
    "tp_size",
    "pp_size",
    "dp_size",
    "ep_size",
    "context_length",
    "page_size",
    "max_running_requests",
    "chunked_prefill_size",
    "max_prefill_tokens",
    "cuda_graph_max_bs",
)
_FLOAT = ("mem_fraction_static",)
_STR = ("dtype", "quantization", "kv_cache_dtype", "model_path")
_BOOL = ("disable_cuda_graph", "disable_radix_cache", "enable_mixed_chunk")
KNOWN = (*_INT, *_FLOAT, *_STR, *_BOOL)
"""The ServerArgs fields read back (`model_path` is ignored: the model is `serve`'s argument)."""


def read_command(text: str, path: str) -> dict[str, Any]:
    """A `python -m sglang.launch_server --flag value ...` line as ServerArgs field -> typed value; SpecError
    naming the key that is unknown or not of its type."""
    words = shlex.split(text, comments=True)
    if words[:3] != ["python", "-m", "sglang.launch_server"]:
        raise read_error(path, "(command)", "does not start with `python -m sglang.launch_server`")
    out: dict[str, Any] = {}
    rest, i = words[3:], 0
    while i < len(rest):
        word = rest[i]
        if not word.startswith("--"):
            raise read_error(path, word, "is not a --flag (allowed: --flag value, --flag)")
        name, eq, value = word[2:].partition("=")
        key = name.replace("-", "_")
        if key not in KNOWN:
            raise read_error(path, key, f"is not read (allowed: {', '.join(KNOWN)})")
        if key in _BOOL and not eq:
            out[key] = True
        elif eq:
            out[key] = value
        elif i + 1 >= len(rest):
            raise read_error(path, key, "has no value")
        else:
            out[key], i = rest[i + 1], i + 1
        i += 1
        try:
            if key in _INT:
                out[key] = int(out[key])
            elif key in _FLOAT:
                out[key] = float(out[key])
            elif key in _BOOL and not isinstance(out[key], bool):
                raise ValueError
        except ValueError:
            kind = "an integer" if key in _INT else "a number" if key in _FLOAT else "a store_true flag"
            raise read_error(path, key, f"{out[key]!r} is not {kind}") from None
    return out


LABELS = {
    "data_parallel_size": "dp_size",
    "max_model_len": "context_length",
    "enable_prefix_caching": "disable_radix_cache",
    "max_cudagraph_capture_size": "cuda_graph_max_bs",
}
"""vLLM names `serve --from` checks -> the SGLang argument they came from (for messages)."""


def as_vllm(values: dict[str, Any], path: str) -> dict[str, Any]:
    """The same settings under the vLLM EngineArgs names `serve --from` maps to options (ep_size kept)."""
    if values.get("enable_mixed_chunk"):
        raise read_error(path, "enable_mixed_chunk", "is not modelled (allowed: off, SGLang's default)")
    kv = {"fp8_e4m3": "fp8", "auto": "auto"}
    if "kv_cache_dtype" in values and values["kv_cache_dtype"] not in kv:
        raise read_error(
            path, "kv_cache_dtype", f"{values['kv_cache_dtype']!r} is not read (allowed: auto, fp8_e4m3)"
        )
    names = {
        "tp_size": "tensor_parallel_size",
        "pp_size": "pipeline_parallel_size",
        "dp_size": "data_parallel_size",
        "ep_size": "ep_size",
        "dtype": "dtype",
        "quantization": "quantization",
        "context_length": "max_model_len",
        "mem_fraction_static": "gpu_memory_utilization",
        "page_size": "block_size",
        "max_running_requests": "max_num_seqs",
        "cuda_graph_max_bs": "max_cudagraph_capture_size",
    }
    out = {names[k]: v for k, v in values.items() if k in names}
    if "kv_cache_dtype" in values:
        out["kv_cache_dtype"] = kv[values["kv_cache_dtype"]]
    size, budget = values.get("chunked_prefill_size"), values.get("max_prefill_tokens")
    if size is not None:
        out["enable_chunked_prefill"] = size > 0
    if size is not None and size > 0 and budget is not None and budget != size:
        raise read_error(
            path, "max_prefill_tokens", f"{budget} differs from chunked_prefill_size {size}: the estimate has one "
            f"token budget per step (allowed: {size})",
        )  # fmt: skip
    tokens = size if size is not None and size > 0 else budget
    if tokens is not None:
        out["max_num_batched_tokens"] = tokens
    out["enforce_eager"] = bool(values.get("disable_cuda_graph", False))
    out["enable_prefix_caching"] = not values.get("disable_radix_cache", False)
    return out
