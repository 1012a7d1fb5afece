"""Training memory: reference cases as data (design.md's Llama-2-7B trace, the seeds' worked examples, the
ZeRO paper's accounting) and the behaviour of sharding, offload, QLoRA, paged and 8-bit optimizers."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import LLAMA_2_7B

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.errors import LayoutError, SpecError
from llmplan.estimate.rules import training_rules
from llmplan.estimate.suggest import suggest
from llmplan.estimate.training import Phase, estimate_training
from llmplan.formulas.model_states import ds_persistent_elems, model_states, rank_inventory
from llmplan.formulas.params import count_params
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    TrainingJob,
    ZeroStage,
)
from llmplan.units import GIB

LLAMA = parse_config(LLAMA_2_7B, "llama-2-7b (tests/conftest.py)")
N = 6_738_415_616
H100 = catalog.accelerator("h100-sxm-80gb")


def cluster(gpus: int = 1, acc=H100) -> Cluster:
    return Cluster(accelerator=acc, gpus_per_node=min(gpus, 8), nodes=max(1, gpus // 8))


# design.md, "What tracing on this machine already showed": Llama-2-7B, bf16, batch 1, AdamW foreach,
# first step. (field, GiB, tolerance GiB)
DESIGN_7B_BF16 = [
    ("weights_bytes", 12.55, 0.005),
    ("gradients_bytes", 12.55, 0.005),
    ("optimizer_states_bytes", 25.10, 0.005),
    ("optimizer_temporaries_bytes", 12.55, 0.005),
]


@pytest.mark.parametrize(("field", "gib", "tol"), DESIGN_7B_BF16)
def test_design_7b_model_states(field: str, gib: float, tol: float) -> None:
    ms = model_states(LLAMA, TrainingJob(precision=Precision.BF16), Layout())
    assert getattr(ms, field) / GIB == pytest.approx(gib, abs=tol)


def test_design_7b_peak_in_first_optimizer_step() -> None:
    est = estimate_training(LLAMA, TrainingJob(precision=Precision.BF16), Layout(), cluster())
    assert est.peak_phase is Phase.OPTIMIZER_STEP
    step = next(p for p in est.phases if p.phase is Phase.OPTIMIZER_STEP)
    assert step.total / GIB == pytest.approx(62.76, abs=0.01)  # design.md: 62.76 GiB traced
    fused = estimate_training(
        LLAMA, TrainingJob(precision=Precision.BF16, optimizer_impl=OptimizerImpl.FUSED), Layout(), cluster()
    )
    fused_step = next(p for p in fused.phases if p.phase is Phase.OPTIMIZER_STEP)
    assert fused_step.total / GIB == pytest.approx(50.2, abs=0.02)  # design.md: fused removes the temporary
    assert fused.peak_phase is not Phase.OPTIMIZER_STEP


def test_exact_bytes_per_parameter() -> None:
    """The ZeRO paper's accounting (section 3.1): 2 + 2 + 12 bytes per parameter for mixed-precision Adam."""
    assert count_params(LLAMA).total == N
    ms = model_states(LLAMA, TrainingJob(precision=Precision.BF16_MIXED), Layout())
    assert (ms.weights_bytes, ms.gradients_bytes, ms.master_weights_bytes) == (2 * N, 2 * N, 4 * N)
    assert ms.optimizer_states_bytes == 8 * N
    assert ms.total == 16 * N
    fp32 = model_states(LLAMA, TrainingJob(precision=Precision.FP32), Layout())
    assert (fp32.weights_bytes, fp32.gradients_bytes, fp32.optimizer_states_bytes) == (4 * N, 4 * N, 8 * N)


@pytest.mark.parametrize(
    ("optimizer", "bytes_per_param"),
    [
        (Optimizer.SGD, 0.0),
        (Optimizer.SGD_MOMENTUM, 4.0),
        (Optimizer.LION, 4.0),
        (Optimizer.ADAMW, 8.0),
        (Optimizer.ADAM8BIT, 2 * (1 + 4 / 256)),
    ],
)
def test_optimizer_state_bytes(optimizer: Optimizer, bytes_per_param: float) -> None:
    ms = model_states(LLAMA, TrainingJob(optimizer=optimizer), Layout())
    assert ms.optimizer_states_bytes / N == pytest.approx(bytes_per_param, rel=1e-6)


def test_adafactor_factored_states() -> None:
    ms = model_states(LLAMA, TrainingJob(optimizer=Optimizer.ADAFACTOR), Layout())
    inv = rank_inventory(LLAMA, 1, 1, 1, 0)
    assert ms.optimizer_states_bytes == pytest.approx(4 * inv.factored, rel=1e-6)
    # rows + cols of a 4096 x 4096 matrix: 8192 of 16.8M elements
    assert ms.optimizer_states_bytes < 0.01 * N


