"""Time of one training step, throughput, MFU / HFU, and time and cost to train.

    step = pipeline(stages' micro-batch times, schedule) + exposed data-parallel communication
           + optimizer step + offload traffic

- A stage's micro-batch time is the sum of its operations (`formulas.compute_time`: every GEMM of
  `formulas.flops.step_ops` by its shape and dtype, the attention kernel, the memory-bound ops, the loss) plus
  the synchronous collectives of tensor, expert, context and pipeline parallelism (`formulas.layout_comms`),
  forward and backward (recomputation inside backward). Ring attention hides behind the attention kernel.
- The pipeline (`formulas.pipeline`) turns the stages' times into the step's busy time and bubble.
- Data-parallel collectives overlap what the training stack overlaps (`Overlap`): their exposed part is
  max(first unit, collective − the compute it hides behind); the output shows the whole and the exposed time.
- The optimizer step streams master weights, states, gradients and 16-bit weights through HBM once
  (`compute_time.memory_time`); offloaded, it runs on the host at HOST_MEMORY_BANDWIDTH per node.

Throughput: tokens per step = dp · grad_accum · micro_batch · seq (cp ranks share a sequence);
MFU = model FLOPs per token (`flops.model_flops_per_token`, both conventions) · tokens/s per GPU / peak;
HFU = executed FLOPs (recomputation included) per GPU per second / peak (PaLM, Chowdhery et al. 2022, app. B).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.breakdown import Breakdown, Term, Unit
from llmplan.estimate.time_comms import StageComms, dp_calls, optimizer_step, stage_calls
from llmplan.estimate.time_constants import constants
from llmplan.estimate.training import adapted_linears
from llmplan.formulas import compute_time as ct
from llmplan.formulas.flops import Pass, Shard, StepOps, layer_kinds, model_flops_per_token, step_ops
from llmplan.formulas.layout_comms import OVERLAP_CONTENTION, Overlap
from llmplan.formulas.model_states import ModelStates, model_states, stage_layers, trainable_split
from llmplan.formulas.pipeline import PipelineTime, StageTime, check_schedule, pipeline_time
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, Method, Precision, Recompute, TrainingJob

COMPUTE_DTYPE = {
    Precision.FP32: "fp32",
    Precision.AMP_BF16: "bf16",
    Precision.BF16_MIXED: "bf16",
    Precision.BF16: "bf16",
    Precision.FP16: "fp16",
    Precision.FP16_MIXED: "fp16",
    Precision.FP8_MIXED: "fp8",
}
"""GEMM dtype per precision (torch keeps fp32 matmuls in fp32 unless TF32 is allowed: `allow_tf32=False`)."""
_SOURCE = "estimate.time (roofline + α–β collectives + pipeline schedule)"


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeEstimate:
    """One training step's time on the slowest pipeline stage, its parts, throughput and utilisation."""

    step_s: float
    step: Breakdown
    """compute_s, recompute_s, exposed_comm_s (parts: one per collective), bubble_s, optimizer_s, offload_s."""
    comm: tuple[Term, ...]
    """Every collective's whole time per step (parts: `exposed`), before overlap."""
    tokens_per_step: int
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    mfu: float
    """6N + 12·L·h·s convention (PaLM appendix B, llm-foundry): attention counted over the full s × s."""
    mfu_causal: float
    """6N + 6·L·h·s: the causal half (torchtitan, Megatron-LM)."""
    hfu: float
    """Executed FLOPs (recomputation included, eager or causal-flash attention as run) / peak."""
    flops: tuple[Term, ...]
    constants: tuple[Term, ...]
    """Every constant the estimate used, with its source (shown by --explain)."""
    tokens: float | None = None
    """Tokens to train on (`with_run`), None without --tokens."""
    time_to_train_s: float | None = None

    @property
    def total(self) -> float:
        return self.step.total


@dataclass(frozen=True, slots=True)
class _Stage:
    ops: StepOps
    time: StageTime
    compute_s: float
    recompute_s: float
    comm: StageComms
    kinds: tuple[float, float, float]
    """(GEMMs, attention kernel, memory-bound ops) seconds of compute_s."""


