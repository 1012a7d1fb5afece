"""Published training-speed measurements as llmplan time cases, the error of each estimate, and its peers.

`time_cases.json` (package data) holds one entry per row of `shared/data/throughput.jsonl` and of the
`tokens_per_s_per_gpu` / `step_time_s` rows of `measured.jsonl` that llmplan can express, with the row's
configuration in llmplan's terms and the measured value; rows it cannot express are listed with the reason.
`benchmarks/time_accuracy.py --refresh` rebuilds it from the shared data (its docstring gives the mapping).

Peers on the same rows (issue 10, item 7):
- the seed rule (shared/seeds/000): tokens/s per GPU = peak · 50 % / (6 · N), 8 · N with full recomputation,
  N = every parameter;
- llm-analysis 0.2.2 (cli99/llm-analysis) with its recommended `flops_efficiency=0.5` and
  `hbm_memory_efficiency=0.9`: `LLMAnalysis.training(...)["latency_per_iter"]`;
- Calculon (calculon-llm): not on PyPI (PyPI's `calculon` is an unrelated producer-consumer library), so it
  cannot be installed here; not run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.estimate.time import TimeEstimate, estimate_time
from llmplan.formulas.params import count_params
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import MlpKind, ModelSpec
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    PipelineSchedule,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)
from llmplan.validate.stats import error_pct

SEED_UTILISATION = 0.5
"""The seed rule's utilisation ("rarely above 50 %", shared/seeds/000)."""
TOKENS_PER_S_PER_GPU = "tokens_per_s_per_gpu"
STEP_TIME_S = "step_time_s"


@dataclass(frozen=True, slots=True)
class TimeCase:
    """One measured training speed and the llmplan configuration that reproduces it."""

    id: str
    source: str
    model_id: str
    model: ModelSpec
    job: TrainingJob
    layout: Layout
    cluster: Cluster
    metric: str
    """tokens_per_s_per_gpu or step_time_s."""
    measured: float
    group: str
    """Model and cluster: the rows whose layouts are ranked against each other."""
    fully_specified: bool
    notes: str


@dataclass(frozen=True, slots=True)
class Skipped:
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimeComparison:
    case: TimeCase
    estimate: TimeEstimate
    predicted: float
    error_pct: float
    seed_rule_pct: float
    llm_analysis_pct: float | None
    """None when llm-analysis is not installed or refuses the case."""


def _model(entry: dict[str, object]) -> tuple[str, ModelSpec]:
    model_id = str(entry["model"])
    config = dict(catalog.model_entry(model_id).config)
    config.update(entry.get("config", {}))  # type: ignore[arg-type]
    return model_id, parse_config(config, model_id)


def _cluster(entry: dict[str, object]) -> Cluster:
    preset = catalog.cluster(str(entry["cluster"]), nodes=int(entry.get("nodes", 1)))  # type: ignore[arg-type]
    per_node = entry.get("gpus_per_node")
    if per_node is not None:
        import dataclasses

        preset = dataclasses.replace(preset, gpus_per_node=int(per_node))  # type: ignore[arg-type]
    return preset


def _case(entry: dict[str, object]) -> TimeCase:
    model_id, model = _model(entry)
    job = TrainingJob(
        precision=Precision(entry["precision"]),
        micro_batch_size=int(entry["micro_batch"]),  # type: ignore[arg-type]
        seq_len=int(entry["seq_len"]),  # type: ignore[arg-type]
        grad_accum_steps=int(entry.get("grad_accum", 1)),  # type: ignore[arg-type]
        recompute=Recompute(entry.get("recompute", "none")),
        attention=AttentionImpl(entry.get("attention", "flash")),
    )
    fsdp = entry.get("fsdp")
    layout = Layout(
        dp=int(entry.get("dp", 1)),  # type: ignore[arg-type]
        tp=int(entry.get("tp", 1)),  # type: ignore[arg-type]
        pp=int(entry.get("pp", 1)),  # type: ignore[arg-type]
        cp=int(entry.get("cp", 1)),  # type: ignore[arg-type]
        sequence_parallel=bool(entry.get("sequence_parallel", False)),
        zero=ZeroStage(int(entry.get("zero", 0))),  # type: ignore[arg-type]
        fsdp=FsdpStrategy(fsdp) if fsdp else None,
        pp_schedule=PipelineSchedule(entry.get("schedule", "1f1b")),
        pp_virtual_stages=int(entry.get("virtual_stages", 1)),  # type: ignore[arg-type]
    )
    return TimeCase(
        id=str(entry["id"]),
        source=str(entry["source"]),
        model_id=model_id,
        model=model,
        job=job,
        layout=layout,
        cluster=_cluster(entry),
        metric=str(entry["metric"]),
        measured=float(entry["value"]),  # type: ignore[arg-type]
        group=f"{model_id} on {entry['cluster']}",
        fully_specified=bool(entry.get("fully_specified", False)),
        notes=str(entry.get("notes", "")),
    )


