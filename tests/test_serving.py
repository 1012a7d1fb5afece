"""Serving under load: engine defaults, the step model, the scheduler simulation, metrics, SLO search, CLI."""

from __future__ import annotations

import json
import math

import pytest

from llmplan import catalog
from llmplan.catalog.torch_memory import torch_total
from llmplan.cli import main
from llmplan.errors import SpecError
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.serving import EngineOverrides, plan_serving
from llmplan.estimate.serving_metrics import itl_percentiles, percentiles
from llmplan.estimate.serving_slo import Slo, search
from llmplan.formulas.serving_step import SpecDecode, decode_coefficients, step_time_s
from llmplan.loading import load_model
from llmplan.specs.engines import Admission, ServingEngine, engine_defaults
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat, VllmSettings
from llmplan.specs.serving import LengthDist, Workload


def cluster(gpu: str = "h100") -> Cluster:
    return Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=8)


def workload(isl: int = 512, osl: int = 64, **kw) -> Workload:
    return Workload(
        input_len=LengthDist.of("input_len", isl), output_len=LengthDist.of("output_len", osl), **kw
    )


def plan(model: str = "llama-3.1-8b", engine: ServingEngine = ServingEngine.VLLM, context: int = 576, **kw):
    job_kw = {k: kw.pop(k) for k in ("tp", "quant", "kv_dtype") if k in kw}
    job = InferenceJob(context_len=context, **job_kw)
    return plan_serving(load_model(model), job, cluster(kw.pop("gpu", "h100")), engine, context=context, **kw)


# --- engine defaults and torch's memory total --------------------------------------------------------------


def test_engine_defaults_follow_the_gpu_and_cite_a_source() -> None:
    h100 = engine_defaults(ServingEngine.VLLM, catalog.accelerator("h100"))
    a100 = engine_defaults(ServingEngine.VLLM, catalog.accelerator("a100-sxm-80gb"))
    assert (h100.max_num_seqs.value, h100.max_num_batched_tokens.value) == (1024, 8192)
    assert (a100.max_num_seqs.value, a100.max_num_batched_tokens.value) == (256, 2048)
    trt = engine_defaults(ServingEngine.TRTLLM, catalog.accelerator("h100"))
    assert trt.admission is Admission.RESERVE_MAX and trt.chunked_prefill.value is False
    for engine in ServingEngine:
        for name, setting in engine_defaults(engine, catalog.accelerator("h100"), 2).settings():
            assert setting.source, name


def test_torch_total_is_below_nvidia_smi() -> None:
    h100 = catalog.accelerator("h100")
    seen = torch_total(h100)
    assert seen.measured and seen.bytes == round(79.11 * 2**30) < h100.memory_bytes
    other = torch_total(catalog.accelerator("a100-sxm-80gb"))
    assert not other.measured and other.bytes < catalog.accelerator("a100-sxm-80gb").memory_bytes


# --- the step model ------------------------------------------------------------------------------------------


def test_decode_step_is_weight_bound_at_small_batch_and_compute_bound_at_large() -> None:
    m = plan().step_model
    one = step_time_s(m, decode_seqs=1, decode_kv_tokens=0, prefill_tokens=0, prefill_pairs=0, head_rows=1)
    eight = step_time_s(m, decode_seqs=8, decode_kv_tokens=0, prefill_tokens=0, prefill_pairs=0, head_rows=8)
    assert eight < 1.05 * one  # the weights are read once for the whole batch
    big = step_time_s(m, decode_seqs=0, decode_kv_tokens=0, prefill_tokens=8192, prefill_pairs=0, head_rows=0)
    bigger = step_time_s(
        m, decode_seqs=0, decode_kv_tokens=0, prefill_tokens=16384, prefill_pairs=0, head_rows=0
    )
    assert bigger == pytest.approx(2 * big, rel=0.05)


def test_tp_all_reduces_cost_latency_at_small_batch() -> None:
    m1 = plan(tp=1).step_model
    m4 = plan(tp=4).step_model
    assert m1.allreduces_per_layer == 0 and m4.allreduces_per_layer == 2
    alpha, beta = m4.tp_allreduce
    assert alpha > 5e-6 and beta > 0


