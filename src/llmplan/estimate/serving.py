"""Serving under load: TTFT, TPOT, ITL, end-to-end latency, throughput and cost at a concurrency or a rate.

`plan_serving` does the per-configuration work once — the engine's defaults (`specs.engines`), its KV-cache
pool by its own memory rule, and the constants of one iteration (`formulas.serving_step.StepModel`);
`ServingPlan.run(workload)` then simulates the requests (`estimate.scheduler`) and reports the metrics as
`vllm bench serve` defines them (vllm/benchmarks/serve.py `calculate_metrics`):
- TTFT = first token − request sent; E2E = last token − request sent;
- TPOT = (E2E − TTFT) / (output_len − 1), per request with output_len > 1;
- ITL = every gap between consecutive tokens of a request, pooled over requests;
- mean, p50, p90, p99 of each (linear interpolation between order statistics, as numpy.percentile);
- output tokens/s = Σ output_len / duration (first request sent to last one done); per GPU: / (tp · pp);
  per user: 1 / mean TPOT; requests/s = requests / duration;
- cost.usd_per_million_output_tokens = price per GPU-hour · GPUs / 3600 / output tokens/s · 10^6.

KV pool per rank, by the engine's `MemoryRule`:
- vLLM: `estimate_inference`'s budget (torch total · gpu_memory_utilization − profile peak − non-torch);
- SGLang: mem_fraction_static · torch total − weights − CUDA context;
- TensorRT-LLM: free_gpu_memory_fraction · (torch total − weights − activation peak − non-torch);
- transformers: no pool — the whole batch at its longest context must fit the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmplan.breakdown import Term, Unit
from llmplan.catalog.torch_memory import torch_total
from llmplan.errors import SpecError
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.inference_memory import kv_dtype_bytes
from llmplan.estimate.scheduler import SchedulerConfig, SimResult, simulate
from llmplan.estimate.serving_build import build_step_model
from llmplan.estimate.serving_metrics import Percentiles, itl_percentiles, percentiles
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas.cost import check_price
from llmplan.formulas.serving_step import SpecDecode, StepModel, step_terms
from llmplan.specs.engines import (
    Admission,
    EngineDefaults,
    MemoryRule,
    ServingEngine,
    Setting,
    engine_defaults,
)
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, VllmSettings
from llmplan.specs.model import ModelSpec
from llmplan.specs.serving import Workload


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineOverrides:
    """Engine arguments the user set; None keeps the engine's default."""

    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    chunked_prefill: bool | None = None
    block_size: int | None = None
    memory_fraction: float | None = None
    cuda_graphs: bool | None = None


@dataclass(frozen=True, slots=True)
class KvPool:
    """The engine's KV-cache pool on one rank."""

    bytes: int
    blocks: int
    block_size: int
    tokens: int
    max_concurrency: int
    """Requests of the workload's longest context the pool holds at once."""
    term: Term

    @property
    def total(self) -> int:
        return self.bytes


@dataclass(frozen=True, slots=True)
class Throughput:
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_user: float
    requests_per_s: float

    @property
    def total(self) -> float:
        return self.output_tokens_per_s


@dataclass(frozen=True, slots=True)
class ServingEstimate:
    model: str
    accelerator: str
    engine: EngineDefaults
    workload: Workload
    gpus: int
    pool: KvPool
    ttft_s: Percentiles
    tpot_s: Percentiles
    itl_s: Percentiles
    e2e_s: Percentiles
    throughput: Throughput
    usd_per_million_output_tokens: float | None
    price_usd_per_gpu_hour: float | None
    step: Term
    """One decode iteration at the mean running batch, by mechanism."""
    iterations: int
    preemptions: int
    max_running: int
    notes: tuple[str, ...]

    @property
    def total(self) -> float:
        return self.throughput.output_tokens_per_s


