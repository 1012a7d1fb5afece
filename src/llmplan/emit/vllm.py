"""`vllm serve` arguments of a serving plan (a YAML for `vllm serve MODEL --config FILE`, and the same
arguments as one command line), and the reverse: such a YAML or command line read back into `serve` options.

Keys are `vllm.engine.arg_utils.EngineArgs` fields, spelled with dashes as the flags are (in a `--config` YAML
a `false` written with underscores is silently dropped by vLLM, and the engine's default applies);
each value is the one the serving estimate used (`llmplan.emit.serving.ServePlan`):
- `tensor_parallel_size`, `pipeline_parallel_size`; `data_parallel_size` 1 (the estimate is one replica;
  replicas for a target rate are separate servers); `enable_expert_parallel` when `--ep` equals tp (vLLM puts
  the experts over the tp · dp ranks, which is the estimate's ep inside the tp group);
- `gpu_memory_utilization`, `max_num_seqs`, `max_num_batched_tokens`, `block_size`, `enable_chunked_prefill`,
  `enforce_eager` and, with CUDA graphs, `max_cudagraph_capture_size`: the engine settings;
- `max_model_len`: the context; `kv_cache_dtype`; `dtype` (the activation dtype) and `quantization` (fp8
  only: vLLM quantizes bf16 weights to fp8 at load; GPTQ / AWQ / bitsandbytes / GGUF formats come from the
  checkpoint and are refused); `enable_prefix_caching` on only when the workload has prefix hits.
"""

from __future__ import annotations

import shlex
from typing import Any

from llmplan.emit import EmitError, LaunchConfig, read_error
from llmplan.emit.serving import ServePlan, check_engine, cli_flags, yaml_text
from llmplan.specs.engines import VLLM_VERSION, ServingEngine
from llmplan.specs.inference import KvDtype, QuantFormat

TARGET = "vllm"

DTYPES = {QuantFormat.BF16: "bfloat16", QuantFormat.FP16: "float16", QuantFormat.FP32: "float32"}
"""Activation dtype -> vLLM `--dtype`."""
KV_DTYPES = {KvDtype.AUTO: "auto", KvDtype.BF16: "bfloat16", KvDtype.FP16: "float16", KvDtype.FP8: "fp8"}
"""KV dtype -> vLLM `--kv-cache-dtype` (vllm/config/cache.py `CacheDType`; fp8 is e4m3)."""
QUANTIZATION = {QuantFormat.FP8: "fp8"}
"""Weight formats vLLM makes from a 16-bit checkpoint (`--quantization fp8`: per-tensor scales)."""


def _refuse(setting: str, message: str) -> EmitError:
    return EmitError(TARGET, setting, message)


def args(plan: ServePlan) -> dict[str, Any]:
    """The EngineArgs fields of the plan, in the order `vllm serve --help` groups them."""
    check_engine(TARGET, ServingEngine.VLLM, plan)
    if plan.ep not in (1, plan.tp):
        raise _refuse(
            "--ep", f"{plan.ep}: vLLM spreads experts over all tp · dp ranks (allowed: 1 or --tp {plan.tp})"
        )
    if plan.kv_dtype not in KV_DTYPES:
        allowed = ", ".join(k.value for k in KV_DTYPES)
        raise _refuse("--kv-dtype", f"{plan.kv_dtype.value} has no vLLM cache dtype (allowed: {allowed})")
    if not plan.quant.is_float and plan.quant not in QUANTIZATION:
        raise _refuse(
            "--quant",
            f"{plan.quant.value} is read from the checkpoint's quantization_config, not set by an argument "
            "(allowed: bf16, fp16, fp32, fp8)",
        )
    out: dict[str, Any] = {
        "tensor_parallel_size": plan.tp,
        "pipeline_parallel_size": plan.pp,
        "data_parallel_size": 1,
        "enable_expert_parallel": plan.ep > 1,
        "dtype": DTYPES[plan.compute_dtype],
    }
    if plan.quant in QUANTIZATION:
        out["quantization"] = QUANTIZATION[plan.quant]
    out |= {
        "kv_cache_dtype": KV_DTYPES[plan.kv_dtype],
        "max_model_len": plan.context,
        "gpu_memory_utilization": plan.setting("memory_fraction"),
        "block_size": plan.setting("block_size"),
        "max_num_seqs": plan.setting("max_num_seqs"),
        "max_num_batched_tokens": plan.setting("max_num_batched_tokens"),
        "enable_chunked_prefill": plan.setting("chunked_prefill"),
        "enable_prefix_caching": plan.prefix_caching,
        "enforce_eager": not plan.setting("cuda_graphs"),
    }
    if plan.setting("cuda_graphs"):
        out["max_cudagraph_capture_size"] = plan.setting("cuda_graph_max_batch")
    return out


