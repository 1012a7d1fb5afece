"""`python -m sglang.launch_server` arguments of a serving plan (`sglang.srt.server_args.ServerArgs` fields).

Each value is the one the serving estimate used (`llmplan.emit.serving.ServePlan`, SGLang's defaults in
`llmplan.specs.engines`): `tp_size`, `pp_size`, `dp_size` 1 (one replica), `ep_size`; `mem_fraction_static`,
`max_running_requests`, `chunked_prefill_size` (-1 without chunked prefill), `page_size`, `cuda_graph_max_bs`;
`context_length`; `kv_cache_dtype` (fp8 as fp8_e4m3); `dtype` and `quantization` (fp8 only). SGLang's boolean
arguments are `store_true` flags, so a flag is written when it is on and its absence is the default off:
`--disable-cuda-graph` without CUDA graphs, `--disable-radix-cache` when the workload has no prefix hits (the
estimate has none), never `--enable-mixed-chunk` (SGLang's default, and the estimate's, runs prefill batches
alone).
"""

from __future__ import annotations

import shlex
from typing import Any

from llmplan.emit import EmitError, LaunchConfig
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
        "chunked_prefill_size": plan.setting("max_num_batched_tokens")
        if plan.setting("chunked_prefill")
        else -1,
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