def resolved(defaults: EngineDefaults, o: EngineOverrides) -> EngineDefaults:
    """Defaults with the user's overrides, each marked as set by the user."""
    changes: dict[str, Setting] = {}
    for name in (
        "max_num_seqs",
        "max_num_batched_tokens",
        "chunked_prefill",
        "block_size",
        "memory_fraction",
    ):
        value = getattr(o, name)
        if value is not None:
            changes[name] = Setting(value, "set by the user")
    if o.cuda_graphs is not None:
        changes["cuda_graphs"] = Setting(o.cuda_graphs, "set by the user")
    return replace(defaults, **changes) if changes else defaults


@dataclass(frozen=True, slots=True)
class ServingPlan:
    """Everything about a configuration that does not depend on the workload (module docstring)."""

    model: ModelSpec
    job: InferenceJob
    cluster: Cluster
    engine: EngineDefaults
    step_model: StepModel
    pool: KvPool
    sched: SchedulerConfig
    gpus: int
    price_usd_per_gpu_hour: float | None
    hf_max_batch: int
    notes: tuple[str, ...]

    def check(self, workload: Workload) -> list[str]:
        """Refuse a workload the engine can never run (SpecError naming the field); return notes."""
        notes: list[str] = []
        ctx = workload.max_context
        limit = self.model.max_position_embeddings
        if ctx > limit:
            raise SpecError(
                "input_len", f"input + output = {ctx} tokens exceeds {self.model.name}'s {limit} positions"
            )
        if self.sched.admission is Admission.STATIC_BATCH:
            c = workload.concurrency or workload.num_requests
            if c > self.hf_max_batch:
                raise SpecError(
                    "concurrency",
                    f"{c} sequences of {ctx} tokens never fit {self.cluster.accelerator.name} with transformers "
                    f"(contiguous KV cache) (allowed: at most {self.hf_max_batch} sequences, or --engine vllm)",
                )
            return notes
        per_request = math.ceil(ctx / self.pool.block_size)
        if per_request > self.pool.blocks:
            raise SpecError(
                "input_len",
                f"one request of {ctx} tokens needs {per_request:,} KV blocks; the {self.engine.engine.value} pool "
                f"has {self.pool.blocks:,} ({self.pool.tokens:,} tokens): no concurrency fits (largest context "
                f"that fits: {self.pool.tokens:,} tokens)",
            )
        sched = self.sched
        if (
            not sched.chunked_prefill
            and sched.max_num_batched_tokens
            and workload.input_len.high > (sched.max_num_batched_tokens)
        ):
            raise SpecError(
                "input_len",
                f"{workload.input_len.high} prompt tokens exceed max_num_batched_tokens "
                f"{sched.max_num_batched_tokens} without chunked prefill (allowed: <= "
                f"{sched.max_num_batched_tokens}, or enable chunked prefill)",
            )
        c = workload.concurrency
        if c is not None and c > self.pool.max_concurrency:
            notes.append(
                f"concurrency {c}: the KV pool holds {self.pool.max_concurrency} requests of {ctx} tokens at once; "
                "the rest wait in the queue"
                + (" or are preempted" if sched.admission is Admission.ON_DEMAND else "")
            )
        if c is not None and c > sched.max_num_seqs:
            notes.append(
                f"concurrency {c} > max_num_seqs {sched.max_num_seqs}: at most {sched.max_num_seqs} run"
            )
        return notes

    def simulate(self, workload: Workload) -> SimResult:
        self.check(workload)
        return simulate(self.step_model, self.sched, workload)

    def run(self, workload: Workload) -> ServingEstimate:
        notes = [*self.notes, *self.check(workload)]
        sim = simulate(self.step_model, self.sched, workload)
        return self._estimate(workload, sim, notes)

    def _estimate(self, workload: Workload, sim: SimResult, notes: list[str]) -> ServingEstimate:
        n = len(sim.arrival_s)
        ttft = [sim.first_token_s[i] - sim.arrival_s[i] for i in range(n)]
        e2e = [sim.finish_s[i] - sim.arrival_s[i] for i in range(n)]
        tpot = [
            (sim.finish_s[i] - sim.first_token_s[i]) / (sim.output_len[i] - 1)
            for i in range(n)
            if sim.output_len[i] > 1
        ]
        duration = sim.duration_s
        out_tokens = sum(sim.output_len)
        tpot_p = percentiles(tpot) if tpot else Percentiles(0.0, 0.0, 0.0, 0.0)
        per_user = 1.0 / tpot_p.mean if tpot_p.mean > 0 else 0.0
        tput = Throughput(
            output_tokens_per_s=out_tokens / duration,
            output_tokens_per_s_per_gpu=out_tokens / duration / self.gpus,
            output_tokens_per_s_per_user=per_user,
            requests_per_s=n / duration,
        )
        price = self.price_usd_per_gpu_hour
        cost = price * self.gpus / 3600 / tput.output_tokens_per_s * 1e6 if price is not None else None
        if sim.preemptions:
            notes.append(f"{sim.preemptions} preemptions (recompute): the KV pool ran out of blocks")
        mean_batch = max(
            1,
            round(
                sum(w * s for _, _, s, w in sim.itl_segments)
                / max(1, sum(s for _, _, s, _ in sim.itl_segments))
            ),
        )
        mean_ctx = workload.input_len.mean + workload.output_len.mean / 2
        step = step_terms(
            self.step_model, decode_seqs=mean_batch, decode_kv_tokens=mean_batch * mean_ctx, prefill_tokens=0,
            prefill_pairs=0,
        )  # fmt: skip
        return ServingEstimate(
            model=self.model.name,
            accelerator=self.cluster.accelerator.name,
            engine=self.engine,
            workload=workload,
            gpus=self.gpus,
            pool=self.pool,
            ttft_s=percentiles(ttft),
            tpot_s=tpot_p,
            itl_s=itl_percentiles(sim.itl_segments),
            e2e_s=percentiles(e2e),
            throughput=tput,
            usd_per_million_output_tokens=cost,
            price_usd_per_gpu_hour=price,
            step=step,
            iterations=sim.iterations,
            preemptions=sim.preemptions,
            max_running=sim.max_running,
            notes=tuple(notes),
        )