def launch(plan: ServePlan) -> LaunchConfig:
    """The YAML for `vllm serve MODEL --config vllm.yaml`; the command is the same arguments as flags."""
    values = args(plan)
    header = f"vllm serve --config (vLLM {VLLM_VERSION} engine arguments) written by llmplan\n{plan.summary}"
    command = shlex.join(["vllm", "serve", plan.model, *cli_flags(values)])
    # dashed keys: vLLM turns a YAML `false` into `--no-KEY` only when KEY is spelled as the flag
    # (vllm/utils/argparse_utils.py `FlexibleArgumentParser._load_config_file`); with underscores it is dropped
    dashed = {k.replace("_", "-"): v for k, v in values.items()}
    return LaunchConfig(TARGET, "vllm.yaml", yaml_text(header, dashed), command)


_BOOL = ("enable_expert_parallel", "enable_chunked_prefill", "enable_prefix_caching", "enforce_eager")
_INT = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "max_model_len",
    "block_size",
    "max_num_seqs",
    "max_num_batched_tokens",
    "max_cudagraph_capture_size",
)
_STR = ("dtype", "quantization", "kv_cache_dtype")
KNOWN = (*_INT, "gpu_memory_utilization", *_BOOL, *_STR, "model")
"""The keys read back (`model` is ignored: the model is `serve`'s argument)."""


def parse_command(text: str, path: str) -> dict[str, Any]:
    """A `vllm serve MODEL --flag value ...` line as a key -> string (or bool) mapping."""
    words = shlex.split(text, comments=True)
    if words[:2] != ["vllm", "serve"]:
        raise read_error(path, "(command)", "does not start with `vllm serve` (allowed: a vllm serve line)")
    out: dict[str, Any] = {}
    rest = words[2:]
    if rest and not rest[0].startswith("-"):
        out["model"], rest = rest[0], rest[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if not word.startswith("--"):
            raise read_error(path, word, "is not a --flag (allowed: --flag value, --flag, --no-flag)")
        name, eq, value = word[2:].partition("=")
        key = name.replace("-", "_")
        if not eq and key.startswith("no_") and key[3:] in _BOOL:
            out[key[3:]] = False
        elif not eq and key in _BOOL:
            out[key] = True
        elif eq:
            out[key] = value
        else:
            if i + 1 >= len(rest):
                raise read_error(path, key, "has no value")
            out[key], i = rest[i + 1], i + 1
        i += 1
    return out


def read(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The EngineArgs values of a vLLM YAML (or parsed command line) by key, typed; SpecError naming the key
    that is unknown or does not hold its type."""
    out: dict[str, Any] = {}
    for raw, value in data.items():
        key = str(raw).replace("-", "_")
        if key not in KNOWN:
            raise read_error(path, key, f"is not read (allowed: {', '.join(KNOWN)})")
        out[key] = _typed(key, value, path)
    return out


def _typed(key: str, value: Any, path: str) -> Any:
    kind = (
        "a boolean"
        if key in _BOOL
        else "an integer"
        if key in _INT
        else "a number"
        if key in ("gpu_memory_utilization",)
        else "a string"
    )
    try:
        if key in _BOOL:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if key in _INT:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if key == "gpu_memory_utilization":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if value is None or isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise read_error(path, key, f"{value!r} is not {kind}") from None
