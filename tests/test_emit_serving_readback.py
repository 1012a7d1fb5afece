"""`llmplan serve --emit vllm` then `serve --from FILE` (the YAML, or the `vllm serve` line): the same --json
estimate byte for byte; plans a target cannot express and unreadable files exit 2 naming the target and the
setting, or the key."""

from __future__ import annotations

import pytest

from llmplan.cli import main

ROUND_TRIPS = {
    "7b-bf16-1gpu": ["llama-2-7b"],
    "8b-fp8-kv": ["llama-3.1-8b", "--quant", "fp8", "--kv-dtype", "fp8", "--context", "8192"],
    "70b-tp4": ["llama-3.1-70b", "--tp", "4", "--context", "8192"],
    "70b-tp8-tuned": [
        "llama-3.1-70b", "--tp", "8", "--gpu", "a100-sxm-80gb", "--context", "16384", "--max-num-seqs", "128",
        "--block-size", "32", "--gpu-memory-utilization", "0.85", "--enforce-eager", "--no-chunked-prefill",
        "--max-num-batched-tokens", "16384",
    ],
    "moe-ep-under-load": [
        "qwen3-30b-a3b", "--tp", "4", "--ep", "4", "--input-len", "2000", "--output-len", "500",
        "--concurrency", "64", "--num-requests", "200", "--prefix-hit-rate", "0.5",
    ],
}  # fmt: skip
"""Options of `serve` only the file sets (tp, formats, engine settings); the rest is given again on read-back."""
KEPT = ("--gpu", "--input-len", "--output-len", "--concurrency", "--num-requests", "--prefix-hit-rate")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def kept(args: list[str]) -> list[str]:
    out = [args[0]]
    for i, word in enumerate(args):
        if word in KEPT:
            out += [word, args[i + 1]]
    return out


@pytest.mark.parametrize("name", ROUND_TRIPS)
@pytest.mark.parametrize("form", ["yaml", "command"])
def test_emit_then_read_back_is_the_same_estimate(capsys, tmp_path, name: str, form: str) -> None:
    args = ROUND_TRIPS[name]
    code, want, _ = run(capsys, "serve", *args, "--engine", "vllm", "--json")
    assert code == 0
    code, text, err = run(capsys, "serve", *args, "--emit", "vllm")
    assert code == 0
    path = tmp_path / "vllm.cfg"
    if form == "yaml":
        assert text.startswith("# vllm serve --config")
        path.write_text(text)
    else:
        path.write_text(
            next(ln for ln in err.splitlines() if ln.startswith("launch: ")).removeprefix("launch: ")
        )
    code, got, err = run(capsys, "serve", *kept(args), "--from", str(path), "--json")
    assert (code, err) == (0, "")
    assert got == want


