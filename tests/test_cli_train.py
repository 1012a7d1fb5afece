"""`llmplan train`: table, JSON with integer bytes, --explain, suggestions, and exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest

from llmplan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["train", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _floats(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _floats(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _floats(v, f"{path}[{i}]")
    elif isinstance(value, float):
        yield path


def test_json_byte_figures_are_ints(capsys) -> None:
    code, out, _ = run(capsys, "llama-2-7b", "--method", "qlora", "--lora-targets", "all-linear", "--json")
    assert code == 0
    data = json.loads(out)
    est = data
    assert data["schema_version"] == 1 and data["command"] == "train"
    assert est["fits"] is True
    assert est["memory"]["total"] == est["device_bytes"]
    assert est["peak_phase"] in ("forward-end", "backward", "optimizer-step")
    # time and cost are seconds, rates and dollars, the error band a percentage: floats by nature; every memory
    # figure is an integer
    floats = list(_floats({k: v for k, v in data.items() if k not in ("time", "cost")}))
    assert all(p.endswith(("lora_alpha", "lora_dropout", "p90_pct")) for p in floats), floats
    assert isinstance(est["allocated_bytes"], int) and isinstance(est["host_bytes"], int)


def test_table_and_suggestions(capsys) -> None:
    code, out, _ = run(capsys, "llama-2-13b", "--gpu", "a100-sxm-80gb")
    assert code == 0
    assert "DOES NOT FIT" in out
    assert "fits at " in out and "--method lora --lora-rank 16 --lora-alpha 32 --lora-targets all-linear" in out
    assert "device (nvidia-smi)" in out


def test_explain_shows_sources(capsys) -> None:
    code, out, _ = run(capsys, "llama-2-7b", "--precision", "bf16", "--explain")
    assert code == 0
    assert "how these numbers were computed" in out
    assert "source: ZeRO paper" in out
    assert "phase.optimizer-step" in out


def test_zero3_over_gpus_and_offload(capsys) -> None:
    code, out, _ = run(
        capsys,
        "llama-2-7b",
        "--zero",
        "3",
        "--gpus",
        "8",
        "--offload",
        "both",
        "--offload-target",
        "cpu",
        "--json",
    )
    assert code == 0
    est = json.loads(out)
    assert est["layout"]["dp"] == 8
    assert est["model_states"]["sharding_group"] == 8
    assert est["host_bytes"] > 0 and est["model_states"]["weights_bytes"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["llama-2-7b", "--tp", "3", "--gpus", "3"], "does not divide the 32 attention heads"),
        (["llama-2-7b", "--pp", "64", "--gpus", "64", "--gpus-per-node", "8"], "stages exceed the 32 layers"),
        (["llama-2-7b", "--dp", "2", "--gpus", "8"], "must be equal"),
        (
            ["mixtral-8x7b-v0.1", "--ep", "3", "--gpus", "3", "--gpus-per-node", "3"],
            "does not divide the 8 experts",
        ),
        (["llama-2-7b", "--method", "lora", "--lora-targets", "wq"], "matches no linear layer"),
        (["llama-2-7b", "--method", "qlora", "--precision", "fp8-mixed"], "NF4"),
        (["llama-2-7b", "--precision", "fp8-mixed", "--gpu", "a100-sxm-80gb"], "fp8"),
        (["llama-2-7b", "--optimizer", "adamw8bit", "--zero", "2", "--offload", "optimizer"], "bitsandbytes"),
        (["llama-2-7b", "--offload", "params"], "parameter offload needs"),
        (["llama-2-7b", "--zero", "5"], "not a ZeRO stage"),
        (["llama-2-7b", "--gpu", "nope-gpu"], "unknown"),
    ],
)
def test_bad_input_exit_2(capsys, args: list[str], message: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err
