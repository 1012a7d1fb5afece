"""Published serving measurements as llmplan serving cases (`serving_cases.json`), and their predictions.

Each case is one measured configuration: aiconfigurator's silicon points (TTFT and TPOT of one run, from
ai-dynamo/aiconfigurator `silicon_sample.csv`, the fully specified rows of shared/data/throughput.jsonl) and the
batch-1 decode rows of shared/data/measured.jsonl (gpt-fast, tokens/s → TPOT). `predict` runs the serving
simulation of `llmplan.estimate.serving` on the case; `roofline` is the single-batch roofline of
`estimate_inference` (the estimate `llmplan serve` gave before the scheduler existed), the baseline column.

Assumptions stated once for every case (the rows leave them open):
- the benchmark client is closed-loop at the row's concurrency (aiperf / vllm bench --max-concurrency) with
  fixed input and output lengths and `NUM_REQUESTS` requests (vllm bench serve's default --num-prompts);
- fp8 rows: fp8 weights (per-tensor scales; SGLang's `fp8_block` weights have the same bytes to within the
  block scales); the KV cache is the engine's default (`auto`: bf16), except TensorRT-LLM, whose fp8
  (ModelOpt) checkpoints carry an fp8 KV cache (`kv_cache_quant_algo: FP8` in hf_quant_config.json);
- the engine's scheduling defaults of `specs.engines` at the versions recorded there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from llmplan import catalog
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.serving import plan_serving
from llmplan.loading import load_model
from llmplan.specs.engines import ServingEngine
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat
from llmplan.specs.serving import LengthDist, Workload

NUM_REQUESTS = 1000
"""Requests per simulated run: `vllm bench serve --num-prompts` default (the rows do not state theirs)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingCase:
    id: str
    source: str
    model: str
    """Catalog id."""
    gpu: str
    engine: ServingEngine
    engine_version: str
    quant: QuantFormat
    kv_dtype: KvDtype
    tp: int
    input_len: int
    output_len: int
    concurrency: int
    ttft_ms: float | None
    tpot_ms: float | None
    group_size: int = 128


@dataclass(frozen=True, slots=True)
class Prediction:
    ttft_ms: float
    tpot_ms: float


@cache
def cases() -> tuple[ServingCase, ...]:
    data = json.loads(resources.files("llmplan.validate").joinpath("serving_cases.json").read_text("utf-8"))
    return tuple(
        ServingCase(
            id=c["id"],
            source=c["source"],
            model=c["model"],
            gpu=c["gpu"],
            engine=ServingEngine(c["engine"]),
            engine_version=c["engine_version"],
            quant=QuantFormat(c["quant"]),
            kv_dtype=KvDtype(c["kv_dtype"]),
            tp=c["tp"],
            input_len=c["input_len"],
            output_len=c["output_len"],
            concurrency=c["concurrency"],
            ttft_ms=c.get("ttft_ms"),
            tpot_ms=c.get("tpot_ms"),
            group_size=c.get("group_size", 128),
        )
        for c in data["cases"]
    )


def _job(case: ServingCase, engine: Engine = Engine.VLLM) -> InferenceJob:
    return InferenceJob(
        quant=case.quant,
        kv_dtype=case.kv_dtype,
        tp=case.tp,
        context_len=case.input_len + case.output_len,
        group_size=case.group_size,
        engine=engine,
    )


def _cluster(case: ServingCase) -> Cluster:
    return Cluster(accelerator=catalog.accelerator(case.gpu), gpus_per_node=max(8, case.tp))


def predict(case: ServingCase, num_requests: int = NUM_REQUESTS) -> Prediction:
    """Mean TTFT and TPOT of the simulated run (module docstring)."""
    context = case.input_len + case.output_len
    plan = plan_serving(load_model(case.model), _job(case), _cluster(case), case.engine, context=context)
    workload = Workload(
        input_len=LengthDist.of("input_len", case.input_len),
        output_len=LengthDist.of("output_len", case.output_len),
        concurrency=case.concurrency,
        num_requests=max(num_requests, case.concurrency),
    )
    est = plan.run(workload)
    return Prediction(est.ttft_s.mean * 1e3, est.tpot_s.mean * 1e3)


def roofline(case: ServingCase) -> Prediction:
    """The single-batch roofline: prefill of `concurrency` prompts at once, decode of the whole batch."""
    job = InferenceJob(
        quant=case.quant,
        kv_dtype=case.kv_dtype,
        tp=case.tp,
        context_len=case.input_len + case.output_len,
        prompt_len=case.input_len,
        batch=case.concurrency,
        group_size=case.group_size,
        engine=Engine.HF,
    )
    speed = estimate_inference(load_model(case.model), job, _cluster(case)).speed
    return Prediction(speed.ttft_s * 1e3, speed.tpot_s * 1e3)
