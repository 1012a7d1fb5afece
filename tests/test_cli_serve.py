"""`llmplan serve` and `llmplan formats`: tables, JSON with integer bytes, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from llmplan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_serve_json_bytes_are_ints(capsys) -> None:
    code, out, _ = run(
        capsys,
        "serve",
        "llama-2-7b",
        "--gpu",
        "a100-sxm-80gb",
        "--quant",
        "fp16",
        "--compute-dtype",
        "fp16",
        "--context",
        "2048",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == 1 and data["command"] == "serve"
    terms = {t["name"]: t for t in data["memory"]["terms"]}
    assert terms["kv_cache"]["value"] == 1_073_741_824
    assert isinstance(terms["weights"]["value"], int)
    assert terms["weights"]["value"] == 2 * 6_738_415_616
    assert data["memory"]["total"] == data["device_bytes"]
    assert data["fits"] is True and data["max_batch_at_context"] > 1


def test_serve_vllm_table_and_explain(capsys) -> None:
    code, out, _ = run(
        capsys,
        "serve",
        "llama-3-8b",
        "--gpu",
        "h100",
        "--engine",
        "vllm",
        "--kv-dtype",
        "fp8",
        "--concurrency",
        "32",
        "--context",
        "8192",
        "--explain",
    )
    assert code == 0
    assert "blocks of 16 tokens" in out and "max concurrency" in out
    assert "per token per layer" in out and "TPOT" in out and "tpot.memory" in out


def test_serve_quantized_tp(capsys) -> None:
    code, out, _ = run(
        capsys,
        "serve",
        "llama-3-70b",
        "--gpu",
        "a100-sxm-80gb",
        "--tp",
        "2",
        "--quant",
        "awq-int4",
        "--compute-dtype",
        "fp16",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    weights = next(t for t in data["memory"]["terms"] if t["name"] == "weights")
    assert next(p for p in weights["parts"] if p["name"] == "weights.scales")["value"] > 0
    tpot = next(t for t in data["speed"] if t["name"] == "tpot")
    assert next(p for p in tpot["parts"] if p["name"] == "tpot.comm")["value"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["serve", "llama-3-8b", "--gpu", "v100-sxm2-32gb", "--quant", "fp8", "--compute-dtype", "fp16"],
            "compute capability >= 8.9",
        ),
        (["serve", "llama-3-8b", "--gpu", "a100-sxm-80gb", "--quant", "fp8"], "fp8 tensor cores"),
        (["serve", "llama-2-7b", "--context", "10000"], "max_position_embeddings 4096"),
        (["serve", "llama-3-8b", "--tp", "3"], "does not divide the 32 attention heads"),
        (["serve", "llama-2-7b", "--batch", "0"], "batch"),
        (
            ["serve", "llama-2-7b", "--gpu-memory-utilization", "1.5", "--engine", "vllm"],
            "--gpu-memory-utilization: 1.5 is out of range",
        ),
    ],
)
def test_serve_bad_input_exit_2(capsys, args: list[str], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_serve_reports_every_problem_at_once(capsys) -> None:
    code, _, err = run(capsys, "serve", "llama-3-8b", "--gpu", "v100-sxm2-32gb", "--quant", "fp8")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0].startswith("error: quant: fp8") and lines[1].startswith("error: compute_dtype: 'bf16'")


def test_formats_pi(capsys) -> None:
    code, out, _ = run(capsys, "formats", "3.14159265358979")
    assert code == 0
    for text in ("3.140625", "3.25", "65504", "nf4"):
        assert text in out


def test_formats_json(capsys) -> None:
    code, out, _ = run(capsys, "formats", "3.14159265358979", "--json")
    assert code == 0
    rows = {e["format"]: e for e in json.loads(out)["encodings"]}
    assert rows["bf16"]["stored"] == 3.140625 and rows["fp8-e5m2"]["stored"] == 3.0