def test_fp8_kv_halves_the_attention_read_and_eager_costs_more() -> None:
    bf16 = plan().step_model
    fp8 = plan(kv_dtype=KvDtype.FP8).step_model
    assert fp8.kv_bytes_per_token * 2 == bf16.kv_bytes_per_token
    eager = plan(overrides=EngineOverrides(cuda_graphs=False)).step_model
    args = {
        "decode_seqs": 4,
        "decode_kv_tokens": 2048,
        "prefill_tokens": 0,
        "prefill_pairs": 0,
        "head_rows": 4,
    }
    assert step_time_s(eager, **args) > step_time_s(bf16, **args)


def test_speculative_tokens_per_step() -> None:
    assert SpecDecode(draft_tokens=3, acceptance_rate=0.0).tokens_per_step == 1.0
    assert SpecDecode(draft_tokens=3, acceptance_rate=1.0).tokens_per_step == 4.0
    assert SpecDecode(draft_tokens=2, acceptance_rate=0.5).tokens_per_step == pytest.approx(1.75)
    with pytest.raises(SpecError, match="acceptance_rate"):
        SpecDecode(draft_tokens=2, acceptance_rate=1.5)


# --- the simulation and its metrics -------------------------------------------------------------------------


def test_single_request_metrics_equal_the_step_times() -> None:
    p = plan()
    est = p.run(workload(512, 64, concurrency=1, num_requests=3))
    m = p.step_model
    prefill = step_time_s(
        m, decode_seqs=0, decode_kv_tokens=0, prefill_tokens=512, prefill_pairs=512 * 513 / 2, head_rows=1
    )
    assert est.ttft_s.mean == pytest.approx(prefill)
    a, b = decode_coefficients(m, 1)
    steps = [a + b * (512 + j) for j in range(63)]
    assert est.tpot_s.mean == pytest.approx(sum(steps) / 63)
    assert est.e2e_s.mean == pytest.approx(prefill + sum(steps))
    assert est.throughput.requests_per_s == pytest.approx(3 / (3 * (prefill + sum(steps))))


def test_thousand_requests_poisson_is_seeded() -> None:
    p = plan()
    a = p.run(workload(256, 32, request_rate=20.0, num_requests=1000, seed=1))
    b = p.run(workload(256, 32, request_rate=20.0, num_requests=1000, seed=1))
    c = p.run(workload(256, 32, request_rate=20.0, num_requests=1000, seed=2))
    assert a.ttft_s == b.ttft_s and a.ttft_s != c.ttft_s
    assert a.throughput.requests_per_s == pytest.approx(20.0, rel=0.15)


def test_latency_rises_with_concurrency_and_throughput_too() -> None:
    p = plan()
    lo = p.run(workload(512, 64, concurrency=4, num_requests=64))
    hi = p.run(workload(512, 64, concurrency=64, num_requests=256))
    assert hi.tpot_s.mean > lo.tpot_s.mean and hi.ttft_s.mean > lo.ttft_s.mean
    assert hi.throughput.output_tokens_per_s > 3 * lo.throughput.output_tokens_per_s


def test_small_pool_preempts_on_demand_but_not_reserve_max() -> None:
    small = EngineOverrides(memory_fraction=0.3)
    vllm = plan(overrides=small, context=2048)
    est = vllm.run(workload(1024, 1024, concurrency=256, num_requests=256))
    assert est.preemptions > 0 and est.max_running <= vllm.sched.max_num_seqs
    trt = plan(engine=ServingEngine.TRTLLM, overrides=EngineOverrides(memory_fraction=0.05), context=2048)
    est = trt.run(workload(1024, 1024, concurrency=256, num_requests=256))
    assert est.preemptions == 0 and est.max_running <= trt.pool.blocks // (2048 // 32)


def test_a_request_larger_than_the_pool_is_refused_with_the_largest_that_fits() -> None:
    p = plan(overrides=EngineOverrides(memory_fraction=0.2), context=8192 + 64)
    with pytest.raises(SpecError, match="largest context that fits"):
        p.run(workload(8192, 64, concurrency=1))


def test_static_batch_of_transformers_waits_for_the_longest() -> None:
    p = plan(engine=ServingEngine.HF)
    est = p.run(workload(256, 64, concurrency=8, num_requests=16))
    assert est.ttft_s.p50 > 0 and est.tpot_s.mean > 0
    w = Workload(input_len=LengthDist.of("i", 256), output_len=LengthDist.of("o", 16, 64), concurrency=8)
    mixed = p.run(w)
    assert mixed.e2e_s.p99 > mixed.e2e_s.p50


