"""`llmplan serve --emit trtllm` checked against the option list of trtllm-serve's source kept as data
(tests/engines/trtllm_options.json, with the file and commit it was read from; TensorRT-LLM does not install on a
CPU machine): the command is parsed by a parser built from that list, the --config YAML overrides it as
trtllm-serve's `update_llm_args_with_extra_dict` does, every key is one TensorRT-LLM declares, every value has
its declared type, and the resulting view of each setting equals the plan's (the serve --json of the same
options)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest
import yaml

from llmplan.cli import main

DATA = json.loads((Path(__file__).parent / "engines" / "trtllm_options.json").read_text())

PLANS = {
    "7b-bf16-1gpu": ["llama-2-7b"],
    "8b-fp8-kv": ["llama-3.1-8b", "--kv-dtype", "fp8", "--context", "8192"],
    "70b-tp4": ["llama-3.1-70b", "--tp", "4", "--context", "8192"],
    "70b-tp8-eager-chunked": [
        "llama-3.1-70b", "--tp", "8", "--context", "16384", "--max-num-seqs", "128", "--block-size", "64",
        "--gpu-memory-utilization", "0.85", "--enforce-eager", "--chunked-prefill", "--max-num-batched-tokens",
        "4096",
    ],
    "moe-tp4-ep4-block-reuse": ["qwen3-30b-a3b", "--tp", "4", "--ep", "4", "--prefix-hit-rate", "0.5"],
}  # fmt: skip

TYPES = {"int": int, "float": float, "str": str, "bool": bool, "null": type(None)}


def parser() -> argparse.ArgumentParser:
    """trtllm-serve's options as the data lists them (click: `--name value`, flags without a value)."""
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("model")
    for name, spec in DATA["serve_options"].items():
        names = [name, *spec.get("aliases", [])]
        dest = spec.get("dest", name[2:])
        if spec["type"] == "flag":
            p.add_argument(*names, dest=dest, action="store_true")
        elif spec["type"] == "choice":
            p.add_argument(*names, dest=dest, choices=spec["choices"], default=spec.get("default"))
        else:
            p.add_argument(*names, dest=dest, type=TYPES[spec["type"]], default=spec.get("default"))
    return p


def typed(value: object, declared: str) -> bool:
    kinds = declared.split("|")
    if value is None:
        return "null" in kinds
    if isinstance(value, dict):
        return any(k in DATA for k in kinds) and all(
            key in DATA[kind] and typed(v, DATA[kind][key])
            for kind in kinds
            if kind in DATA
            for key, v in value.items()
        )
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return "int" in kinds
    if isinstance(value, float):
        return "float" in kinds
    return isinstance(value, str) and "str" in kinds


def emit(capsys, tmp_path: Path, args: list[str]) -> tuple[argparse.Namespace, dict]:
    out = tmp_path / "extra_llm_api_options.yaml"
    assert main(["serve", *args, "--emit", "trtllm", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    words = shlex.split(
        next(ln for ln in err.splitlines() if ln.startswith("launch: ")).removeprefix("launch: ")
    )
    assert words[0] == "trtllm-serve"
    ns = parser().parse_args(words[1:])  # an unknown option or a value of the wrong type raises
    return ns, yaml.safe_load(out.read_text())


@pytest.mark.parametrize("name", PLANS)
def test_trtllm_options_are_known_and_the_plan(capsys, tmp_path, name: str) -> None:
    args = PLANS[name]
    ns, extra = emit(capsys, tmp_path, args)
    assert ns.extra_llm_api_options == "extra_llm_api_options.yaml" and ns.backend == "pytorch"
    for key, value in extra.items():  # extra="forbid" in TorchLlmArgs: every key must be declared
        assert key in DATA["llm_args"], key
        assert typed(value, DATA["llm_args"][key]), (key, value)
    llm = {k: v for k, v in vars(ns).items() if k in DATA["llm_args"]}
    llm["kv_cache_config"] = {
        "free_gpu_memory_fraction": ns.free_gpu_memory_fraction
    }  # serve.py get_llm_args
    for key, value in extra.items():  # update_llm_args_with_extra_dict: the YAML's sections win
        llm[key] = {**llm.get(key, {}), **value} if isinstance(value, dict) else value
    assert main(["serve", *args, "--engine", "trtllm", "--json"]) == 0
    job = json.loads(capsys.readouterr().out)["job"]
    kv = llm["kv_cache_config"]
    assert (llm["tensor_parallel_size"], llm["pipeline_parallel_size"]) == (job["tp"], job["pp"])
    assert llm["max_seq_len"] == job["context_len"]
    assert llm["max_batch_size"] == job["vllm"]["max_num_seqs"]
    assert llm["max_num_tokens"] == job["vllm"]["max_num_batched_tokens"]
    assert llm["enable_chunked_prefill"] == job["vllm"]["enable_chunked_prefill"] == ns.enable_chunked_prefill
    assert kv["free_gpu_memory_fraction"] == job["vllm"]["gpu_memory_utilization"]
    assert kv["tokens_per_block"] == job["vllm"]["block_size"]
    assert kv["dtype"] == {"auto": "auto", "fp8": "fp8"}[job["kv_dtype"]]
    assert (llm["cuda_graph_config"] is None) == (not job["vllm"]["cuda_graphs"])
    ep = args[args.index("--ep") + 1] if "--ep" in args else "1"
    assert llm["moe_expert_parallel_size"] == int(ep)
    assert kv["enable_block_reuse"] == ("--prefix-hit-rate" in args)


def test_the_option_data_names_its_source() -> None:
    src = DATA["source"]
    assert src["repo"] == "NVIDIA/TensorRT-LLM"
    assert len(src["trtllm_serve"]["commit"]) == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["llama-3.1-8b", "--quant", "fp8"], "trtllm: --quant: fp8"),
        (["qwen3-30b-a3b", "--tp", "4", "--ep", "3"], "trtllm: --ep: 3"),
        (["llama-3.1-8b", "--engine", "vllm"], "trtllm: --engine: vllm"),
    ],
)
def test_trtllm_refusals(capsys, args: list[str], message: str) -> None:
    assert main(["serve", *args, "--emit", "trtllm"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")