def _pool(
    model: ModelSpec, job: InferenceJob, cluster: Cluster, eng: EngineDefaults, context: int
) -> tuple[KvPool, int]:
    """The KV pool by the engine's memory rule, and the HF engine's largest batch at `context`."""
    acc = cluster.accelerator
    block = int(eng.block_size.value)
    fraction = float(eng.memory_fraction.value)
    per_token = kvf.kv_bytes_per_token(model, kv_dtype_bytes(job), job.tp) * -(
        -model.num_hidden_layers // job.pp
    )
    per_token //= model.num_hidden_layers
    vjob = replace(
        job,
        engine=Engine.VLLM if eng.memory_rule is not MemoryRule.CONTIGUOUS else Engine.HF,
        context_len=context,
        prompt_len=None,
        batch=1,
        vllm=VllmSettings(
            gpu_memory_utilization=fraction if eng.memory_rule is MemoryRule.TOTAL_MINUS_PEAK else 0.9,
            block_size=block,
            max_num_batched_tokens=int(eng.max_num_batched_tokens.value) or 8192,
            max_num_seqs=int(eng.max_num_seqs.value) or 256,
            enable_chunked_prefill=bool(eng.chunked_prefill.value),
            cuda_graphs=bool(eng.cuda_graphs.value),
        ),
    )
    est = estimate_inference(model, vjob, cluster)
    mem = est.memory
    total = torch_total(acc)
    rule = eng.memory_rule
    if rule is MemoryRule.TOTAL_MINUS_PEAK:
        assert est.vllm is not None  # vjob's engine is vLLM
        pool_bytes = max(0, est.vllm.available_kv_bytes)
        formula = (
            f"{total.bytes:,} B torch total × {fraction} − {est.vllm.profile_peak_bytes:,} B profile peak − "
            f"{est.vllm.non_torch_bytes:,} B non-torch"
        )
    elif rule is MemoryRule.STATIC_FRACTION:
        context_bytes = mem.non_torch_bytes
        pool_bytes = max(0, int(total.bytes * fraction) - mem.weights.total - context_bytes)
        formula = (
            f"{total.bytes:,} B × {fraction} − {mem.weights.total:,} B weights − {context_bytes:,} B context"
        )
    elif rule is MemoryRule.FREE_FRACTION:
        free = total.bytes - mem.weights.total - mem.activation_peak_bytes - mem.torch_workspace_bytes
        free -= mem.non_torch_bytes
        pool_bytes = max(0, int(fraction * free))
        formula = (
            f"{fraction} × ({total.bytes:,} B − {mem.weights.total:,} B weights − "
            f"{mem.activation_peak_bytes + mem.torch_workspace_bytes:,} B activations − {mem.non_torch_bytes:,} B "
            "non-torch)"
        )
    else:
        pool_bytes = max(0, acc.memory_bytes - mem.device_bytes + mem.kv_cache_bytes)
        formula = "device memory − weights − activations − overheads (contiguous cache, no pool)"
    blocks = pool_bytes // (block * per_token) if per_token else 0
    tokens = blocks * block
    max_conc = blocks // math.ceil(context / block) if context else 0
    term = Term(
        "kv_pool",
        float(pool_bytes),
        Unit.BYTES,
        f"{formula} = {pool_bytes:,} B → {blocks:,} blocks of {block} tokens × {per_token:,} B/token",
        f"{eng.engine.value} memory rule {rule.value} (specs/engines.py); torch total: {total.source}",
    )
    return KvPool(pool_bytes, blocks, block, tokens, max_conc, term), est.max_batch_at_context


