"""Training step time, throughput, MFU, the pipeline bubble, time to train and cost: behaviour and bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest

from llmplan import catalog
from llmplan.cli import main
from llmplan.errors import LayoutError, SpecError
from llmplan.estimate.cost import estimate_run
from llmplan.estimate.time import estimate_time
from llmplan.formulas.compute_time import gemm_time, tile_efficiency, training_gemm_fraction
from llmplan.formulas.flops import Gemm, Pass, model_flops_per_token, step_ops
from llmplan.formulas.pipeline import StageTime, pipeline_time
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster, Direction, Link
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    PipelineSchedule,
    Recompute,
    TrainingJob,
    ZeroStage,
)

IB = Link("IB NDR 400", 50e9, Direction.UNIDIRECTIONAL)


@pytest.fixture(scope="module")
def llama():
    return load_model("llama-2-7b")


def cluster(gpus: int, gpu: str = "h100-sxm-80gb") -> Cluster:
    per_node = min(gpus, 8)
    return Cluster(
        accelerator=catalog.accelerator(gpu), gpus_per_node=per_node, nodes=gpus // per_node, inter_node=IB
    )


def test_parts_add_up_and_throughput_follows_the_step(llama):
    job = TrainingJob(micro_batch_size=2, seq_len=4096, grad_accum_steps=4)
    est = estimate_time(llama, job, Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD), cluster(8))
    assert est.step_s == pytest.approx(sum(t.value for t in est.step.terms))
    assert est.tokens_per_step == 8 * 4 * 2 * 4096
    assert est.tokens_per_s == pytest.approx(est.tokens_per_step / est.step_s)
    assert est.tokens_per_s_per_gpu == pytest.approx(est.tokens_per_s / 8)
    assert 0 < est.mfu_causal < est.mfu < 1
    exposed = est.step.get("exposed_comm_s")
    assert exposed.value == pytest.approx(sum(p.value for p in exposed.parts))
    for term in est.comm:  # the exposed part never exceeds the collective
        assert 0 <= term.parts[0].value <= term.value + 1e-12


def test_recomputation_costs_time_and_raises_hfu_over_mfu(llama):
    lay, cl = Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD), cluster(8)
    times = {r: estimate_time(llama, TrainingJob(seq_len=4096, recompute=r), lay, cl) for r in Recompute}
    assert times[Recompute.NONE].step_s < times[Recompute.SELECTIVE].step_s < times[Recompute.FULL].step_s
    full = times[Recompute.FULL]
    assert full.step.value("recompute_s") > 0
    assert full.hfu > full.mfu_causal


def test_lora_is_faster_than_full_training(llama):
    lay, cl = Layout(dp=1), cluster(1)
    full = estimate_time(llama, TrainingJob(seq_len=2048), lay, cl)
    lora = estimate_time(llama, TrainingJob(seq_len=2048, method=Method.LORA), lay, cl)
    assert lora.step_s < full.step_s


def test_tensor_parallel_adds_exposed_all_reduces(llama):
    job = TrainingJob(seq_len=2048)
    tp = estimate_time(llama, job, Layout(tp=8), cluster(8))
    names = {p.name for p in tp.step.get("exposed_comm_s").parts}
    assert "comm.tp_all_reduce" in names
    assert tp.step.value("comm.tp_all_reduce") > 0


def test_unequal_stages_set_the_bubble():
    # stage 0 lighter, stage 1 (the head) heavier: (m - 1) · t_max + Σ (f + b)
    stages = [StageTime(1.0, 2.0), StageTime(1.5, 3.0)]
    one = pipeline_time(stages, 4, PipelineSchedule.ONE_F_ONE_B)
    assert one.busy_s == pytest.approx(4 * 4.5)
    assert one.bubble_s == pytest.approx(3.0)
    assert pipeline_time(stages, 4, PipelineSchedule.GPIPE).total == pytest.approx(one.total)
    inter = pipeline_time(stages, 4, PipelineSchedule.INTERLEAVED, virtual=3)
    assert inter.bubble_s == pytest.approx(1.0)
    zb = pipeline_time([StageTime(1.0, 2.0, 1.0), StageTime(1.5, 3.0, 1.5)], 4, PipelineSchedule.ZERO_BUBBLE)
    assert zb.bubble_s == pytest.approx(1.0)


def test_pipeline_schedules_order_the_step(llama):
    job = TrainingJob(seq_len=2048, grad_accum_steps=8)
    cl = cluster(4)
    steps = {}
    for schedule, v in (
        (PipelineSchedule.ONE_F_ONE_B, 1),
        (PipelineSchedule.INTERLEAVED, 2),
        (PipelineSchedule.ZERO_BUBBLE, 1),
    ):
        lay = Layout(pp=4, pp_schedule=schedule, pp_virtual_stages=v)
        steps[schedule] = estimate_time(llama, job, lay, cl)
    one = steps[PipelineSchedule.ONE_F_ONE_B]
    assert one.step.value("bubble_s") > 0
    assert steps[PipelineSchedule.INTERLEAVED].step.value("bubble_s") < one.step.value("bubble_s")
    assert steps[PipelineSchedule.ZERO_BUBBLE].step.value("bubble_s") < one.step.value("bubble_s")


def test_schedules_the_layout_cannot_run_are_refused(llama):
    job = TrainingJob(grad_accum_steps=8)
    with pytest.raises(LayoutError, match="layers"):
        estimate_time(
            llama,
            job,
            Layout(pp=8, pp_schedule=PipelineSchedule.INTERLEAVED, pp_virtual_stages=8),
            cluster(8),
        )
    with pytest.raises(LayoutError, match="virtual"):
        estimate_time(llama, job, Layout(pp=2, pp_virtual_stages=2), cluster(2))
    with pytest.raises(LayoutError, match="multiple"):
        estimate_time(
            llama,
            TrainingJob(grad_accum_steps=3),
            Layout(pp=2, pp_schedule=PipelineSchedule.INTERLEAVED, pp_virtual_stages=2),
            cluster(2),
        )


def test_model_flops_conventions(llama):
    n = sum(lin.in_features * lin.out_features for b in llama.layers for lin in b.linears) + 4096 * 32000
    attn = 12 * 32 * 4096 * 2048
    assert model_flops_per_token(llama, 2048, causal=False) == 6 * n + attn
    assert model_flops_per_token(llama, 2048, causal=True) == 6 * n + attn / 2


def test_causal_flash_runs_half_the_scores_eager_the_whole_square(llama):
    from llmplan.specs.training import AttentionImpl

    eager = step_ops(llama, TrainingJob(seq_len=1024, attention=AttentionImpl.EAGER), frozenset())
    flash = step_ops(llama, TrainingJob(seq_len=1024, attention=AttentionImpl.FLASH), frozenset())
    fwd = lambda ops: sum(a.flops for a in ops.attention if a.step is Pass.FORWARD)  # noqa: E731
    assert fwd(flash) == pytest.approx(fwd(eager) * (1024 + 1) / 2 / 1024)


def test_gemm_tiles_and_small_gemms():
    acc = catalog.accelerator("a100-sxm-80gb")
    assert tile_efficiency(4096, 4096, 4096) == 1.0
    assert tile_efficiency(129, 4096, 4096) == pytest.approx(129 / 256)
    big = Gemm("x", 8192, 8192, 8192, 1, Pass.FORWARD)
    achieved = big.flops / gemm_time(big, acc, "bf16")
    assert achieved == pytest.approx(312e12 * training_gemm_fraction(acc), rel=1e-6)
    assert training_gemm_fraction(acc) < 0.859  # below the MAMF burst
    skinny = Gemm("lora_A", 8192, 16, 4096, 1, Pass.FORWARD)  # rank-16 product: memory-bound
    assert skinny.flops / gemm_time(skinny, acc, "bf16") < 0.2 * 312e12


def test_cost_of_a_run(llama):
    acc = catalog.accelerator("h100-sxm-80gb")
    est = estimate_time(llama, TrainingJob(), Layout(dp=8), cluster(8))
    timed, cost = estimate_run(est, tokens=1e12, gpus=8, acc=acc, price_usd_per_gpu_hour=2.0)
    assert timed.time_to_train_s == pytest.approx(1e12 / est.tokens_per_s)
    assert cost.gpu_hours == pytest.approx(8 * timed.time_to_train_s / 3600)
    assert cost.usd == pytest.approx(cost.gpu_hours * 2.0)
    assert cost.energy_kwh == pytest.approx(cost.gpu_hours * acc.tdp_w / 1000)
    _, catalog_price = estimate_run(est, tokens=1e12, gpus=8, acc=acc)
    assert catalog_price.usd == pytest.approx(cost.gpu_hours * acc.price.usd_per_gpu_hour)
    for bad in (-1.0, 0.0, float("inf"), 1e20):
        with pytest.raises(SpecError, match="tokens"):
            estimate_run(est, tokens=bad, gpus=8, acc=acc)
    with pytest.raises(SpecError, match="price"):
        estimate_run(est, tokens=1e9, gpus=8, acc=acc, price_usd_per_gpu_hour=-3.0)


def test_multi_node_groups_need_a_network(llama):
    bare = dataclasses.replace(cluster(16), inter_node=None)
    with pytest.raises(SpecError, match="network"):
        estimate_time(llama, TrainingJob(), Layout(dp=16), bare)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["train", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_time_and_cost_json(capsys):
    code, out, _ = run(
        capsys, "llama-2-7b", "--gpus", "16", "--fsdp", "full-shard", "--tokens", "1T", "--json"
    )
    assert code == 0
    data = json.loads(out)
    t = data["time"]
    assert t["step_s"] > 0 and t["tokens_per_s_per_gpu"] * 16 == pytest.approx(t["tokens_per_s"])
    assert {term["name"] for term in t["step"]["terms"]} == {
        "compute_s",
        "recompute_s",
        "exposed_comm_s",
        "bubble_s",
        "optimizer_s",
        "offload_s",
    }
    assert t["time_to_train_s"] == pytest.approx(1e12 / t["tokens_per_s"])
    assert data["cost"]["usd"] > 0 and data["cost"]["energy_kwh"] > 0


def test_cli_explain_lists_the_constants(capsys):
    code, out, _ = run(capsys, "llama-2-7b", "--explain")
    assert code == 0
    assert "mamf_fraction" in out and "stas00/ml-engineering" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--tokens", "-5"), "tokens"),
        (("--tokens", "1e30"), "tokens"),
        (("--tokens", "lots"), "tokens"),
        (("--tokens", "1T", "--price", "-2"), "price"),
        (("--gpus", "12", "--gpus-per-node", "8"), "gpus"),
        (("--nodes", "2", "--gpus", "12"), "gpus"),
        (
            ("--pp", "2", "--gpus", "2", "--pp-schedule", "interleaved", "--virtual-stages", "32"),
            "pp_schedule",
        ),
        (("--epochs", "2"), "epochs"),
    ],
)
def test_cli_bad_time_input_exits_2(capsys, args, field):
    code, out, err = run(capsys, "llama-2-7b", *args)
    assert code == 2
    assert err.startswith((f"error: {field}", f"error: --{field}"))
    assert "Traceback" not in err


def test_cli_cluster_preset_and_unknown_cluster(capsys):
    code, out, _ = run(
        capsys, "llama-2-7b", "--cluster", "dgx-a100-80gb", "--nodes", "2", "--fsdp", "full-shard", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["accelerator"].startswith("NVIDIA A100")
    assert data["time"]["tokens_per_step"] == 16 * 2048
    code, _, err = run(capsys, "llama-2-7b", "--cluster", "no-such-cluster")
    assert code == 2 and "cluster" in err
    code, _, err = run(capsys, "llama-2-7b", "--cluster", "dgx-h100", "--gpus", "12")
    assert code == 2 and err.startswith("error: gpus")


@pytest.mark.parametrize(
    ("model_id", "job", "layout", "gpus", "collective"),
    [
        (
            "llama-2-7b",
            TrainingJob(),
            Layout(dp=16, fsdp=FsdpStrategy.HYBRID_SHARD),
            16,
            "comm.hsdp_all_reduce",
        ),
        ("llama-2-7b", TrainingJob(), Layout(dp=8, zero=ZeroStage.GRADIENTS), 8, "comm.zero_reduce_scatter"),
        ("llama-2-7b", TrainingJob(seq_len=8192), Layout(dp=4, cp=2), 8, "comm.cp_ring_p2p"),
        (
            "mixtral-8x7b-v0.1",
            TrainingJob(),
            Layout(dp=8, ep=8, fsdp=FsdpStrategy.FULL_SHARD),
            8,
            "comm.ep_all_to_all",
        ),
        (
            "llama-2-7b",
            TrainingJob(),
            Layout(dp=8, zero=ZeroStage.PARAMETERS, offload_params=OffloadTarget.CPU),
            8,
            "comm.offload_params_h2d",
        ),
    ],
)
def test_every_collective_of_the_layout_is_counted(model_id, job, layout, gpus, collective):
    est = estimate_time(load_model(model_id), job, layout, cluster(gpus))
    names = {t.name for t in est.comm}
    assert collective in names, names
    term = next(t for t in est.comm if t.name == collective)
    assert term.value > 0


def test_optimizer_offload_moves_the_step_to_the_host(llama):
    on_gpu = estimate_time(llama, TrainingJob(), Layout(dp=8, zero=ZeroStage.OPTIMIZER), cluster(8))
    lay = Layout(dp=8, zero=ZeroStage.OPTIMIZER, offload_optimizer=OffloadTarget.CPU)
    offloaded = estimate_time(llama, TrainingJob(), lay, cluster(8))
    assert on_gpu.step.value("offload_s") == 0 and on_gpu.step.value("optimizer_s") > 0
    assert offloaded.step.value("optimizer_s") == 0 and offloaded.step.value("offload_s") > 0


def test_megatron_overlaps_the_parameter_gather(llama):
    from llmplan.specs.training import Stack

    deepspeed = estimate_time(llama, TrainingJob(), Layout(dp=8, zero=ZeroStage.OPTIMIZER), cluster(8))
    megatron = estimate_time(
        llama, TrainingJob(), Layout(dp=8, zero=ZeroStage.OPTIMIZER, stack=Stack.MEGATRON), cluster(8)
    )
    assert megatron.step.value("comm.zero_all_gather") < deepspeed.step.value("comm.zero_all_gather")
