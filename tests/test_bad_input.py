"""Table-driven bad input over every subcommand and option: exit 2, one line naming the field, the value given and
what is allowed, no traceback. Run in-process (`llmplan.cli.main`) so that the table stays fast."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from llmplan.cli import main


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    field: str
    """Must appear in the line (an option name, a config key)."""
    value: str
    """Must appear in the line (the value as given or as parsed: 1e400 -> inf); "" = nothing to check."""

    def __str__(self) -> str:
        return " ".join(self.argv)[:90]


MODEL = {c: "llama-2-7b" for c in ("params", "train", "serve", "trace", "measure")}

INT_OPTIONS = {
    "train": [
        "--lora-rank", "--num-virtual-tokens", "--micro-batch", "--seq-len", "--grad-accum", "--gpus",
        "--gpus-per-node", "--dp", "--tp", "--pp", "--cp", "--ep", "--zero",
    ],
    "serve": [
        "--tp", "--pp", "--group-size", "--context", "--prompt", "--batch", "--block-size",
        "--max-num-batched-tokens", "--max-num-seqs",
    ],
    "trace": [
        "--micro-batch", "--seq-len", "--grad-accum", "--lora-rank", "--num-virtual-tokens", "--dp", "--tp", "--pp",
        "--zero", "--prompt", "--decode-steps", "--batch",
    ],
    "measure": [
        "--micro-batch", "--seq-len", "--grad-accum", "--lora-rank", "--num-virtual-tokens", "--prompt", "--decode-steps",
        "--batch",
    ],
}  # fmt: skip
FLOAT_OPTIONS = {
    "train": ["--lora-alpha"],
    "serve": ["--gpu-memory-utilization"],
    "trace": ["--lora-alpha"],
    "measure": ["--lora-alpha"],
    "formats": ["--absmax"],
    "models": ["--min-b", "--max-b"],
}
CHOICE_OPTIONS = {
    "train": [
        "--method", "--precision", "--optimizer", "--optimizer-impl", "--recompute", "--attention", "--fsdp",
        "--stack", "--offload", "--offload-target",
    ],
    "serve": ["--quant", "--compute-dtype", "--kv-dtype", "--engine", "--attention"],
    "trace": ["--method", "--precision", "--optimizer", "--optimizer-impl", "--recompute", "--attention", "--fsdp"],
    "measure": ["--method", "--precision", "--optimizer", "--optimizer-impl", "--recompute", "--attention"],
    "validate": ["--only"],
}  # fmt: skip
# (value, what the line shows); values valid for some option are skipped for it below
BAD_INTS = [("0", "0"), ("-1", "-1"), ("-2", "-2"), ("nan", "nan"), ("1.5", "1.5"), ("abc", "abc"),
            ("1e400", "1e400"), ("99999999999", "99999999999"), ("", "")]  # fmt: skip
VALID_FOR = {"--group-size": {"-1"}, "--zero": {"0"}}
BAD_FLOATS = [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("1e400", "inf"), ("-1", "-1"), ("abc", "abc"),
              ("1e7", "10000000")]  # fmt: skip
VALID_FLOAT_FOR = {"--lora-alpha": {"1e7"}, "--min-b": {"1e7"}, "--max-b": {"1e7"}, "--absmax": {"1e7"}}
ZERO_REFUSED = {"--lora-alpha", "--gpu-memory-utilization", "--absmax"}


def _args(command: str) -> tuple[str, ...]:
    return (
        (command, MODEL[command])
        if command in MODEL
        else (command,)
        if command != "formats"
        else (command, "1")
    )


def option_cases() -> list[Case]:
    cases: list[Case] = []
    for command, options in INT_OPTIONS.items():
        for option in options:
            for value, shown in BAD_INTS:
                if value in VALID_FOR.get(option, ()) or (value == "-2" and option != "--group-size"):
                    continue
                cases.append(Case((*_args(command), option, value), option, shown))
    for command, options in FLOAT_OPTIONS.items():
        for option in options:
            for value, shown in BAD_FLOATS + ([("0", "0")] if option in ZERO_REFUSED else []):
                if value in VALID_FLOAT_FOR.get(option, ()):
                    continue
                if option == "--gpu-memory-utilization" and value == "1e7":
                    shown = "10000000"
                cases.append(Case((*_args(command), f"{option}={value}"), option, shown))
    for command, options in CHOICE_OPTIONS.items():
        for option in options:
            for value in ("bogus", "", "FULL "):
                cases.append(Case((*_args(command), option, value), option, value.strip()))
    return cases


def argument_cases() -> list[Case]:
    cases = [Case(("formats", value), "VALUE", shown) for value, shown in BAD_FLOATS[:4] + BAD_FLOATS[5:6]]
    for command in MODEL:
        cases += [
            Case((command,), "MODEL", ""),
            Case((command, "llama-9"), "model", "llama-9"),
            Case((command, "./missing/config.json"), "model", "missing/config.json"),
            Case((command, "/no/such/folder"), "model", "/no/such/folder"),
            Case((command, " "), "model", ""),
            Case((*_args(command), "--bogus-option", "1"), "--bogus-option", ""),
            Case((*_args(command), "extra-argument"), "arguments", "extra-argument"),
            Case((*_args(command), "--json", "--json=3"), "--json", ""),
        ]
    for command in ("models", "gpus", "clusters", "validate"):
        cases += [
            Case((command, "--bogus-option"), "--bogus-option", ""),
            Case((command, "extra-argument"), "arguments", "extra-argument"),
        ]
    cases += [
        Case(("bogus-command",), "command", "bogus-command"),
        Case(("train", "llama-2-7b", "--tp"), "--tp", ""),
        Case(("serve", "llama-2-7b", "--gpu", "nope-gpu"), "gpu", "nope-gpu"),
        Case(("train", "llama-2-7b", "--gpu", "nope-gpu"), "gpu", "nope-gpu"),
        Case(("trace", "llama-2-7b", "--gpu", "bogus"), "gpu", "bogus"),
        Case(("trace", "llama-2-7b", "--infer", "--dtype", "int3"), "dtype", "int3"),
        Case(("measure", "llama-2-7b", "--infer", "--dtype", "int3"), "dtype", "int3"),
        Case(("clusters", "--gpu", "nope-gpu"), "gpu", "nope-gpu"),
        Case(("models", "--min-b", "5", "--max-b", "1"), "--min-b", "5"),
        Case(("params", "meta-llama/not-in-the-catalog"), "model", "meta-llama/not-in-the-catalog"),
    ]
    return cases


def consistency_cases() -> list[Case]:
    t, s = ("train", "llama-2-7b"), ("serve", "llama-2-7b")
    return [
        Case((*t, "--tp", "3", "--gpus", "3"), "tp", "3"),
        Case((*t, "--tp", "64", "--gpus", "64"), "tp", "64"),
        Case((*t, "--pp", "64", "--gpus", "64"), "pp", "64"),
        Case((*t, "--dp", "2", "--gpus", "8"), "layout", "8"),
        Case((*t, "--gpus", "8", "--tp", "3"), "--gpus", "8"),
        Case((*t, "--gpus", "12", "--gpus-per-node", "8"), "--gpus", "12"),
        Case((*t, "--cp", "3", "--gpus", "3", "--gpus-per-node", "3"), "seq_len", "2048"),
        Case((*t, "--ep", "2", "--gpus", "2"), "ep", "2"),
        Case(("train", "mixtral-8x7b-v0.1", "--ep", "3", "--gpus", "3", "--gpus-per-node", "3"), "ep", "3"),
        Case((*t, "--seq", "1000000000"), "seq_len", "1000000000"),
        Case((*t, "--seq", "4097"), "seq_len", "4097"),
        Case(
            (*t, "--gpu", "v100", "--precision", "fp16-mixed", "--attention", "flash"), "attention", "flash"
        ),
        Case((*t, "--gpu", "t4", "--precision", "fp16-mixed", "--attention", "flash"), "attention", "flash"),
        Case((*t, "--gpu", "tpu-v5p", "--attention", "flash"), "attention", "flash"),
        Case((*t, "--gpu", "v100", "--precision", "bf16-mixed"), "precision", "bf16-mixed"),
        Case((*t, "--gpu", "a100-sxm-80gb", "--precision", "fp8-mixed"), "precision", "fp8-mixed"),
        Case((*t, "--method", "qlora", "--precision", "fp8-mixed"), "precision", "fp8-mixed"),
        Case(
            (*t, "--zero", "2", "--offload", "optimizer", "--offload-target", "nvme"),
            "offload_target",
            "nvme",
        ),
        Case(
            (*t, "--zero", "1", "--offload", "optimizer", "--offload-target", "nvme"),
            "offload_target",
            "nvme",
        ),
        Case((*t, "--offload", "optimizer"), "offload", "optimizer"),
        Case((*t, "--offload", "params"), "offload_params", ""),
        Case((*t, "--fsdp", "full-shard", "--offload", "both"), "offload", "both"),
        Case((*t, "--fsdp", "full-shard", "--offload", "optimizer"), "offload", "optimizer"),
        Case(
            (*t, "--fsdp", "full-shard", "--offload", "params", "--offload-target", "nvme"),
            "offload_target",
            "nvme",
        ),
        Case((*t, "--fsdp", "full-shard", "--zero", "3"), "zero", ""),
        Case(
            (*t, "--optimizer", "adamw8bit", "--zero", "2", "--offload", "optimizer"),
            "optimizer",
            "adamw8bit",
        ),
        Case((*t, "--optimizer-impl", "in-backward", "--grad-accum", "4"), "grad_accum", "4"),
        Case((*t, "--sequence-parallel"), "sequence_parallel", ""),
        Case((*t, "--method", "lora", "--lora-targets", "bogus"), "lora_targets", "bogus"),
        Case((*t, "--method", "lora", "--lora-targets", "q_proj;drop"), "--lora-targets", "q_proj;drop"),
        Case((*t, "--method", "lora", "--lora-targets", ","), "lora_targets", ""),
        Case((*t, "--method", "lora", "--lora-targets", "all-linear,q_proj"), "lora_targets", "all-linear"),
        Case((*s, "--context", "1000000000"), "context", "1000000000"),
        Case((*s, "--context", "4097"), "context", "4097"),
        Case((*s, "--prompt", "5000"), "--prompt", "5000"),
        Case((*s, "--tp", "3"), "tp", "3"),
        Case((*s, "--pp", "64"), "pp", "64"),
        Case((*s, "--gpu", "v100", "--quant", "fp8", "--compute-dtype", "fp16"), "quant", "fp8"),
        Case((*s, "--gpu", "v100", "--quant", "bf16"), "quant", "bf16"),
        Case((*s, "--gpu", "v100", "--quant", "fp16", "--attention", "flash"), "attention", "flash"),
        Case((*s, "--quant", "gptq-int4", "--group-size", "7"), "group_size", "7"),
        Case((*s, "--quant", "awq-int4", "--group-size", "100"), "group_size", "100"),
        Case((*s, "--quant", "gptq-int4", "--group-size", "2048", "--tp", "8"), "group_size", "2048"),
        Case((*s, "--engine", "vllm", "--kv-dtype", "int8"), "kv_dtype", "int8"),
        Case((*s, "--engine", "vllm", "--block-size", "7"), "--block-size", "7"),
        Case((*s, "--compute-dtype", "int8", "--quant", "gptq-int4"), "compute_dtype", "int8"),
        Case(("trace", "llama-2-7b", "--method", "lora", "--lora-targets", "bogus"), "lora_targets", "bogus"),
        Case(("trace", "llama-2-7b", "--tp", "3", "--dp", "1"), "tp", "3"),
        Case(("trace", "gpt2", "--seq", "2048"), "seq_len", "2048"),
        Case(("trace", "llama-2-7b", "--infer", "--attention", "flash"), "attention", "flash"),
        Case(("formats", "1", "--absmax", "0"), "--absmax", "0"),
        Case(("formats", "-1", "--absmax", "-2"), "--absmax", "-2"),
    ]


def time_and_load_cases() -> list[Case]:
    """The training-time options (--tokens, --epochs, --price, --nodes, --cluster, schedules) and the serving load
    options (--input-len, --request-rate, speculative decoding, SLOs)."""
    t, s = ("train", "llama-2-7b"), ("serve", "llama-2-7b", "--input-len", "512", "--output-len", "128")
    rows = [
        (t, ["--tokens", "0"], "tokens", "0"),
        (t, ["--tokens", "nan"], "tokens", "nan"),
        (t, ["--tokens", "-1"], "tokens", "-1"),
        (t, ["--tokens", "1e30"], "tokens", "1e+30"),
        (t, ["--tokens", "5X"], "tokens", "5X"),
        (t, ["--epochs", "0", "--dataset-tokens", "1B"], "epochs", "0"),
        (t, ["--epochs", "nan", "--dataset-tokens", "1B"], "epochs", "nan"),
        (t, ["--epochs", "1e9", "--dataset-tokens", "1B"], "epochs", "1000000000"),
        (t, ["--epochs", "1"], "epochs", ""),
        (t, ["--dataset-tokens", "1B"], "epochs", ""),
        (t, ["--dataset-tokens", "nan", "--epochs", "1"], "dataset_tokens", "nan"),
        (t, ["--price", "nan"], "--price", "nan"),
        (t, ["--price", "-1"], "--price", "-1"),
        (t, ["--price", "inf"], "--price", "inf"),
        (t, ["--price", "0"], "--price", "0"),
        (t, ["--price", "1e9"], "--price", "1000000000"),
        (t, ["--nodes", "0"], "--nodes", "0"),
        (t, ["--nodes", "nan"], "--nodes", "nan"),
        (t, ["--cluster", "bogus"], "cluster", "bogus"),
        (t, ["--pp-schedule", "bogus"], "--pp-schedule", "bogus"),
        (t, ["--virtual-stages", "0"], "--virtual-stages", "0"),
        (t, ["--virtual-stages", "3"], "pp_virtual_stages", "3"),
        (t, ["--pp-schedule", "interleaved"], "pp_virtual_stages", "1"),
        (t, ["--gpus", "8", "--nodes", "2"], "gpus", "8"),
        (t, ["--pp", "2", "--gpus", "2", "--pp-schedule", "interleaved", "--virtual-stages", "32"], "pp_schedule", "32"),
        (t, ["--pp", "2", "--gpus", "2", "--pp-schedule", "interleaved", "--virtual-stages", "2", "--grad-accum", "3"],
         "grad_accum", "3"),
        (("serve", "llama-2-7b"), ["--input-len", "0", "--output-len", "1"], "input_len", "0"),
        (("serve", "llama-2-7b"), ["--input-len", "abc", "--output-len", "1"], "input_len", "abc"),
        (("serve", "llama-2-7b"), ["--input-len", "10-5", "--output-len", "1"], "input_len", "10-5"),
        (("serve", "llama-2-7b"), ["--input-len", "512", "--output-len", "0"], "output_len", "0"),
        (("serve", "llama-2-7b"), ["--input-len", "512"], "output_len", ""),
        (("serve", "llama-2-7b"), ["--output-len", "5"], "input_len", ""),
        (("serve", "llama-2-7b"), ["--input-len", "5000", "--output-len", "5"], "context", "5005"),
        (s, ["--request-rate", "nan"], "request_rate", "nan"),
        (s, ["--request-rate", "-1"], "request_rate", "-1"),
        (s, ["--request-rate", "inf"], "request_rate", "inf"),
        (s, ["--num-requests", "0"], "--num-requests", "0"),
        (s, ["--num-requests", "1000000000"], "--num-requests", "1000000000"),
        (s, ["--prefix-hit-rate", "2"], "prefix_hit_rate", "2"),
        (s, ["--prefix-hit-rate", "nan"], "prefix_hit_rate", "nan"),
        (s, ["--spec-tokens", "-1", "--acceptance-rate", "0.5"], "draft_tokens", "-1"),
        (s, ["--spec-tokens", "4", "--acceptance-rate", "2"], "acceptance_rate", "2"),
        (s, ["--spec-tokens", "4", "--acceptance-rate", "nan"], "acceptance_rate", "nan"),
        (s, ["--spec-tokens", "4"], "acceptance_rate", ""),
        (("serve", "llama-2-7b"), ["--ep", "0"], "--ep", "0"),
        (("serve", "llama-2-7b"), ["--ep", "3"], "--ep", "3"),
        (("serve", "llama-2-7b"), ["--price", "nan"], "--price", "nan"),
        (s, ["--slo-ttft-ms", "nan"], "slo_ttft_ms", "nan"),
        (s, ["--slo-ttft-ms", "-1"], "slo_ttft_ms", "-1"),
        (s, ["--slo-tpot-ms", "0"], "slo_tpot_ms", "0"),
        (s, ["--slo-ttft-ms", "100", "--slo-stat", "bogus"], "slo_stat", "bogus"),
        (s, ["--target-rate", "nan"], "target_rate", "nan"),
        (s, ["--target-rate", "-5"], "target_rate", "-5"),
        (s, ["--seed", "abc"], "--seed", "abc"),
    ]  # fmt: skip
    return [Case((*head, *argv), field, value) for head, argv, field, value in rows]


CASES = option_cases() + argument_cases() + consistency_cases() + time_and_load_cases()


def test_the_table_has_at_least_300_cases():
    assert len(CASES) >= 300, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_one_clear_line(case: Case, capsys) -> None:
    code = main(list(case.argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err and out == "", err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ") and case.field in line and case.value in line, line
    assert "allowed" in line, line


def test_json_output_of_good_input_stays_strict(capsys) -> None:
    for argv in (
        ["train", "llama-2-7b", "--json"],
        ["serve", "llama-2-7b", "--json"],
        ["params", "gpt2", "--json"],
    ):
        assert main(argv) == 0
        json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