def load_cases() -> tuple[tuple[TimeCase, ...], tuple[Skipped, ...]]:
    """The expressible cases and the skipped rows of time_cases.json."""
    data = json.loads(resources.files("llmplan.validate").joinpath("time_cases.json").read_text("utf-8"))
    cases = tuple(_case(e) for e in data["cases"])
    skipped = tuple(Skipped(s["id"], s["reason"]) for s in data["skipped"])
    return cases, skipped


def in_fit(case: TimeCase) -> bool:
    """The rows `compute_time.SUSTAINED_FRACTION` and `layout_comms.OVERLAP_CONTENTION` were fitted on: the
    single-node (8-GPU) bf16 llm-foundry rows; every other row is held out."""
    return (
        case.fully_specified
        and case.model_id.startswith("mpt-")
        and case.cluster.num_gpus == 8
        and case.job.precision is Precision.BF16_MIXED
    )


def predicted_value(case: TimeCase, est: TimeEstimate) -> float:
    return est.tokens_per_s_per_gpu if case.metric == TOKENS_PER_S_PER_GPU else est.step_s


def _dtype(precision: Precision) -> str:
    return {Precision.FP8_MIXED: "fp8", Precision.FP32: "fp32"}.get(precision, "bf16")


def seed_rule(case: TimeCase) -> float:
    """The seed rule's prediction of the case's metric (module docstring)."""
    n = count_params(case.model).total
    factor = 8 if case.job.recompute is Recompute.FULL else 6
    acc = case.cluster.accelerator
    per_gpu = acc.peak_flops(_dtype(case.job.precision)) * SEED_UTILISATION / (factor * n)
    if case.metric == TOKENS_PER_S_PER_GPU:
        return per_gpu
    tokens = case.layout.dp * case.job.grad_accum_steps * case.job.micro_batch_size * case.job.seq_len
    return tokens / (per_gpu * case.layout.num_gpus)


def llm_analysis(case: TimeCase) -> float | None:
    """llm-analysis's prediction of the case's metric, None when it is not installed or refuses."""
    try:
        from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
        from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig
    except ImportError:
        return None
    logging.getLogger("__name__").setLevel(logging.ERROR)  # llm-analysis logs every figure at INFO
    m, job, lay, acc = case.model, case.job, case.layout, case.cluster.accelerator
    gated = m.mlp_kind is MlpKind.GATED
    ffn = int(m.intermediate_size * (1.5 if gated else 1))
    intra = case.cluster.intra_link
    try:
        analysis = LLMAnalysis(
            ModelConfig(
                name=m.name,
                num_layers=m.num_hidden_layers,
                n_head=m.num_attention_heads,
                hidden_dim=m.hidden_size,
                vocab_size=m.vocab_size,
                max_seq_len=max(m.max_position_embeddings, job.seq_len),
                num_key_value_heads=m.num_key_value_heads,
                ffn_embed_dim=ffn,
                expansion_ratio=ffn / m.hidden_size,
                model_type=m.model_type,
            ),
            GPUConfig(
                name=acc.id,
                mem_per_GPU_in_GB=1e6,
                hbm_bandwidth_in_GB_per_sec=acc.memory_bandwidth_bytes_per_s / 1e9,
                intra_node_bandwidth_in_GB_per_sec=(intra.one_way_bytes_per_s if intra else 32e9) / 1e9,
                intra_node_min_message_latency=8e-6,
                peak_fp16_TFLOPS=acc.peak_flops(_dtype(job.precision)) / 1e12,
            ),
            DtypeConfig(name="w16a16", weight_bits=16, activation_bits=16, embedding_bits=16),
            ParallelismConfig(tp_size=lay.tp, pp_size=lay.pp, dp_size=lay.dp),
            flops_efficiency=0.5,
            hbm_memory_efficiency=0.9,
        )
        summary = analysis.training(
            batch_size_per_gpu=job.micro_batch_size,
            gradient_accumulation_steps=job.grad_accum_steps,
            seq_len=job.seq_len,
            activation_recomputation={
                Recompute.NONE: ActivationRecomputation.NONE,
                Recompute.SELECTIVE: ActivationRecomputation.SELECTIVE,
                Recompute.FULL: ActivationRecomputation.FULL,
            }[job.recompute],
            ds_zero=[DSZeRO.NONE, DSZeRO.STAGE_1, DSZeRO.STAGE_2, DSZeRO.STAGE_3][lay.sharding_stage],
            flash_attn=job.attention is not AttentionImpl.EAGER,
            mlp_gated_linear_units=gated,
        )
    except (AssertionError, ValueError, ZeroDivisionError, KeyError):
        return None
    step = float(summary["latency_per_iter"])
    if case.metric == STEP_TIME_S:
        return step
    tokens = lay.dp * job.grad_accum_steps * job.micro_batch_size * job.seq_len
    return tokens / step / lay.num_gpus


def compare(case: TimeCase) -> TimeComparison:
    est = estimate_time(case.model, case.job, case.layout, case.cluster)
    ours = predicted_value(case, est)
    peer = llm_analysis(case)
    return TimeComparison(
        case=case,
        estimate=est,
        predicted=ours,
        error_pct=error_pct(ours, case.measured),
        seed_rule_pct=error_pct(seed_rule(case), case.measured),
        llm_analysis_pct=None if peer is None else error_pct(peer, case.measured),
    )
