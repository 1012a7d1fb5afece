"""`llmplan serve --emit vllm|sglang` checked by the engines' own code in the engines venv (.venv-engines, made by
scripts/setup.sh): vLLM's `EngineArgs.from_cli_args(...).create_engine_config()` from a folder holding only the
catalog config.json, for the YAML (`--config`) and for the command line; SGLang's `ServerArgs.from_cli_args`.
The loader's view of every key equals the plan's (the serve --json of the same options), and every key written
is a field the engine knows."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from llmplan import catalog
from llmplan.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENGINES_PYTHON = Path(os.environ.get("LLMPLAN_ENGINES_PYTHON", ROOT / ".venv-engines" / "bin" / "python"))

PLANS = {
    "7b-bf16-1gpu": ["llama-2-7b"],
    "8b-fp8-weights-fp8-kv": ["llama-3.1-8b", "--quant", "fp8", "--kv-dtype", "fp8", "--context", "8192"],
    "70b-tp4": ["llama-3.1-70b", "--tp", "4", "--context", "8192"],
    "70b-tp8-eager-no-chunking": [
        "llama-3.1-70b", "--tp", "8", "--gpu", "a100-sxm-80gb", "--context", "16384", "--max-num-seqs", "128",
        "--block-size", "32", "--gpu-memory-utilization", "0.85", "--enforce-eager", "--no-chunked-prefill",
        "--max-num-batched-tokens", "16384",
    ],
    "moe-tp4-ep4-prefix-cache": [
        "qwen3-30b-a3b", "--tp", "4", "--ep", "4", "--context", "32768", "--prefix-hit-rate", "0.5",
    ],
}  # fmt: skip


@cache
def engines_check(request: str) -> dict:
    if not ENGINES_PYTHON.exists():
        pytest.skip(f"no engines venv at {ENGINES_PYTHON} (bash scripts/setup.sh makes it)")
    script = ROOT / "tests" / "engines" / "check_serving.py"
    done = subprocess.run(
        [str(ENGINES_PYTHON), str(script)], input=request, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _config(args: list[str]) -> dict:
    return catalog.model_entry(args[0]).config


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    """Every plan emitted for both targets, checked by the engines in one run of the engines venv."""
    capsys = _Capture()
    tmp = tmp_path_factory.mktemp("serving")
    request: dict[str, list] = {"vllm": [], "sglang": []}
    plans: dict[str, dict] = {}
    for name, args in PLANS.items():
        text, words = capsys.emit("vllm", args, tmp)
        values = {k.replace("-", "_"): v for k, v in yaml.safe_load(text).items()}
        request["vllm"].append(
            {"name": name, "config": _config(args), "yaml": text, "flags": words[3:], "keys": list(values)}
        )
        plans[f"vllm/{name}"] = {"values": values, "json": capsys.json("vllm", args)}
        _, words = capsys.emit("sglang", args, tmp)
        flags = words[words.index("--model-path") + 2 :]
        sgl_values = _sglang_values(flags)
        request["sglang"].append(
            {"name": name, "config": _config(args), "flags": flags, "keys": list(sgl_values)}
        )
        plans[f"sglang/{name}"] = {"values": sgl_values, "json": capsys.json("sglang", args)}
    return {"plans": plans, "seen": engines_check(json.dumps(request))}


class _Capture:
    """capsys for a module-scoped fixture: main()'s stdout / stderr captured by redirecting sys streams."""

    def _run(self, argv: list[str]) -> tuple[str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(argv) == 0, err.getvalue()
        return out.getvalue(), err.getvalue()

    def emit(self, target: str, args: list[str], tmp: Path) -> tuple[str, list[str]]:
        path = tmp / f"{target}-{args[0]}-{len(list(tmp.iterdir()))}.cfg"
        _, err = self._run(["serve", *args, "--emit", target, "--out", str(path)])
        command = next(line for line in err.splitlines() if line.startswith("launch: "))
        return path.read_text(), shlex.split(command.removeprefix("launch: "))

    def json(self, target: str, args: list[str]) -> dict:
        return json.loads(self._run(["serve", *args, "--engine", target, "--json"])[0])


def _sglang_values(flags: list[str]) -> dict:
    """--flag value pairs and store_true flags as the ServerArgs field -> value the plan wrote."""
    out: dict = {}
    i = 0
    while i < len(flags):
        key = flags[i][2:].replace("-", "_")
        if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            out[key], i = yaml.safe_load(flags[i + 1]), i + 2
        else:
            out[key], i = True, i + 1
    for flag in ("disable_cuda_graph", "disable_radix_cache", "enable_mixed_chunk"):
        out.setdefault(flag, False)
    return out


@pytest.mark.parametrize("name", PLANS)
def test_vllm_engine_config_is_the_plan(cases: dict, name: str) -> None:
    seen = cases["seen"]["vllm"][name]
    plan = cases["plans"][f"vllm/{name}"]
    assert seen["unknown"] == []
    values = plan["values"]
    for key, value in values.items():  # the loader's view of every key is the plan's
        assert seen["view"][key] == value, key
    assert seen["flags_view"] == seen["view"]  # the command line says the same as the YAML
    assert seen["view"]["quantization"] == values.get("quantization")
    job = plan["json"]["job"]
    assert (seen["view"]["tensor_parallel_size"], seen["view"]["pipeline_parallel_size"]) == (
        job["tp"],
        job["pp"],
    )
    assert seen["view"]["max_model_len"] == job["context_len"]
    for key in ("gpu_memory_utilization", "block_size", "max_num_seqs", "max_num_batched_tokens"):
        assert seen["view"][key] == job["vllm"][key], key
    assert seen["view"]["enable_chunked_prefill"] == job["vllm"]["enable_chunked_prefill"]
    assert seen["view"]["enforce_eager"] == (not job["vllm"]["cuda_graphs"])


@pytest.mark.parametrize("name", PLANS)
def test_sglang_server_args_are_the_plan(cases: dict, name: str) -> None:
    seen = cases["seen"]["sglang"][name]
    plan = cases["plans"][f"sglang/{name}"]
    assert seen["unknown"] == []
    for key, value in plan["values"].items():
        assert seen["view"][key] == value, key
    job = plan["json"]["job"]
    assert (seen["view"]["tp_size"], seen["view"]["pp_size"]) == (job["tp"], job["pp"])
    assert seen["view"]["context_length"] == job["context_len"]
    assert seen["view"]["mem_fraction_static"] == job["vllm"]["gpu_memory_utilization"]
    assert seen["view"]["max_running_requests"] == job["vllm"]["max_num_seqs"]
    assert seen["view"]["page_size"] == job["vllm"]["block_size"]