def test_percentiles_interpolate_like_numpy() -> None:
    p = percentiles([1.0, 2.0, 3.0, 4.0])
    assert (p.mean, p.p50, p.p90) == (2.5, 2.5, pytest.approx(3.7))
    runs = ((1.0, 0.0, 10, 1), (2.0, 0.0, 10, 1))
    assert itl_percentiles(runs).p50 == pytest.approx(1.0, abs=1e-6)
    assert itl_percentiles(runs).mean == pytest.approx(1.5)


def test_slo_search_finds_the_edge() -> None:
    p = plan()
    base = workload(512, 64, concurrency=1, num_requests=200)
    res = search(p, base, Slo(tpot_s=0.012, stat="p90"), target_rate=50.0)
    assert res.best_load is not None and res.estimate is not None
    assert res.estimate.tpot_s.p90 <= 0.012
    above = p.run(workload(512, 64, concurrency=int(res.best_load) + 1, num_requests=200))
    assert above.tpot_s.p90 > 0.012 or res.best_load >= p.sched.max_num_seqs
    assert res.replicas == math.ceil(50.0 / res.estimate.throughput.requests_per_s)


# --- item 5 of the issue: vLLM's max_num_seqs in the roofline and the largest batch -------------------------


def test_vllm_batch_above_max_num_seqs_is_not_decoded_at_once() -> None:
    spec = load_model("llama-3.1-8b")
    job = InferenceJob(engine=Engine.VLLM, context_len=1024, batch=512, vllm=VllmSettings(max_num_seqs=128))
    est = estimate_inference(spec, job, cluster())
    capped = estimate_inference(
        spec,
        InferenceJob(engine=Engine.VLLM, context_len=1024, batch=128, vllm=VllmSettings(max_num_seqs=128)),
        cluster(),
    )
    assert est.speed.tpot_s == capped.speed.tpot_s
    assert est.max_batch_at_context <= 128


# --- CLI -----------------------------------------------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


BASE = ("serve", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm")


def test_cli_json_keys(capsys) -> None:
    code, out, _ = run(
        capsys, *BASE, "--input-len", "512", "--output-len", "64", "--concurrency", "16", "--json"
    )
    assert code == 0
    data = json.loads(out)
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(data["speed"][key]) == {"mean", "p50", "p90", "p99"}
    for key in ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s"):
        assert data["speed"][key] > 0
    assert data["cost"]["usd_per_million_output_tokens"] > 0
    assert data["serving"]["engine"]["max_num_seqs"]["source"]


def test_cli_table_prints_engine_defaults_and_slo(capsys) -> None:
    code, out, _ = run(
        capsys,
        *BASE,
        "--input-len",
        "512",
        "--output-len",
        "64",
        "--num-requests",
        "100",
        "--slo-tpot-ms",
        "15",
    )
    assert code == 0
    assert "max_num_batched_tokens" in out and "arg_utils.py" in out and "SLO" in out and "TTFT" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--input-len", "512", "--output-len", "0"), "output_len"),
        (("--input-len", "512", "--output-len", "64", "--request-rate", "0"), "request_rate"),
        (("--input-len", "512", "--output-len", "64", "--request-rate", "nan"), "request_rate"),
        (
            ("--input-len", "512", "--output-len", "64", "--spec-tokens", "3", "--acceptance-rate", "1.5"),
            "acceptance_rate",
        ),
        (("--input-len", "100000", "--output-len", "64", "--gpu-memory-utilization", "0.3"), "input_len"),
        (
            ("--input-len", "512", "--output-len", "64", "--concurrency", "4096", "--engine", "hf"),
            "concurrency",
        ),
    ],
)
def test_cli_bad_input_exits_2(capsys, args: tuple[str, ...], field: str) -> None:
    code, out, err = run(capsys, "serve", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", *args)
    assert code == 2, out
    assert field in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_qwen3_32b_is_in_the_catalog() -> None:
    assert catalog.model_entry("qwen3-32b").hub_id == "Qwen/Qwen3-32B"
    assert QuantFormat.FP8.value == "fp8"
