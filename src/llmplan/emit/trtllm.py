"""`trtllm-serve` options of a serving plan and its `--config` (extra_llm_api_options) YAML.

trtllm-serve (tensorrt_llm/commands/serve.py) builds the LLM-API arguments from its options and then lets the
YAML override them (`update_llm_args_with_extra_dict`); its capacity scheduler is GUARANTEED_NO_EVICT, the
admission the estimate models for TensorRT-LLM (`llmplan.specs.engines`). Written, each from the plan
(`llmplan.emit.serving.ServePlan`):
- options: `--backend pytorch`, `--tp_size`, `--pp_size`, `--ep_size` (moe_expert_parallel_size), `--max_batch_size`
  (max_num_seqs), `--max_num_tokens` (max_num_batched_tokens), `--max_seq_len` (the context),
  `--kv_cache_free_gpu_memory_fraction`, `--enable_chunked_prefill` when on (a flag: its absence is off);
- YAML: `dtype` (the activation dtype), `enable_chunked_prefill`, `kv_cache_config` (`free_gpu_memory_fraction`,
  `tokens_per_block`, `dtype` auto / fp8, `enable_block_reuse` on only with prefix hits), `cuda_graph_config`
  (`max_batch_size`, the estimate's largest graph batch; null without CUDA graphs).
Refused: weight formats (TensorRT-LLM's PyTorch backend reads fp8 / int4 from a quantized checkpoint, not from an
option), `--ep` not dividing tp, KV dtypes other than auto / fp8, another engine's plan, speculative decoding.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from llmplan.emit import EmitError, LaunchConfig
from llmplan.emit.serving import ServePlan, check_engine
from llmplan.specs.engines import TRTLLM_VERSION, ServingEngine
from llmplan.specs.inference import KvDtype, QuantFormat

TARGET = "trtllm"
CONFIG_FILE = "extra_llm_api_options.yaml"

DTYPES = {QuantFormat.BF16: "bfloat16", QuantFormat.FP16: "float16", QuantFormat.FP32: "float32"}
KV_DTYPES = {KvDtype.AUTO: "auto", KvDtype.FP8: "fp8"}
"""KV dtype -> `KvCacheConfig.dtype` (PyTorch backend)."""


def check(plan: ServePlan) -> None:
    check_engine(TARGET, ServingEngine.TRTLLM, plan)
    if plan.tp % plan.ep:
        raise EmitError(
            TARGET, "--ep", f"{plan.ep} does not divide --tp {plan.tp} (allowed: a divisor of tp)"
        )
    if plan.kv_dtype not in KV_DTYPES:
        allowed = ", ".join(k.value for k in KV_DTYPES)
        raise EmitError(TARGET, "--kv-dtype", f"{plan.kv_dtype.value} (allowed: {allowed})")
    if not plan.quant.is_float:
        raise EmitError(
            TARGET,
            "--quant",
            f"{plan.quant.value}: TensorRT-LLM reads quantized weights from a quantized checkpoint (ModelOpt), "
            "not from an option (allowed: bf16, fp16, fp32)",
        )


def options(plan: ServePlan) -> dict[str, Any]:
    """The trtllm-serve options (dest names); the chunked-prefill flag is a boolean."""
    check(plan)
    return {
        "backend": "pytorch",
        "tp_size": plan.tp,
        "pp_size": plan.pp,
        "ep_size": plan.ep,
        "max_batch_size": plan.setting("max_num_seqs"),
        "max_num_tokens": plan.setting("max_num_batched_tokens"),
        "max_seq_len": plan.context,
        "kv_cache_free_gpu_memory_fraction": plan.setting("memory_fraction"),
        "enable_chunked_prefill": bool(plan.setting("chunked_prefill")),
    }


def extra_options(plan: ServePlan) -> dict[str, Any]:
    """The LLM-API fields of the --config YAML."""
    check(plan)
    graphs = {"max_batch_size": plan.setting("cuda_graph_max_batch")} if plan.setting("cuda_graphs") else None
    return {
        "dtype": DTYPES[plan.compute_dtype],
        "enable_chunked_prefill": bool(plan.setting("chunked_prefill")),
        "kv_cache_config": {
            "free_gpu_memory_fraction": plan.setting("memory_fraction"),
            "tokens_per_block": plan.setting("block_size"),
            "dtype": KV_DTYPES[plan.kv_dtype],
            "enable_block_reuse": plan.prefix_caching,
        },
        "cuda_graph_config": graphs,
    }


def launch(plan: ServePlan) -> LaunchConfig:
    words = ["trtllm-serve", plan.model]
    for key, value in options(plan).items():
        if isinstance(value, bool):
            words += [f"--{key}"] if value else []
        else:
            words += [f"--{key}", str(value)]
    words += ["--config", CONFIG_FILE]
    header = f"# trtllm-serve --config (TensorRT-LLM {TRTLLM_VERSION} LLM API) written by llmplan\n# {plan.summary}\n"
    text = header + yaml.safe_dump(extra_options(plan), sort_keys=False)
    return LaunchConfig(TARGET, CONFIG_FILE, text, shlex.join(words))
