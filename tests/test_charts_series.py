"""Chart data (`llmplan.charts`): every value equals the estimate's or the plan's own number; sweeps are
bounded; the largest fitting value sits on the estimate's own OOM boundary."""

from __future__ import annotations

import dataclasses

import pytest

from llmplan import catalog, charts
from llmplan.breakdown import KV_CACHE, Unit
from llmplan.charts.series import SWEEP_POINTS, Charts, front_flags, sweep_points
from llmplan.charts.serving import needed_kv_bytes
from llmplan.charts.training import DEVICE, largest_fitting
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.time import estimate_time
from llmplan.estimate.training import estimate_training
from llmplan.loading import load_model
from llmplan.plan.hardware import choose_hardware
from llmplan.plan.training import Constraints
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob
from llmplan.specs.training import Layout, Method, TrainingJob, ZeroStage

H100 = "h100-sxm-80gb"


@pytest.fixture(scope="module")
def llama8b():
    return load_model("llama-3.1-8b")


def _cluster(gpus: int = 8) -> Cluster:
    return Cluster(accelerator=catalog.accelerator(H100), gpus_per_node=gpus, nodes=1)


TRAIN_CASES = [
    (TrainingJob(), Layout(dp=8, zero=ZeroStage(3)), 8),
    (
        TrainingJob(micro_batch_size=2, seq_len=4096),
        Layout(dp=2, tp=2, cp=2, sequence_parallel=True, zero=ZeroStage(1)),
        8,
    ),
    (TrainingJob(seq_len=1024, grad_accum_steps=4, method=Method.LORA), Layout(dp=1, pp=2), 2),
]
TOO_BIG = (TrainingJob(seq_len=1024, grad_accum_steps=4), Layout(dp=1, pp=2), 2)
"""Full fine-tuning of 8B over 2 GPUs without sharding: 87 GiB per GPU, over the H100's 80."""


@pytest.mark.parametrize("job,layout,gpus", TRAIN_CASES)
def test_memory_stack_is_the_estimate(llama8b, job, layout, gpus) -> None:
    cluster = _cluster(gpus)
    est = estimate_training(llama8b, job, layout, cluster)
    chart = charts.memory_stack(llama8b, job, layout, cluster)
    assert chart.unit is Unit.BYTES and chart.limit == est.capacity_bytes
    for bar in chart.bars:
        assert sum(s.value for s in bar.segments) == pytest.approx(bar.total, abs=1)
    *phases, peak = chart.bars
    assert [b.total for b in phases] == [p.total for p in est.phases]
    assert peak.counter == DEVICE and peak.total == est.device_bytes
    assert [s.name for s in peak.segments] == [t.name for t in est.terms.terms]
    assert all(s.source == t.source for s, t in zip(peak.segments, est.terms.terms, strict=True))


@pytest.mark.parametrize("job,layout,gpus", TRAIN_CASES)
def test_step_time_parts_sum_to_the_step(llama8b, job, layout, gpus) -> None:
    cluster = _cluster(gpus)
    timing = estimate_time(llama8b, job, layout, cluster)
    (bar,) = charts.step_time(llama8b, job, layout, cluster).bars
    assert sum(s.value for s in bar.segments) == pytest.approx(timing.step_s, rel=1e-12)
    assert {s.name for s in bar.segments} >= {"compute_s", "exposed_comm_s", "bubble_s", "optimizer_s"}


@pytest.mark.parametrize("job,layout,gpus", TRAIN_CASES)
@pytest.mark.parametrize("field,chart_of", [("seq_len", charts.memory_vs_seq_len),
                                            ("micro_batch_size", charts.memory_vs_micro_batch)])  # fmt: skip
def test_sweeps_equal_direct_estimates_and_the_oom_boundary(
    llama8b, job, layout, gpus, field, chart_of
) -> None:
    cluster = _cluster(gpus)
    chart = chart_of(llama8b, job, layout, cluster)
    current = getattr(job, field)
    assert chart.current == current and chart.limit == cluster.accelerator.memory_bytes
    device = chart.line(DEVICE)
    xs = [p.x for p in device.points]
    assert current in xs and len(xs) <= SWEEP_POINTS + 2 and xs == sorted(xs)
    for p in device.points:
        est = estimate_training(llama8b, dataclasses.replace(job, **{field: int(p.x)}), layout, cluster)
        assert p.y == est.device_bytes and p.fits == est.fits == (p.y <= chart.limit)
    best = chart.largest_fitting
    assert best is not None
    step = layout.cp if field == "seq_len" else 1
    assert estimate_training(llama8b, dataclasses.replace(job, **{field: best}), layout, cluster).fits
    above = dataclasses.replace(job, **{field: best + step})
    if field == "seq_len" and best + step > llama8b.max_position_embeddings:
        return
    assert not estimate_training(llama8b, above, layout, cluster).fits


def test_nothing_fits_no_largest(llama8b) -> None:
    job, layout, gpus = TOO_BIG
    for chart_of in (charts.memory_vs_seq_len, charts.memory_vs_micro_batch):
        chart = chart_of(llama8b, job, layout, _cluster(gpus))
        points = chart.line(DEVICE).points
        assert chart.largest_fitting is None and chart.current in [p.x for p in points]
        assert not any(p.fits for p in points if p.x >= chart.current)


