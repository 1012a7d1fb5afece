"""Validation returns every problem as a typed record; the raising wrapper carries them all; the CLI prints them
one line each; consistency rules between options; the "fits, but tight" warning; `--write` failures."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from llmplan import catalog, limits
from llmplan.cli import main
from llmplan.errors import InvalidInputError, LayoutError, Problem, SpecError
from llmplan.estimate.training import estimate_training
from llmplan.estimate.validation import problems
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    OffloadTarget,
    Precision,
    TrainingJob,
    ZeroStage,
)
from llmplan.units import GIB


def cluster(gpu: str, gpus: int = 1) -> Cluster:
    return Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=gpus)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_problems_lists_every_broken_rule_as_records_without_raising():
    model = load_model("llama-2-7b")
    job = TrainingJob(seq_len=100_000, attention=AttentionImpl.FLASH, precision=Precision.BF16_MIXED)
    layout = Layout(dp=2, tp=3, zero=ZeroStage.GRADIENTS, offload_optimizer=OffloadTarget.NVME)
    found = problems(model, job, layout, cluster("v100-sxm2-32gb", 6))
    fields = [p.field for p in found]
    assert fields == ["tp", "offload_target", "precision", "seq_len", "attention"]
    assert all(isinstance(p, Problem) and p.value and p.allowed and p.value in p.message for p in found)
    assert found[0].value == "3" and found[0].allowed == "divisors of 32"


def test_problems_is_empty_for_a_job_that_can_run():
    model = load_model("llama-2-7b")
    assert problems(model, TrainingJob(), Layout(), cluster("h100-sxm-80gb")) == ()


def test_estimate_raises_one_error_carrying_all_problems():
    model = load_model("llama-2-7b")
    job = TrainingJob(seq_len=8192, attention=AttentionImpl.FLASH, precision=Precision.FP16_MIXED)
    with pytest.raises(InvalidInputError) as info:
        estimate_training(model, job, Layout(tp=3, dp=2), cluster("v100-sxm2-32gb", 6))
    assert isinstance(info.value, LayoutError) and isinstance(info.value, SpecError)
    assert [p.field for p in info.value.problems] == ["tp", "seq_len", "attention"]
    assert str(info.value).count("\n") == 2


def test_cli_prints_every_problem_one_line_each(capsys):
    code, out, err = run(
        capsys, "train", "llama-2-7b", "--gpu", "v100", "--tp", "3", "--gpus", "6", "--attention", "flash",
        "--seq", "100000", "--precision", "fp16-mixed",
    )  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert [line.split(":")[1].strip() for line in lines] == ["tp", "seq_len", "attention"]
    assert all(line.startswith("error: ") and "allowed" in line for line in lines)


def test_option_bounds_are_all_reported_at_once(capsys):
    code, _, err = run(
        capsys, "train", "llama-2-7b", "--tp", "0", "--pp", "0", "--gpus", "0", "--lora-alpha", "nan"
    )
    assert code == 2
    assert [line.split(":")[1].strip() for line in err.strip().splitlines()] == [
        "--lora-alpha",
        "--gpus",
        "--tp",
        "--pp",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["train", "llama-2-7b", "--seq", "1000000000"],
            "seq_len: 1000000000 exceeds llama-2-7b's max_position",
        ),
        (
            ["serve", "llama-2-7b", "--context", "1000000000"],
            "context: 1000000000 exceeds llama-2-7b's max_position",
        ),
        (
            ["train", "llama-2-7b", "--gpu", "v100", "--precision", "fp16-mixed", "--attention", "flash"],
            "flash-attn",
        ),
        (["serve", "llama-2-7b", "--gpu", "v100", "--quant", "fp16", "--attention", "flash"], "flash-attn"),
        (["train", "llama-2-7b", "--gpu", "tpu-v5p", "--attention", "flash"], "flash-attn"),
        (
            ["train", "llama-2-7b", "--zero", "2", "--offload", "optimizer", "--offload-target", "nvme"],
            "stage 3",
        ),
        (
            [
                "train",
                "llama-2-7b",
                "--fsdp",
                "full-shard",
                "--offload",
                "params",
                "--offload-target",
                "nvme",
            ],
            "FSDP",
        ),
        (["train", "llama-2-7b", "--fsdp", "full-shard", "--offload", "both"], "optimizer alone"),
        (["train", "llama-2-7b", "--gpus", "8", "--tp", "3"], "--gpus: 8 is not divisible by tp·pp·cp"),
        (
            ["serve", "llama-2-7b", "--quant", "gptq-int4", "--group-size", "7"],
            "group_size: 7 does not divide",
        ),
        (
            ["serve", "llama-2-7b", "--quant", "awq-int4", "--group-size", "100"],
            "group_size: 100 does not divide",
        ),
        (
            ["serve", "llama-2-7b", "--engine", "vllm", "--block-size", "7"],
            "--block-size: 7 is not a vLLM block",
        ),
        (
            ["train", "llama-2-7b", "--method", "lora", "--lora-alpha", "nan"],
            "--lora-alpha: nan is not a finite",
        ),
        (["trace", "llama-2-7b", "--gpu", "bogus"], "gpu: 'bogus' is an unknown gpu id"),
        (
            ["trace", "llama-2-7b", "--method", "lora", "--lora-targets", "bogus"],
            "bogus matches no linear layer",
        ),
        (["train", "llama-2-7b", "--gpus", "0"], "--gpus: 0 is out of range"),
        (["formats", "nan"], "VALUE: nan is not a finite number"),
        (["formats", "1", "--absmax", "0"], "--absmax: 0 is out of range"),
    ],
)
def test_consistency_and_bounds_refused_with_one_clear_line(capsys, args, expected):
    code, _, err = run(capsys, *args)
    assert code == 2 and expected in err and "allowed" in err and "Traceback" not in err


def test_group_size_that_divides_every_width_is_accepted(capsys):
    code, _, err = run(capsys, "serve", "llama-2-7b", "--quant", "gptq-int4", "--group-size", "64", "--json")
    assert code == 0, err


def test_tight_headroom_threshold():
    cap = 80 * GIB
    assert limits.tight_headroom(int(0.049 * cap), cap) is not None  # under 5 %
    assert limits.tight_headroom(int(0.06 * cap), cap) is None
    assert limits.tight_headroom(int(1.9 * GIB), 24 * GIB) is not None  # under 2 GiB
    assert limits.tight_headroom(-GIB, cap) is None  # does not fit: no "tight" warning
    assert "fragmentation" in limits.tight_headroom(0, cap)


def test_train_prints_fits_but_tight(capsys):
    code, out, _ = run(
        capsys, "train", "llama-2-7b", "--method", "lora", "--seq", "2300", "--gpu", "a100-sxm-40gb",
        "--micro-batch", "2",
    )  # fmt: skip
    assert code == 0 and "FITS, but tight" in out and "second" in out


def test_write_into_a_folder_is_refused_before_the_work(capsys, tmp_path):
    code, _, err = run(capsys, "validate", "--only", "measured", "--write", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_write_creates_missing_folders(capsys, tmp_path):
    target = tmp_path / "a" / "b" / "report.md"
    code, _, _ = run(capsys, "validate", "--only", "measured", "--no-peers", "--write", str(target))
    assert code == 0 and target.read_text(encoding="utf-8").startswith("#")


def test_write_on_a_full_disk_fails_cleanly_and_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old", encoding="utf-8")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run(capsys, "validate", "--only", "measured", "--no-peers", "--write", str(target))
    monkeypatch.undo()
    assert code == 2 and "No space left on device" in err
    assert target.read_text(encoding="utf-8") == "old"
    assert not list(tmp_path.glob(".*.tmp"))


def test_layout_spec_checks_ep_and_fsdp_together():
    model = load_model("mixtral-8x7b-v0.1")
    layout = Layout(dp=2, ep=3, fsdp=FsdpStrategy.NO_SHARD, offload_params=OffloadTarget.NONE)
    found = problems(model, TrainingJob(), layout, cluster("h100-sxm-80gb", 2))
    assert [p.field for p in found] == ["ep", "ep"]


def test_docs_limits_is_current_and_lists_every_bound():
    import runpy

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "limits.md").read_text(encoding="utf-8")
    assert doc == runpy.run_path(str(root / "scripts" / "limits_doc.py"))["render"](), (
        "run scripts/limits_doc.py"
    )
    bounds = [name for name, value in vars(limits).items() if isinstance(value, limits.Bound)]
    assert all(f"`{name}`" in doc for name in bounds), [n for n in bounds if f"`{n}`" not in doc]