def estimate_time(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> TimeEstimate:
    """Step time of `job` on `layout` over `cluster` (module docstring).

    Raises LayoutError for a pipeline schedule the layout cannot run, SpecError for a precision the
    accelerator cannot compute in or a group that needs a link the cluster lacks."""
    acc = cluster.accelerator
    dtype = COMPUTE_DTYPE[job.precision]
    check_schedule(
        layout.pp_schedule,
        pp=layout.pp,
        virtual=layout.pp_virtual_stages,
        layers=model.num_hidden_layers,
        micro_batches=job.grad_accum_steps,
    )
    acc.peak_flops(dtype)
    ranges = stage_layers(model.num_hidden_layers, layout.pp)
    stages: list[_Stage] = []
    memo: dict[tuple[object, ...], _Stage] = {}
    kind_of = layer_kinds(model)[1]
    for i, layers in enumerate(ranges):
        first, last = i == 0, i == layout.pp - 1
        # stages that run the same blocks at the same place in the model cost the same
        key = (tuple(kind_of[j] for j in layers), first, last, layers.start == 0, _frozen(job, layers))
        if key not in memo:
            memo[key] = _cached_stage(model, job, layout, cluster, layers, first, last, dtype)
        stages.append(memo[key])
    pipe = pipeline_time(
        [s.time for s in stages], job.grad_accum_steps, layout.pp_schedule, layout.pp_virtual_stages
    )
    slow_i = max(range(len(stages)), key=lambda k: stages[k].time.total)
    slow = stages[slow_i]
    states = model_states(
        model,
        job,
        layout,
        stage=slow_i,
        gpus_per_node=cluster.gpus_per_node,
        split=trainable_split(model, job),
    )
    return _assemble(model, job, layout, cluster, stages, slow, pipe, states, dtype)


def _frozen(job: TrainingJob, layers: range) -> int:
    """Frozen leading layers (method FREEZE) inside `layers`."""
    return (
        max(0, min(layers.stop, job.peft.freeze_layers) - layers.start) if job.method is Method.FREEZE else 0
    )


_STAGES: dict[tuple[object, ...], tuple[ModelSpec, _Stage]] = {}


def _cached_stage(model, job, layout, cluster, layers, first, last, dtype) -> _Stage:
    """`_stage` remembered across calls: it reads the degrees and sequence parallelism, not the sharding,
    offload, schedule or stack (a layout search reuses it across those)."""
    degrees = (layout.dp, layout.tp, layout.pp, layout.cp, layout.ep, layout.sequence_parallel)
    key = (id(model), job, degrees, cluster, layers.start, layers.stop, first, last, dtype)
    hit = _STAGES.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_STAGES) >= 65536:
        _STAGES.clear()
    stage = _stage(model, job, layout, cluster, layers, first, last, dtype)
    _STAGES[key] = (model, stage)
    return stage


