"""`llmplan emit TARGET` then `llmplan train --from FILE`: the same estimate, byte for byte (the --json output,
suggestion commands included); `train --emit` is the same as `emit`; bad files and plans exit 2 naming the key
or the setting."""

from __future__ import annotations

import json

import pytest

from llmplan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


ROUND_TRIPS = {
    "deepspeed-8gpu-zero3-offload": (
        "deepspeed",
        [
            "llama-2-7b",
            "--gpus",
            "8",
            "--zero",
            "3",
            "--micro-batch",
            "2",
            "--grad-accum",
            "4",
            "--offload",
            "optimizer",
        ],
        ["llama-2-7b"],
    ),
    "deepspeed-16gpu-zero3-nvme-fp16": (
        "deepspeed",
        [
            "llama-2-13b",
            "--gpus",
            "16",
            "--zero",
            "3",
            "--precision",
            "fp16-mixed",
            "--offload",
            "both",
            "--offload-target",
            "nvme",
            "--optimizer-impl",
            "fused",
            "--stack",
            "deepspeed",
        ],
        ["llama-2-13b", "--stack", "deepspeed"],
    ),
    "deepspeed-1gpu-lora": (
        "deepspeed",
        [
            "llama-3.2-1b",
            "--method",
            "lora",
            "--micro-batch",
            "4",
            "--grad-accum",
            "8",
            "--recompute",
            "full",
        ],
        ["llama-3.2-1b", "--method", "lora", "--recompute", "full"],
    ),
    "peft-qlora-all-linear": (
        "peft",
        [
            "llama-3.1-8b",
            "--method",
            "qlora",
            "--lora-rank",
            "64",
            "--lora-alpha",
            "128",
            "--lora-targets",
            "all-linear",
            "--lora-dropout",
            "0.05",
        ],
        ["llama-3.1-8b", "--method", "qlora"],
    ),
    "peft-dora": (
        "peft",
        ["qwen2.5-7b", "--method", "dora", "--lora-rank", "16", "--lora-targets", "q_proj,k_proj,v_proj"],
        ["qwen2.5-7b"],
    ),
    "peft-prompt": (
        "peft",
        ["llama-3.2-1b", "--method", "prompt", "--num-virtual-tokens", "50"],
        ["llama-3.2-1b"],
    ),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_same_estimate_byte_for_byte(capsys, tmp_path, name: str) -> None:
    target, options, rest = ROUND_TRIPS[name]
    path = tmp_path / "config.json"
    code, out, err = run(capsys, "emit", target, *options, "--out", str(path))
    assert code == 0, err
    assert out == "" and "launch: " in err and "plan: " in err
    code, direct, _ = run(capsys, "train", *options, "--json")
    assert code == 0
    code, back, err = run(capsys, "train", *rest, "--from", str(path), "--json")
    assert code == 0, err
    assert back == direct


def test_train_emit_equals_emit(capsys) -> None:
    options = ["llama-2-7b", "--gpus", "8", "--zero", "3"]
    code, a, _ = run(capsys, "emit", "deepspeed", *options)
    assert code == 0
    code, b, _ = run(capsys, "train", *options, "--emit", "deepspeed")
    assert code == 0
    assert a == b and json.loads(a)["zero_optimization"]["stage"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["deepspeed", "llama-2-7b", "--gpus", "64", "--tp", "4", "--pp", "4", "--zero", "1"],
            "deepspeed: tp: 4 ",
        ),
        (["deepspeed", "llama-2-7b", "--gpus", "8", "--fsdp", "full-shard"], "deepspeed: fsdp: full-shard"),
        (["peft", "llama-2-7b"], "peft: method: full"),
    ],
)
def test_plans_the_target_cannot_express_exit_2(capsys, args, message) -> None:
    code, out, err = run(capsys, "emit", *args)
    assert code == 2 and out == ""
    assert f"error: {message}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ({"train_micro_batch_size_per_gpu": "auto"}, "train_micro_batch_size_per_gpu"),
        ({"train_micro_batch_size_per_gpu": 2, "train_batch_size": 7}, "train_batch_size"),
        ({"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 5}}, "zero_optimization.stage"),
        (
            {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3, "reduce_bucket_size": 5}},
            "zero_optimization.reduce_bucket_size",
        ),
        (
            {
                "train_micro_batch_size_per_gpu": 1,
                "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "gpu"}},
            },
            "zero_optimization.offload_optimizer.device",
        ),
        ({"train_micro_batch_size_per_gpu": 1, "optimizer": {"type": "Lamb"}}, "optimizer.type"),
        ({"hello": 1}, "peft_type"),
        ({"peft_type": "LORA", "lora_alpha": 16, "target_modules": ["q_proj"]}, "r"),
    ],
)
def test_unreadable_from_file_names_the_key(capsys, tmp_path, content, key) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(content))
    code, out, err = run(capsys, "train", "llama-2-7b", "--from", str(path))
    assert code == 2 and out == ""
    assert f"key '{key}'" in err and "Traceback" not in err


def test_from_file_that_is_not_json_exit_2(capsys, tmp_path) -> None:
    path = tmp_path / "in.json"
    path.write_text("train_batch_size: [8\n")
    code, _, err = run(capsys, "train", "llama-2-7b", "--from", str(path))
    assert code == 2 and "not JSON" in err and "nor YAML" in err