def test_largest_fitting_on_a_step_function() -> None:
    for limit in (1, 2, 7, 64, 1000, 2**20):
        assert largest_fitting(lambda v, limit=limit: v <= limit, 1, 2**20) == limit
    assert largest_fitting(lambda v: v <= 37, 2, 100, 2) == 36
    assert largest_fitting(lambda v: False, 1, 100) is None
    assert largest_fitting(lambda v: True, 4, 98, 4) == 96


def test_sweep_points_bounded_and_include_anchors() -> None:
    for current, largest in ((1, 4), (2048, 8203), (1, 2**20), (3000, None), (5, 1)):
        xs = sweep_points(current, 1, 2**20, 1, largest)
        assert current in xs and (largest is None or largest in xs)
        assert len(xs) <= SWEEP_POINTS + 2 and all(1 <= x <= 2**20 for x in xs)
    assert all(x % 3 == 0 for x in sweep_points(3, 3, 3000, 3))


def test_front_flags() -> None:
    assert front_flags([(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]) == [True, True, False, True, True]


SERVE_CASES = [
    InferenceJob(context_len=4096),
    InferenceJob(context_len=8192, batch=8, engine=Engine.VLLM),
]


@pytest.mark.parametrize("job", SERVE_CASES)
def test_serving_charts_are_the_estimate(llama8b, job) -> None:
    cluster = _cluster()
    est = estimate_inference(llama8b, job, cluster)
    (bar,) = charts.serving_memory(llama8b, job, cluster).bars
    assert bar.total == est.device_bytes == pytest.approx(sum(s.value for s in bar.segments), abs=1)
    kv = charts.kv_cache_vs_concurrency(llama8b, job, cluster)
    assert kv.largest_fitting == est.max_batch_at_context and kv.current == job.batch
    line = kv.line(KV_CACHE)
    at = {p.x: p for p in line.points}
    assert at[job.batch].y == needed_kv_bytes(est)
    if job.engine is Engine.HF:
        assert at[job.batch].y == est.memory.kv_cache_bytes and kv.limit == est.capacity_bytes
    else:
        assert kv.limit == est.vllm.available_kv_bytes
    for p in line.points:
        direct = estimate_inference(llama8b, dataclasses.replace(job, batch=int(p.x)), cluster)
        assert p.fits == direct.fits
    lat = charts.latency_vs_concurrency(llama8b, job, cluster)
    ttft = {p.x: p.y for p in lat.line("ttft").points}
    assert ttft[job.batch] == est.speed.ttft_s and lat.unit is Unit.SECONDS


def test_hf_largest_concurrency_is_the_oom_boundary(llama8b) -> None:
    job, cluster = SERVE_CASES[0], _cluster()
    best = charts.kv_cache_vs_concurrency(llama8b, job, cluster).largest_fitting
    assert estimate_inference(llama8b, dataclasses.replace(job, batch=best), cluster).fits
    assert not estimate_inference(llama8b, dataclasses.replace(job, batch=best + 1), cluster).fits


@pytest.fixture(scope="module")
def choice():
    model = load_model("llama-3.2-1b")
    clusters = [catalog.cluster_for_gpus("dgx-h100", 8), catalog.cluster_for_gpus("dgx-a100-80gb", 8)]
    return choose_hardware(
        model, TrainingJob(seq_len=2048), clusters, global_batch_tokens=None, tokens=1e10,
        price_usd_per_gpu_hour=2.0, constraints=Constraints(tp=1, pp=1, offload=False), top=30,
    )  # fmt: skip


def test_plan_charts_are_the_plan(choice) -> None:
    out = charts.plan_charts(choice)
    layouts = out.get("plan_layouts")
    plan = choice.fastest.plan
    assert len(layouts.points) == len(plan.layouts) and layouts.points[0].best
    for p, r in zip(layouts.points, plan.layouts, strict=True):
        assert p.x == r.memory.device_bytes and p.y == r.time_to_train_s
        dominated = any(q.x <= p.x and q.y <= p.y and (q.x, q.y) != (p.x, p.y) for q in layouts.points)
        assert p.front is not dominated
    hardware = out.get("plan_hardware")
    assert [p.label for p in hardware.points if p.front] == [
        f"{o.cluster.num_gpus} × {o.cluster.accelerator.id}" for o in choice.pareto
    ]
    assert hardware.y_unit is Unit.USD
    (bar,) = out.get("step_time").bars
    assert bar.total == pytest.approx(plan.layouts[0].step_s, rel=1e-12)
    assert out.get("memory").bars[0].total == plan.layouts[0].memory.device_bytes


def test_charts_round_trip_json(llama8b, choice) -> None:
    job, layout, gpus = TRAIN_CASES[0]
    for out in (
        charts.training_charts(llama8b, job, layout, _cluster(gpus)),
        charts.serving_charts(llama8b, SERVE_CASES[1], _cluster()),
        charts.plan_charts(choice),
    ):
        assert Charts.model_validate(out.model_dump(mode="json")) == out
    with pytest.raises(KeyError, match="charts: plan_layouts"):
        out.get("nope")