def plan_serving(
    model: ModelSpec,
    job: InferenceJob,
    cluster: Cluster,
    engine: ServingEngine,
    *,
    context: int,
    overrides: EngineOverrides | None = None,
    spec_decode: SpecDecode | None = None,
    ep: int = 1,
    price_usd_per_gpu_hour: float | None = None,
) -> ServingPlan:
    """The workload-independent part of a serving estimate for requests of up to `context` tokens."""
    acc = cluster.accelerator
    eng = resolved(engine_defaults(engine, acc, job.tp), overrides or EngineOverrides())
    notes: list[str] = []
    pool, hf_batch = _pool(model, job, cluster, eng, context)
    step_model = build_step_model(model, job, cluster, eng, ep=ep)
    verify = 1 if spec_decode is None else spec_decode.draft_tokens + 1
    if spec_decode is not None:
        step_model = replace(step_model, draft_cost=spec_decode.draft_tokens * spec_decode.draft_cost_ratio)
        notes.append(
            f"speculative decoding: {spec_decode.draft_tokens} draft tokens at acceptance {spec_decode.acceptance_rate}"
            f" → {spec_decode.tokens_per_step:.2f} tokens per step (Leviathan et al. 2023, eq. 1)"
        )
    price = check_price(price_usd_per_gpu_hour) if price_usd_per_gpu_hour is not None else None
    if price is None and acc.price is not None:
        price = acc.price.usd_per_gpu_hour
    if not torch_total(acc).measured and eng.memory_rule is not MemoryRule.CONTIGUOUS:
        notes.append(f"torch's total memory of {acc.name} is {torch_total(acc).source}")
    seqs = int(eng.max_num_seqs.value)
    sched = SchedulerConfig(
        max_num_seqs=seqs if seqs > 0 else 1 << 30,
        max_num_batched_tokens=int(eng.max_num_batched_tokens.value),
        chunked_prefill=bool(eng.chunked_prefill.value),
        mixed=bool(eng.mixed_batches.value),
        block_size=pool.block_size,
        total_blocks=pool.blocks,
        admission=eng.admission,
        tokens_per_step=1.0 if spec_decode is None else spec_decode.tokens_per_step,
        verify_tokens=verify,
    )
    return ServingPlan(
        model=model,
        job=job,
        cluster=cluster,
        engine=eng,
        step_model=step_model,
        pool=pool,
        sched=sched,
        gpus=job.tp * job.pp,
        price_usd_per_gpu_hour=price,
        hf_max_batch=hf_batch,
        notes=tuple(notes),
    )