def test_seed_rules_reproduced_exactly() -> None:
    """Each seed rule configured as the seed does agrees exactly (docs/rules-of-thumb.md)."""
    exact = [r for r in training_rules() if r.why.startswith("agrees exactly")]
    assert {r.seed for r in exact} == {"000", "001", "002", "003"}
    for row in exact:
        assert row.llmplan_value == pytest.approx(row.rule_value, rel=1e-12), row


def test_seed_002_activation_arithmetic() -> None:
    from llmplan.estimate.rules import seed002_activation_bytes

    assert seed002_activation_bytes(4096, 11008, 2048, 32, 4) == 3_959_422_976  # "~ 4GB"


def test_zero_shards_over_data_parallel_group_only() -> None:
    """dp 2 × tp 4 on 8 GPUs: ZeRO-1 divides the states of a tp rank by 2 (dp), not by 8 (all GPUs)."""
    job = TrainingJob()
    plain = model_states(LLAMA, job, Layout(tp=4, dp=2))
    zero1 = model_states(LLAMA, job, Layout(tp=4, dp=2, zero=ZeroStage.OPTIMIZER))
    assert zero1.sharding_group == 2
    assert zero1.optimizer_states_bytes == -(-plain.optimizer_states_bytes // 2)
    assert zero1.gradients_bytes == plain.gradients_bytes
    zero3 = model_states(LLAMA, job, Layout(tp=4, dp=2, zero=ZeroStage.PARAMETERS))
    # DeepSpeed keeps tensors of at most 10·h elements (the norms) whole on every rank
    persistent = 2 * ds_persistent_elems(LLAMA, job, tp=4, pp=1, stage=0, threshold=10 * 4096)
    assert persistent == 2 * (2 * 32 + 1) * 4096
    assert zero3.weights_bytes == -(-plain.weights_bytes // 2) + persistent - persistent // 2


def test_context_parallel_joins_the_sharding_group() -> None:
    ms = model_states(LLAMA, TrainingJob(), Layout(dp=2, cp=2, fsdp=FsdpStrategy.FULL_SHARD))
    assert ms.sharding_group == 4


def test_tensor_parallel_splits_linears_not_norms() -> None:
    whole = rank_inventory(LLAMA, 1, 1, 1, 0)
    half = rank_inventory(LLAMA, 2, 1, 1, 0)
    norms = 32 * 2 * 4096 + 4096
    assert half.total == (whole.total - norms) // 2 + norms


def test_pipeline_stage_holds_its_layers() -> None:
    first = rank_inventory(LLAMA, 1, 1, 4, 0)
    last = rank_inventory(LLAMA, 1, 1, 4, 3)
    layer = LLAMA.layers[0].numel
    assert first.total == 8 * layer + 32000 * 4096
    assert last.total == 8 * layer + 4096 + 32000 * 4096


def test_offload_optimizer_moves_states_to_host() -> None:
    layout = Layout(zero=ZeroStage.GRADIENTS, offload_optimizer=OffloadTarget.CPU)
    ms = model_states(LLAMA, TrainingJob(), layout)
    assert ms.optimizer_states_bytes == ms.master_weights_bytes == ms.optimizer_temporaries_bytes == 0
    assert ms.host_bytes == 16 * N  # master 4 + states 8 + fp32 gradients 4
    assert ms.weights_bytes == ms.gradients_bytes == 2 * N
    nvme = model_states(
        LLAMA, TrainingJob(), dataclasses.replace(layout, offload_optimizer=OffloadTarget.NVME)
    )
    assert nvme.nvme_bytes == 12 * N


def test_zero3_param_offload_keeps_gather_buffers() -> None:
    layout = Layout(dp=8, zero=ZeroStage.PARAMETERS, offload_params=OffloadTarget.CPU)
    ms = model_states(LLAMA, TrainingJob(), layout)
    assert ms.weights_bytes == 0
    # the head (32000 × 4096) and the whole last layer stay gathered across the turn from forward to backward
    # (head + layer < stage3_max_reuse_distance), plus the prefetch bucket 0.9·h² ("auto")
    head, layer = 32000 * 4096, LLAMA.layers[0].numel
    assert ms.gather_buffers_bytes == 2 * (head + layer + int(0.9 * 4096 * 4096))


def test_qlora_nf4_base() -> None:
    inv = rank_inventory(LLAMA, 1, 1, 1, 0)
    bits = 8 * inv.nf4_bytes / inv.block_linear_weights
    assert bits == pytest.approx(4.127, abs=0.002)  # QLoRA section 3: 0.127 bit of constants per weight
    job = TrainingJob(method=Method.QLORA, peft=PeftSpec(lora_targets=("all-linear",), lora_rank=16))
    ms = model_states(LLAMA, job, Layout())
    high = (inv.total - inv.block_linear_weights) * 2
    adapters = 16 * 32 * (3 * (4096 + 4096) + 4096 + 4096 + 2 * (4096 + 11008) + (11008 + 4096))
    assert ms.weights_bytes == inv.nf4_bytes + high + 4 * adapters
    assert ms.master_weights_bytes == 0  # adapters are fp32 already


def test_paged_optimizer_evicts_instead_of_failing() -> None:
    job = TrainingJob(optimizer=Optimizer.PAGED_ADAMW)
    est = estimate_training(LLAMA, job, Layout(), cluster())
    assert est.fits
    assert est.host_bytes > 0
    assert est.device_bytes <= est.capacity_bytes


def test_does_not_fit_and_suggestions_fit() -> None:
    job = TrainingJob()
    est = estimate_training(LLAMA, job, Layout(), cluster())
    assert not est.fits and est.headroom_bytes < 0
    tips = suggest(LLAMA, job, Layout(), cluster(), baseline=est)
    assert any(not t.keeps_method and t.job.peft.lora_targets == ("all-linear",) for t in tips)
    assert all(t.saved_bytes > 0 and t.device_bytes <= H100.memory_bytes for t in tips)


def test_counters_are_ordered() -> None:
    est = estimate_training(LLAMA, TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS), cluster(8))
    assert est.allocated_bytes < est.reserved_bytes < est.device_bytes
    assert est.memory.total == est.device_bytes


@pytest.mark.parametrize(
    ("job", "layout", "gpus", "error"),
    [
        (TrainingJob(), Layout(tp=3, dp=1), 3, LayoutError),  # 32 heads
        (TrainingJob(), Layout(pp=64), 64, LayoutError),
        (TrainingJob(), Layout(dp=4), 8, LayoutError),
        (TrainingJob(), Layout(ep=2, dp=2), 2, LayoutError),  # dense model
        (TrainingJob(method=Method.LORA, peft=PeftSpec(lora_targets=("wq",))), Layout(), 1, SpecError),
        (TrainingJob(method=Method.QLORA, precision=Precision.FP8_MIXED), Layout(), 1, SpecError),
        (
            TrainingJob(optimizer=Optimizer.ADAM8BIT),
            Layout(zero=ZeroStage.OPTIMIZER, offload_optimizer=OffloadTarget.CPU),
            1,
            SpecError,
        ),
        (TrainingJob(optimizer_impl=OptimizerImpl.IN_BACKWARD, grad_accum_steps=4), Layout(), 1, SpecError),
    ],
)
def test_impossible_layouts_and_jobs(job, layout, gpus, error) -> None:
    with pytest.raises(error):
        estimate_training(LLAMA, job, layout, cluster(gpus))


def test_fp8_needs_fp8_hardware() -> None:
    a100 = catalog.accelerator("a100-sxm-80gb")
    with pytest.raises(SpecError, match="fp8"):
        estimate_training(LLAMA, TrainingJob(precision=Precision.FP8_MIXED), Layout(), cluster(1, a100))


def test_kv_heads_replicated_when_tp_exceeds_them() -> None:
    gqa = parse_config({**LLAMA_2_7B, "num_key_value_heads": 4}, "gqa")
    est = estimate_training(gqa, TrainingJob(), Layout(tp=8), cluster(8))
    assert est.device_bytes > 0
    with pytest.raises(LayoutError, match="kv heads"):
        estimate_training(
            parse_config(
                {**LLAMA_2_7B, "num_key_value_heads": 6, "num_attention_heads": 48, "hidden_size": 6144}, "x"
            ),
            TrainingJob(),
            Layout(tp=16),
            cluster(16),
        )


# The trace engine (src/llmplan/trace, fake tensors, transformers 5.23, torch 2.13 CPU; run 2026-11-23 in the
# validation matrix, case `llama-2-7b-full-s2048`): Llama-2-7B, bf16-mixed AdamW foreach, batch 1 x 2048, two
# steps; peak allocated bytes at the optimizer step: 2 (weights) + 4 (master) + 4 (fp32 gradients)
# + 8 (states) + 4 (foreach temporary) bytes per parameter.
TRACE_7B_MIXED_PEAK = 148_245_309_952


def test_trace_engine_7b_mixed_peak() -> None:
    est = estimate_training(LLAMA, TrainingJob(), Layout(), cluster())
    assert est.peak_phase is Phase.OPTIMIZER_STEP
    analytic = est.allocated_bytes - est.overheads.cublas_workspace_bytes
    assert analytic == pytest.approx(TRACE_7B_MIXED_PEAK, rel=1e-4)
