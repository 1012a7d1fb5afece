"""`llmplan plan`: the layout search's bookkeeping, its dominance rules, the reproducing command, hardware
choice and the bad-input messages (exit 2)."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from llmplan import catalog
from llmplan.cli import main
from llmplan.estimate.time import estimate_time
from llmplan.estimate.training import estimate_training
from llmplan.loading import load_model
from llmplan.plan.training import Constraints, search_training
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    PipelineSchedule,
    Recompute,
    Stack,
    TrainingJob,
)

MODEL = "llama-3.2-1b"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def small_plan():
    model = load_model(MODEL)
    cluster = catalog.cluster_for_gpus("dgx-h100", 8)
    job = TrainingJob(seq_len=4096, attention=AttentionImpl.FLASH)
    return model, job, cluster, search_training(model, job, cluster, tokens=1e10, top=8)


def test_every_candidate_lands_in_one_bucket(small_plan) -> None:
    *_, plan = small_plan
    k = plan.counts
    assert k.searched == k.invalid + k.pruned_memory + k.dominated + k.feasible
    assert k.estimated >= k.feasible > 0


def test_ranked_best_first_and_each_is_the_full_estimate(small_plan) -> None:
    model, _, cluster, plan = small_plan
    keys = [r.rank_key for r in plan.layouts]
    assert keys == sorted(keys)
    for r in plan.layouts[:3]:
        mem = estimate_training(model, r.job, r.layout, cluster)
        assert mem.fits and mem.device_bytes == r.memory.device_bytes
        assert estimate_time(model, r.job, r.layout, cluster).step_s == pytest.approx(r.step_s, rel=1e-12)
        tokens = plan.global_batch_seqs * plan.seq_len
        assert r.job.micro_batch_size * r.job.grad_accum_steps * r.layout.dp * r.job.seq_len == tokens


def test_why_shares_add_up_to_the_step(small_plan) -> None:
    *_, plan = small_plan
    shares = [t.value for t in plan.layouts[0].why if t.name.startswith("share.")]
    assert sum(shares) == pytest.approx(1.0)


def test_dominance_rules_hold_under_the_estimates() -> None:
    """What the search skips is never better: sequence parallel vs none, zero-bubble vs 1F1B and GPipe."""
    model = load_model("llama-3.1-8b")
    cluster = catalog.cluster_for_gpus("dgx-h100", 16)
    job = TrainingJob(seq_len=4096, micro_batch_size=1, grad_accum_steps=8, attention=AttentionImpl.FLASH)
    base = Layout(dp=2, tp=4, pp=2, fsdp=FsdpStrategy.FULL_SHARD, stack=Stack.TORCHTITAN)
    sp = dataclasses.replace(base, sequence_parallel=True)
    for a, b in ((sp, base),):
        assert (
            estimate_training(model, job, a, cluster).device_bytes
            <= estimate_training(model, job, b, cluster).device_bytes
        )
        assert estimate_time(model, job, a, cluster).step_s <= estimate_time(model, job, b, cluster).step_s
    zb = dataclasses.replace(sp, pp_schedule=PipelineSchedule.ZERO_BUBBLE)
    for other in (PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.GPIPE):
        lay = dataclasses.replace(sp, pp_schedule=other)
        assert (
            estimate_training(model, job, zb, cluster).device_bytes
            <= estimate_training(model, job, lay, cluster).device_bytes
        )
        assert estimate_time(model, job, zb, cluster).step_s <= estimate_time(model, job, lay, cluster).step_s


def test_json_and_the_command_reproduce_the_breakdown(capsys) -> None:
    code, out, err = run(
        capsys, MODEL, "--gpus", "8", "--seq-len", "4096", "--tp", "2", "--top", "2", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    body = data["plan"]
    assert data["command"] == "plan" and body["searched"] > body["feasible"] > 0
    assert body["elapsed_s"] > 0 and len(body["layouts"]) == 2
    best = body["layouts"][0]
    assert best["fits"] and best["layout"]["tp"] == 2 and best["device_bytes"] <= best["capacity_bytes"]
    args = shlex.split(best["command"])
    assert args[:2] == ["llmplan", "train"]
    assert main([*args[1:], "--json"]) == 0
    train = json.loads(capsys.readouterr().out)
    assert train["device_bytes"] == best["device_bytes"]
    assert train["time"]["step_s"] == pytest.approx(best["step_s"], rel=1e-9)


def test_hardware_choice_names_fastest_and_cheapest(capsys) -> None:
    code, out, err = run(
        capsys, MODEL, "--gpu", "h100-sxm-80gb,a100-sxm-80gb", "--gpus", "8", "--tp", "1", "--pp", "1",
        "--tokens", "10B", "--no-offload", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    names = [f"{o['accelerator']} x {o['gpus']}" for o in data["options"]]
    assert len(names) == 2 and data["fastest"] in names and data["cheapest"] in names
    assert set(data["pareto"]) <= set(names) and data["fastest"] in data["pareto"]


def test_cluster_too_small_says_how_far(capsys) -> None:
    code, _, err = run(capsys, "llama-3.1-70b", "--gpus", "1", "--seq-len", "2048", "--no-offload")
    assert code == 2
    assert "no layout of" in err and "closest" in err and "GiB over" in err and "Traceback" not in err


def test_unreachable_global_batch(capsys) -> None:
    code, _, err = run(
        capsys, MODEL, "--gpus", "8", "--seq-len", "4096", "--global-batch-tokens", "12288", "--tp", "1",
        "--pp", "1", "--cp", "1",
    )  # fmt: skip
    assert code == 2 and "global_batch_tokens" in err and "dp" in err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--gpus", "8", "--tp", "8", "--pp", "4"), "tp"),
        (("--gpus", "8", "--budget-usd", "100"), "tokens"),
        (("--cluster", "dgx-h100", "--gpu", "a100-sxm-80gb"), "gpu"),
        (("--gpus", "8", "--global-batch-tokens", "1000"), "global_batch_tokens"),
        (("--gpus", "8,x"), "gpus"),
    ],
)
def test_contradictions_exit_2(capsys, args, field) -> None:
    code, _, err = run(capsys, MODEL, *args)
    assert code == 2 and err.startswith(f"error: {field}"), err


def test_constraints_restrict_the_space() -> None:
    model = load_model(MODEL)
    cluster = catalog.cluster_for_gpus("dgx-h100", 8)
    job = TrainingJob(seq_len=2048)
    plan = search_training(model, job, cluster, top=3, constraints=Constraints(tp=2, pp=1, offload=False))
    assert plan.layouts and all(r.layout.tp == 2 and r.layout.pp == 1 for r in plan.layouts)
    assert all(r.layout.offload_optimizer.value == "none" for r in plan.layouts)


def test_a_schedule_left_out_dominates_nothing() -> None:
    """With only 1F1B allowed, pipelined layouts are timed with 1F1B (zero-bubble is not there to beat it)."""
    model = load_model(MODEL)
    cluster = catalog.cluster_for_gpus("dgx-h100", 8)
    k = Constraints(
        pp=2, shardings=("megatron zero 0", "megatron zero 1"), offload=False,
        schedules=(PipelineSchedule.ONE_F_ONE_B,), recomputes=(Recompute.NONE,),
    )  # fmt: skip
    plan = search_training(model, TrainingJob(seq_len=2048), cluster, top=None, constraints=k)
    assert plan.layouts and {r.layout.pp_schedule for r in plan.layouts} == {PipelineSchedule.ONE_F_ONE_B}
    assert {r.layout.stack for r in plan.layouts} == {Stack.MEGATRON}
    assert {r.job.recompute for r in plan.layouts} == {Recompute.NONE}
