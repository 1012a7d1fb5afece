"""Every printed suggestion reproduces its number: the printed command, run through the CLI, prints the very
device figure the suggestion announced (text and JSON), over a matrix of jobs that do not fit."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from llmplan.cli import main
from llmplan.cli.train_command import _flags

# (arguments of `llmplan train`): several models, GPUs, methods and layouts; none of them fits as given
MATRIX = [
    ("llama-3.1-8b",),
    ("llama-2-13b", "--gpu", "a100-sxm-80gb"),
    (
        "llama-2-7b",
        "--method",
        "lora",
        "--lora-rank",
        "64",
        "--lora-targets",
        "all-linear",
        "--gpu",
        "rtx-4090",
    ),
    ("mistral-7b-v0.1", "--gpu", "a100-sxm-40gb", "--micro-batch", "4", "--seq", "4096", "--method", "lora"),
    ("llama-3.1-70b", "--gpus", "8", "--micro-batch", "2"),
    ("llama-3.1-70b", "--gpus", "16", "--fsdp", "shard-grad-op"),
    ("mixtral-8x7b-v0.1", "--gpus", "8", "--ep", "8", "--zero", "1"),
    ("llama-3.1-8b", "--gpus", "4", "--fsdp", "shard-grad-op", "--seq", "8192", "--gpu", "a100-sxm-40gb"),
    ("falcon-40b", "--gpus", "8", "--tp", "2", "--gpu", "h100"),
    ("llama-3.2-3b", "--gpu", "t4-16gb", "--precision", "fp16-mixed", "--attention", "eager"),
    (
        "gemma-2-9b",
        "--gpu",
        "l40s-48gb",
        "--method",
        "lora",
        "--lora-alpha",
        "8",
        "--chunked-ce",
        "--seq",
        "8192",
    ),
    (
        "llama-3.1-8b",
        "--gpus",
        "2",
        "--pp",
        "2",
        "--micro-batch",
        "8",
        "--grad-accum",
        "2",
        "--gpu",
        "a100-sxm-40gb",
    ),
    ("qwen2.5-7b", "--gpu", "rtx-4090", "--method", "dora", "--packing"),
    ("llama-3.1-8b", "--stack", "torchtune", "--gpus", "2", "--gpu", "a100-sxm-40gb"),
    ("llama-3.1-8b", "--stack", "megatron", "--gpus", "2", "--gpu", "a100-sxm-40gb"),
]

_FITS = re.compile(r"^fits at ([\d,]+\.\d\d) GiB .* with (.*):$")
_DEVICE = re.compile(r"= device \(nvidia-smi\)\s*│\s*([\d,]+\.\d\d)\s*│\s*([\d,]+)\s*│")


def _run(capsys, args: list[str]) -> str:
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, (args, out)
    return out


def _printed(out: str) -> list[tuple[str, str]]:
    """(announced device GiB, command) of every suggestion printed."""
    lines = out.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = _FITS.match(line)
        if m:
            found.append((m.group(1), lines[i + 1].strip()))
    return found


@pytest.mark.parametrize("args", MATRIX, ids=lambda a: " ".join(a))
def test_every_printed_suggestion_reproduces_its_number(capsys, args) -> None:
    out = _run(capsys, ["train", *args])
    assert "DOES NOT FIT" in out
    printed = _printed(out)
    assert printed, out
    announced = json.loads(_run(capsys, ["train", *args, "--json"]))["suggestions"]
    assert [s["command"] for s in announced] == [cmd for _, cmd in printed]
    for (gib_text, cmd), record in zip(printed, announced, strict=True):
        words = shlex.split(cmd)
        assert words[:2] == ["llmplan", "train"]
        rerun = _run(capsys, words[1:])
        m = _DEVICE.search(rerun)
        assert m, rerun
        assert m.group(1) == gib_text, (cmd, m.group(1), gib_text)
        assert int(m.group(2).replace(",", "")) == record["device_bytes"]
        assert "FITS: headroom" in rerun  # neither "DOES NOT FIT" nor "FITS, but tight"
        est = json.loads(_run(capsys, [*words[1:], "--json"]))
        assert est["device_bytes"] == record["device_bytes"]
        assert est["headroom_bytes"] == record["headroom_bytes"]


def test_matrix_exercises_every_axis(capsys) -> None:
    """The matrix above reaches each kind of change, so each option spelling is checked by the test above."""
    fields = set()
    for args in MATRIX:
        for record in json.loads(_run(capsys, ["train", *args, "--json"]))["suggestions"]:
            fields.update(c["field"] for c in record["changes"])
    expected = {
        "precision",
        "optimizer",
        "optimizer_impl",
        "recompute",
        "method",
        "lora_rank",
        "lora_targets",
    }
    assert expected <= fields, fields
    expected |= {"chunked_ce", "zero", "fsdp", "offload_optimizer", "offload_params", "micro_batch_size"}
    assert expected <= fields, expected - fields


def test_a_method_change_prints_the_adapters_it_was_estimated_with(capsys) -> None:
    """The bug of issue 8: `--method qlora` was announced at r16 all-linear but printed without them."""
    out = _run(capsys, ["train", "llama-2-13b", "--gpu", "a100-sxm-80gb", "--json"])
    records = json.loads(out)["suggestions"]
    method = [r for r in records if any(c["field"] == "method" for c in r["changes"])]
    assert method
    for r in method:
        assert "--lora-rank 16" in r["command"] and "--lora-targets all-linear" in r["command"]
        assert "--lora-alpha 32" in r["command"]


def test_every_option_of_train_is_known_to_the_command_writer() -> None:
    """An option added to `llmplan train` is written out by `train_command` (or it would silently vanish from
    the reproducing command); only the model argument and the output switches (--explain, --json, and --from /
    --emit / --out / --plot, whose values never reach the reproducing command) are left out."""
    import inspect

    from llmplan.cli.train import train

    output_only = {"explain", "json_out", "from_file", "emit_target", "out", "plot"}
    params = set(inspect.signature(train).parameters) - {"ctx", "model"} - output_only
    assert params == set(_flags())
