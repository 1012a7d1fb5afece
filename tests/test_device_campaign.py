"""The GPU campaign (benchmarks/device_campaign.py) without a GPU: the case list is complete, every case has an
analytic estimate and a committed dry run (its trace), and the dry run of a representative subset builds and
traces the cases on fake tensors here, writes one JSON per case and resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_campaign  # noqa: E402
import device_cases as dc  # noqa: E402
import device_kernels  # noqa: E402

from llmplan.specs.training import (  # noqa: E402
    AttentionImpl,
    Method,
    Optimizer,
    OptimizerImpl,
    Precision,
    Recompute,
)

UNTRACEABLE = {Optimizer.ADAM8BIT: "bitsandbytes"}
"""Cases the trace engine refuses, and a word of the reason it gives."""


def test_training_cases_cover_the_campaign() -> None:
    jobs = [c.job for c in dc.TRAIN_CASES]
    assert len(dc.TRAIN_CASES) >= 20
    assert {c.model for c in dc.TRAIN_CASES} == {dc.Q05, dc.L1, dc.L3, dc.L8}
    full_mixed = [j for j in jobs if j.method is Method.FULL and j.precision is Precision.BF16_MIXED]
    assert {j.optimizer_impl for j in full_mixed} == {OptimizerImpl.FOREACH, OptimizerImpl.FUSED}
    assert any(j.precision is Precision.BF16 and j.optimizer is Optimizer.ADAM8BIT for j in jobs)
    for method in (Method.LORA, Method.QLORA):
        adapted = [j for j in jobs if j.method is method]
        assert adapted and all(
            j.peft.lora_rank == 16 and j.peft.lora_targets == ("all-linear",) for j in adapted
        )
    assert {j.recompute for j in jobs} == {Recompute.NONE, Recompute.FULL}
    assert {j.attention for j in jobs} == {AttentionImpl.SDPA, AttentionImpl.EAGER}
    assert {j.seq_len for j in jobs} == {dc.SHORT_SEQ, dc.LONG_SEQ}


def test_inference_and_kernel_cases() -> None:
    assert {(c.model, c.batch) for c in dc.INFER_CASES} == {
        (m, b) for m in (dc.L1, dc.L8) for b in (1, 8, 64)
    }
    ops = {c.op for c in dc.KERNEL_CASES}
    assert ops == {
        "gemm-bf16",
        "gemm-fp8",
        "sdpa-flash",
        "sdpa-efficient",
        "copy",
        "adamw-foreach",
        "adamw-fused",
    }
    for op in ("gemm-bf16", "gemm-fp8"):  # efficiency vs size: several M per shape
        assert len({c.params["m"] for c in dc.KERNEL_CASES if c.op == op}) >= 3
    assert len({c.params["seq"] for c in dc.KERNEL_CASES if c.op == "sdpa-flash"}) >= 3


def test_case_ids_are_unique_file_names() -> None:
    ids = [c.id for c in dc.CASES]
    assert len(ids) == len(set(ids))
    assert all(c.replace("_", "").replace("-", "").replace(".", "").isalnum() for c in ids)


def test_every_case_has_an_analytic_estimate_and_a_command() -> None:
    for case in (*dc.TRAIN_CASES, *dc.INFER_CASES):
        est = dc.analytic(case)
        assert "error" not in est, (case.id, est)
        assert est["allocated_bytes"] <= est["reserved_bytes"] <= est["device_bytes"]
        assert case.command().startswith(f"llmplan measure {case.model} ")
        if isinstance(case, dc.TrainCase):
            assert est["step_time_s"] > 0  # the time model answers for every training case


def test_every_kernel_has_a_time_model_prediction() -> None:
    from llmplan import catalog

    acc = catalog.accelerator(dc.GPU)
    for case in dc.KERNEL_CASES:
        seconds = device_kernels.predicted(case, acc)
        assert seconds and all(0 < s < 1 for s in seconds.values()), case.id
    small, large = (
        device_kernels.predicted(dc.by_id()[f"kernel_gemm-bf16_o_m{m}"], acc)["time_s"] for m in (256, 16384)
    )
    assert large / small > 16  # the prediction follows the shape it is given (64x the FLOPs)


def test_the_committed_dry_run_traced_every_case() -> None:
    """benchmarks/results/device-plan holds the dry run of every case: traced, or refused for a stated reason."""
    plan = {p.stem: json.loads(p.read_text()) for p in device_campaign.PLAN.glob("*.json")}
    assert set(plan) == {c.id for c in dc.CASES}
    for case in dc.CASES:
        record = plan[case.id]
        assert record["environment"]["dry_run"] is True
        if isinstance(case, dc.KernelCase):
            assert record["settings"] == device_campaign.settings(case)
        else:  # the command names every setting of the case (the job's other fields may grow)
            assert record["command"] == case.command()
        if isinstance(case, dc.TrainCase) and case.job.optimizer in UNTRACEABLE:
            assert record["status"] == "untraceable"
            assert UNTRACEABLE[case.job.optimizer] in record["error"]
            continue
        assert record["status"] == "dry-run", (case.id, record.get("error"))
        if isinstance(case, dc.KernelCase):
            assert record["built"]["op"] == case.op
        else:
            assert record["trace"]["peak_allocated_bytes"] > 0


def test_device_command_is_the_documented_one() -> None:
    assert "bitsandbytes==" in device_campaign.WHEEL_COMMAND
    assert "--out /tmp/device" in device_campaign.DEVICE_COMMAND
    assert len(device_campaign.DEVICE_COMMAND) <= 2000  # the device tool's command limit
    doc = (ROOT / "docs" / "accuracy-device.md").read_text()
    assert device_campaign.DEVICE_COMMAND in doc and device_campaign.WHEEL_COMMAND in doc


SUBSET = (  # ~25 s on 2 free cores: full (sdpa, eager), QLoRA, 8-bit AdamW, inference, kernels
    f"train_{dc.Q05}_full_bf16-mixed_adamw-foreach_sdpa_rc-none_s1024",
    f"train_{dc.Q05}_full_bf16-mixed_adamw-foreach_eager_rc-none_s1024",
    f"train_{dc.L1}_qlora_bf16_adamw-foreach_sdpa_rc-none_s1024",
    f"train_{dc.L3}_full_bf16_adamw8bit_sdpa_rc-none_s1024",
    f"infer_{dc.L1}_b1_p{dc.INFER_PROMPT}_d{dc.INFER_DECODE}",
    "kernel_gemm-bf16_o_m256",
    "kernel_gemm-fp8_o_m256",
    "kernel_sdpa-flash_s1024",
    "kernel_sdpa-efficient_s1024",
    "kernel_copy_64mib",
    "kernel_adamw-fused_100m",
    "kernel_adamw-foreach_100m",
)


@pytest.mark.trace
def test_dry_run_of_a_representative_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    pytest.importorskip("torchao")
    ids = set(dc.by_id())
    assert set(SUBSET) <= ids
    args = ["--dry-run", "--out", str(tmp_path)]
    for case_id in SUBSET:
        args += ["--only", case_id]
    assert device_campaign.main(args) == 0
    written = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(written) == set(SUBSET)
    for case_id, record in written.items():
        case = dc.by_id()[case_id]
        assert record["environment"]["dry_run"] is True and "measured" not in record
        if isinstance(case, dc.TrainCase) and case.job.optimizer in UNTRACEABLE:
            assert record["status"] == "untraceable"
            continue
        assert record["status"] == "dry-run", record.get("error")
        if isinstance(case, dc.TrainCase):
            trace, est = record["trace"], record["analytic"]
            assert trace["trainable_params"] == est["trainable_params"]
            assert trace["peak_allocated_bytes"] == sum(trace["peak"].values())
    eager, sdpa = (_forward_peak(written[SUBSET[i]]["trace"]) for i in (1, 0))
    assert eager > sdpa  # the s x s scores are saved by eager attention only
    capsys.readouterr()
    assert device_campaign.main(args) == 0  # resumed: every case already present
    assert f"0 cases run, {len(SUBSET)} already present" in capsys.readouterr().out


def test_without_cuda_the_campaign_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the campaign would run")
    assert device_campaign.main(["--out", str(tmp_path), "--only", "kernel_copy_64mib"]) == 2
    assert "--dry-run" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.json"))


def _forward_peak(trace: dict) -> int:
    return max(peak for phase, _step, peak, _end in trace["timeline"] if phase == "forward")