REFUSED = {
    "gptq": (["llama-3.1-8b", "--quant", "gptq-int4", "--emit", "vllm"], "vllm: --quant: gptq-int4"),
    "gguf": (["llama-3.1-8b", "--quant", "q4_k_m", "--emit", "sglang"], "sglang: --quant: q4_k_m"),
    "ep-not-tp": (["qwen3-30b-a3b", "--tp", "4", "--ep", "2", "--emit", "vllm"], "vllm: --ep: 2"),
    "other-engine": (["llama-3.1-8b", "--engine", "sglang", "--emit", "vllm"], "vllm: --engine: sglang"),
    "spec-decode": (
        [
            "llama-3.1-8b",
            "--input-len",
            "100",
            "--output-len",
            "10",
            "--spec-tokens",
            "3",
            "--acceptance-rate",
            "0.7",
            "--emit",
            "sglang",
        ],
        "sglang: --spec-tokens: 3",
    ),  # fmt: skip
    "sglang-ep": (["qwen3-30b-a3b", "--tp", "4", "--ep", "3", "--emit", "sglang"], "sglang: --ep: 3"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_plan_the_target_cannot_express_is_refused(capsys, name: str) -> None:
    args, message = REFUSED[name]
    code, out, err = run(capsys, "serve", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}"), err
    assert len(err.splitlines()) == 1


BAD_FILES = {
    "unknown key": ("speculative_config: x\n", "key 'speculative_config': is not read"),
    "bad int": ("block-size: sixteen\n", "key 'block_size': 'sixteen' is not an integer"),
    "bad bool": ("enforce_eager: maybe\n", "key 'enforce_eager': 'maybe' is not a boolean"),
    "dp": ("data_parallel_size: 2\n", "key 'data_parallel_size': 2 replicas"),
    "quantization": ("quantization: awq\n", "key 'quantization': 'awq' is not read"),
    "kv dtype": ("kv_cache_dtype: fp8_e5m2\n", "key 'kv_cache_dtype': 'fp8_e5m2' is not read"),
    "graph size": (
        "max_cudagraph_capture_size: 256\n",
        "key 'max_cudagraph_capture_size': 256 is not modelled",
    ),
    "not a mapping": ("- 1\n- 2\n", "key '(top level)': is not a mapping"),
    "not yaml": ("a: [\n", "not YAML"),
    "command flag": ("vllm serve m --block-size\n", "key 'block_size': has no value"),
    "command word": ("vllm serve m 16\n", "key '16': is not a --flag"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_an_unreadable_file_names_the_key(capsys, tmp_path, name: str) -> None:
    text, message = BAD_FILES[name]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "serve", "llama-3.1-8b", "--from", str(path))
    assert (code, out) == (2, "")
    assert err.startswith("error: --from: ") and message in err, err


def test_max_model_len_must_hold_the_workload(capsys, tmp_path) -> None:
    path = tmp_path / "vllm.yaml"
    path.write_text("max-model-len: 1000\n")
    code, _, err = run(
        capsys, "serve", "llama-3.1-8b", "--input-len", "900", "--output-len", "200", "--from", str(path)
    )
    assert code == 2 and "key 'max_model_len': 1000 is not the workload's longest request 1100" in err


def test_a_partial_file_keeps_the_other_options(capsys, tmp_path) -> None:
    path = tmp_path / "vllm.yaml"
    path.write_text("tensor-parallel-size: 2\nmax-num-seqs: 64\n")
    code, want, _ = run(
        capsys, "serve", "llama-3.1-8b", "--engine", "vllm", "--tp", "2", "--max-num-seqs", "64", "--json"
    )
    code2, got, _ = run(capsys, "serve", "llama-3.1-8b", "--from", str(path), "--json")
    assert (code, code2) == (0, 0) and got == want


SGLANG_ROUND_TRIPS = {name: args for name, args in ROUND_TRIPS.items() if name != "8b-fp8-kv"} | {
    "8b-fp8-weights-and-kv": ["llama-3.1-8b", "--quant", "fp8", "--kv-dtype", "fp8", "--context", "8192"]
}


@pytest.mark.parametrize("name", SGLANG_ROUND_TRIPS)
def test_sglang_line_read_back_is_the_same_estimate(capsys, tmp_path, name: str) -> None:
    args = SGLANG_ROUND_TRIPS[name]
    code, want, _ = run(capsys, "serve", *args, "--engine", "sglang", "--json")
    assert code == 0
    code, text, _ = run(capsys, "serve", *args, "--emit", "sglang")
    assert code == 0 and text.startswith("#!/bin/sh\n")
    path = tmp_path / "sglang.sh"
    path.write_text(text)
    code, got, err = run(capsys, "serve", *kept(args), "--from", str(path), "--json")
    assert (code, err) == (0, "")
    assert got == want


SGLANG_BAD = {
    "unknown flag": ("--speculative-algorithm EAGLE", "key 'speculative_algorithm': is not read"),
    "bad int": ("--tp-size four", "key 'tp_size': 'four' is not an integer"),
    "mixed chunk": ("--enable-mixed-chunk", "key 'enable_mixed_chunk': is not modelled"),
    "dp": ("--dp-size 2", "key 'dp_size': 2 replicas"),
    "kv dtype": ("--kv-cache-dtype fp8_e5m2", "key 'kv_cache_dtype': 'fp8_e5m2' is not read"),
    "graph size": ("--cuda-graph-max-bs 7", "key 'cuda_graph_max_bs': 7 is not modelled"),
}


@pytest.mark.parametrize("name", SGLANG_BAD)
def test_an_unreadable_sglang_line_names_the_key(capsys, tmp_path, name: str) -> None:
    flags, message = SGLANG_BAD[name]
    path = tmp_path / "sglang.sh"
    path.write_text(f"#!/bin/sh\npython -m sglang.launch_server --model-path m {flags}\n")
    code, out, err = run(capsys, "serve", "llama-3.1-8b", "--from", str(path))
    assert (code, out) == (2, "")
    assert err.startswith("error: --from: ") and message in err, err