def _stage(model, job, layout, cluster, layers, first, last, dtype) -> _Stage:
    acc = cluster.accelerator
    shard = Shard(tp=layout.tp, cp=layout.cp, ep=layout.ep)
    ops = step_ops(model, job, adapted_linears(model, job), layers=layers, with_head=last, shard=shard)
    gemm_dtype = dtype
    attn_dtype = "bf16" if dtype == "fp8" else dtype
    by_pass = {p: 0.0 for p in Pass}
    gemm_s = attn_s = 0.0
    pricer = ct.GemmPricer(acc, gemm_dtype)
    for g in ops.gemms:
        t = pricer.seconds(g)
        by_pass[g.step] += t
        gemm_s += t if g.step is not Pass.RECOMPUTE else 0.0
    seq = job.seq_len
    attn_fwd = 0.0
    for a in ops.attention:
        t = ct.attention_time(a, acc, attn_dtype, impl=job.attention, seq_len=seq)
        by_pass[a.step] += t
        attn_s += t if a.step is not Pass.RECOMPUTE else 0.0
        if a.step is Pass.FORWARD:
            attn_fwd += t
    act_bytes = 4 if job.precision is Precision.FP32 else 2
    tokens = ops.tokens
    fwd_el = bwd_el = 0.0
    for block, count in ops.blocks:
        f, b = ct.elementwise_elements(model, block, tp=layout.tp, sequence_parallel=layout.sequence_parallel)
        fwd_el += f * count
        bwd_el += b * count
    mem_fwd = ct.memory_time(fwd_el * tokens * act_bytes, acc)
    mem_bwd = ct.memory_time(bwd_el * tokens * act_bytes, acc)
    if last:
        per_logit = ct.CHUNKED_LOSS_BYTES_PER_LOGIT if job.chunked_ce else ct.LOSS_BYTES_PER_LOGIT
        loss = ct.memory_time(tokens * model.vocab_size / layout.tp * per_logit, acc)
        mem_fwd += loss / 2
        mem_bwd += loss / 2
    if first:
        mem_fwd += ct.memory_time(2 * tokens * model.hidden_size * act_bytes, acc)
        if job.method in (Method.FULL, Method.PROMPT, Method.PTUNING):
            mem_bwd += ct.memory_time(model.vocab_size * model.hidden_size / layout.tp * 4, acc)
    recompute = by_pass[Pass.RECOMPUTE] + (mem_fwd if job.recompute is Recompute.FULL else 0.0)
    comm = stage_calls(model, job, layout, cluster, ops.blocks, first, last, tokens, act_bytes, attn_fwd)
    fwd = by_pass[Pass.FORWARD] + mem_fwd
    bwd = by_pass[Pass.INPUT_GRAD] + by_pass[Pass.WEIGHT_GRAD] + mem_bwd
    time = StageTime(
        forward_s=fwd + comm.forward_s,
        backward_s=bwd + recompute + comm.backward_s,
        weight_grad_s=by_pass[Pass.WEIGHT_GRAD],
    )
    return _Stage(ops, time, fwd + bwd, recompute, comm, (gemm_s, attn_s, mem_fwd + mem_bwd))


def _assemble(
    model, job, layout, cluster, stages, slow, pipe: PipelineTime, states: ModelStates, dtype
) -> TimeEstimate:
    acc = cluster.accelerator
    m = job.grad_accum_steps
    fwd_compute = slow.time.forward_s - slow.comm.forward_s
    bwd_compute = slow.time.backward_s - slow.comm.backward_s
    calls = dp_calls(model, job, layout, cluster, slow.ops, states)
    comm_terms: list[Term] = []
    exposed_terms: list[Term] = []
    for name, seconds, exposed in slow.comm.items:
        total = seconds * m
        comm_terms.append(_comm_term(name, total, total * exposed / seconds if seconds else 0.0))
        exposed_terms.append(
            Term(
                f"comm.{name}",
                total * (exposed / seconds if seconds else 0.0),
                Unit.SECONDS,
                f"{m} micro-batches × {exposed:.6f} s exposed",
                _SOURCE,
            )
        )
    hide_of = {
        Overlap.NONE: 0.0,
        Overlap.FORWARD: fwd_compute,
        Overlap.BACKWARD: bwd_compute,
        Overlap.LAST_BACKWARD: bwd_compute,
        Overlap.ATTENTION: 0.0,
    }
    # collectives that hide behind the same compute share it: the window exposes max(first unit, Σ − compute)
    window_total: dict[Overlap, float] = {}
    window_first: dict[Overlap, float] = {}
    seconds = {id(call): call.seconds() for call in calls}
    for call in calls:
        window_total[call.overlap] = window_total.get(call.overlap, 0.0) + seconds[id(call)]
        window_first[call.overlap] = max(window_first.get(call.overlap, 0.0), call.first_unit_s)
    for call in calls:
        per = seconds[id(call)]
        repeats = m if call.per_micro_batch else 1
        if call.overlap is Overlap.NONE:
            exposed_one, formula = per, f"{repeats} × {per:.6f} s (not overlapped)"
        else:
            total, hide = window_total[call.overlap], hide_of[call.overlap]
            window = min(total, max(window_first[call.overlap], total - hide))
            share = per / total if total else 0.0
            hidden = (total - window) * share
            exposed_one = window * share + OVERLAP_CONTENTION * hidden
            formula = (
                f"{repeats} × ({share:.2f} of max(first unit, {total:.6f} s − {hide:.6f} s of "
                f"{call.overlap.value} compute) + {OVERLAP_CONTENTION:g} × {hidden:.6f} s hidden)"
            )
        comm_terms.append(_comm_term(call.name, per * repeats, exposed_one * repeats, call.one()))
        exposed_terms.append(Term(f"comm.{call.name}", exposed_one * repeats, Unit.SECONDS, formula, _SOURCE))
    optimizer_s, offload_s, opt_formula = optimizer_step(job, layout, cluster, states, bwd_compute)
    busy_compute = m * slow.compute_s
    recompute = m * slow.recompute_s
    stage_comm_exposed = pipe.busy_s - busy_compute - recompute
    dp_exposed = sum(t.value for t in exposed_terms) - sum(
        t.value for t in exposed_terms[: len(slow.comm.items)]
    )
    exposed_total = stage_comm_exposed + dp_exposed
    terms = (
        Term(
            "compute_s",
            busy_compute,
            Unit.SECONDS,
            f"{m} micro-batches × {slow.compute_s:.6f} s (slowest stage)",
            ct.SOURCE,
            tuple(
                Term(name, m * value, Unit.SECONDS, how, ct.SOURCE)
                for name, value, how in zip(
                    ("compute.gemm_s", "compute.attention_s", "compute.memory_bound_s"),
                    slow.kinds,
                    ("every GEMM by shape", "attention kernel", "norms, activations, residuals, RoPE, loss"),
                    strict=True,
                )
            ),
        ),
        Term("recompute_s", recompute, Unit.SECONDS, f"{m} × {slow.recompute_s:.6f} s", ct.SOURCE),
        Term(
            "exposed_comm_s",
            exposed_total,
            Unit.SECONDS,
            "Σ exposed collectives",
            _SOURCE,
            tuple(exposed_terms),
        ),
        Term(
            "bubble_s",
            pipe.bubble_s,
            Unit.SECONDS,
            f"{layout.pp_schedule.value}, pp={layout.pp}, m={m}",
            "formulas.pipeline (Narayanan et al. 2021; Qi et al. 2023)",
        ),
        Term("optimizer_s", optimizer_s, Unit.SECONDS, opt_formula, "HBM streaming of the step's bytes"),
        Term(
            "offload_s", offload_s, Unit.SECONDS, "host link and host step", "ZeRO-Offload (Ren et al. 2021)"
        ),
    )
    step = Breakdown(Unit.SECONDS, terms)
    tokens_per_step = layout.dp * m * job.micro_batch_size * job.seq_len
    tps = tokens_per_step / step.total
    per_gpu = tps / layout.num_gpus
    peak = acc.peak_flops(dtype)
    mf = model_flops_per_token(model, job.seq_len, causal=False)
    mfc = model_flops_per_token(model, job.seq_len, causal=True)
    per_gpu_flops = sum(s.ops.total for s in stages) / layout.pp * m  # mean over the stages, one step
    executed = per_gpu_flops * layout.num_gpus
    hfu = per_gpu_flops / step.total / peak
    flops = (
        Term("flops.model_per_token", mf, Unit.FLOPS, "6·N + 12·L·h·s", "PaLM appendix B; llm-foundry MFU"),
        Term("flops.model_per_token_causal", mfc, Unit.FLOPS, "6·N + 6·L·h·s", "torchtitan; Megatron-LM"),
        Term(
            "flops.executed_per_step",
            executed,
            Unit.FLOPS,
            "Σ GEMMs + attention of every GPU",
            "formulas.flops",
        ),
    )
    return TimeEstimate(
        step_s=step.total,
        step=step,
        comm=tuple(comm_terms),
        tokens_per_step=tokens_per_step,
        tokens_per_s=tps,
        tokens_per_s_per_gpu=per_gpu,
        mfu=mf * per_gpu / peak,
        mfu_causal=mfc * per_gpu / peak,
        hfu=hfu,
        flops=flops,
        constants=constants(acc),
    )


def _comm_term(name: str, total: float, exposed: float, one: Term | None = None) -> Term:
    parts = (Term("exposed", exposed, Unit.SECONDS, "part on the critical path", _SOURCE),)
    formula = one.formula if one is not None else "per micro-batch sum"
    return Term(
        f"comm.{name}", total, Unit.SECONDS, formula, one.source if one is not None else _SOURCE, parts
    )
