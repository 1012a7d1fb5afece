"""Roofline latency and throughput of serving: prefill is compute-bound, decode streams the weights and the KV
cache once per step (constants and sources in `llmplan.formulas.roofline`). The times are reported as `Term`s
(seconds) with their memory, compute and communication parts."""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.breakdown import Term, Unit
from llmplan.estimate.inference_memory import Footprint, memo
from llmplan.formulas import roofline
from llmplan.formulas.params import count_params
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, QuantFormat
from llmplan.specs.model import ModelSpec


@dataclass(frozen=True, slots=True)
class InferenceSpeed:
    """Roofline latency and throughput (constants in `llmplan.formulas.roofline`)."""

    ttft_s: float
    prefill: roofline.StepTime
    tpot_s: float
    decode: roofline.StepTime
    tokens_per_s: float
    """Output tokens per second of the whole batch."""
    tokens_per_s_per_sequence: float
    critical_batch: float | None
    """Batch where decode turns compute-bound (None: never, KV traffic grows faster)."""
    terms: tuple[Term, ...]
    """ttft and tpot as records, each with its memory, compute and communication parts."""

    @property
    def total(self) -> float:
        return self.tokens_per_s


def _peak_dtype(job: InferenceJob) -> str:
    if job.quant in (QuantFormat.FP8, QuantFormat.FP8_CHANNEL):
        return "fp8"
    return job.activation_dtype.value


def speed(model: ModelSpec, job: InferenceJob, cluster: Cluster, fp: Footprint) -> InferenceSpeed:
    acc = cluster.accelerator
    params = memo(model, ("params",), lambda: count_params(model))
    matmul = params.active_per_token - params.embedding - params.position - params.norm
    if model.tie_word_embeddings:
        matmul += model.vocab_size * model.hidden_size
    dtype = _peak_dtype(job)
    peak = acc.peak_flops(dtype) if acc.supports(dtype) else acc.peak_flops("fp16")
    bw = acc.memory_bandwidth_bytes_per_s
    tp, pp = job.tp, job.pp
    # vLLM runs at most max_num_seqs sequences per step; the rest wait (the batch is not decoded at once)
    b = min(job.batch, job.vllm.max_num_seqs) if job.engine is Engine.VLLM else job.batch
    p, c = job.prefill_tokens, job.context_len
    heads = model.num_attention_heads
    dqk = model.head_dim if model.mla is None else model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim
    layers = model.num_hidden_layers
    link = cluster.accelerator.intra_node.one_way_bytes_per_s if cluster.accelerator.intra_node else 16e9
    ar = 2 * layers // pp
    weights = fp.weights.total
    if model.moe is not None:
        moe = model.moe
        routed = params.routed_experts / params.total * weights
        touched = roofline.moe_experts_touched(moe.num_experts, moe.experts_per_token, b)
        weights_read = weights - routed + routed * touched / moe.num_experts
    else:
        weights_read = weights
    # Prefill: every stage runs in turn for one batch, so pp adds up (no overlap for a single request).
    pre_flops = (2 * matmul * b * p + attention_causal(layers, heads, dqk, b, p)) / tp
    pre_comm = ar * roofline.allreduce_s(b * p * model.hidden_size * fp.act_bytes, tp, link)
    pre = roofline.prefill_time(
        flops=pre_flops / pp,
        weight_bytes=weights,
        peak_flops_per_s=peak,
        bandwidth_bytes_per_s=bw,
        comm_s=pre_comm,
    )
    dec_flops = (2 * matmul * b + roofline.attention_flops(layers, heads, dqk, b, c)) / tp
    kv = fp.kv(c, b)
    dec_comm = ar * roofline.allreduce_s(b * model.hidden_size * fp.act_bytes, tp, link)
    dec = roofline.decode_time(
        bytes_read=weights_read + kv,
        flops=dec_flops / pp,
        peak_flops_per_s=peak,
        bandwidth_bytes_per_s=bw,
        comm_s=dec_comm,
    )
    tpot = dec.total * pp
    crit = roofline.critical_batch(
        weight_bytes=weights,
        kv_bytes_per_seq=kv / b,
        flops_per_seq=dec_flops / b / pp,
        peak_flops_per_s=peak,
        bandwidth_bytes_per_s=bw,
    )
    prefill_terms = _step_terms(
        "ttft", pre, pp, weights, pre_flops / pp, peak, bw, roofline.PREFILL_FLOPS_FRACTION, pre_comm, ar
    )
    decode_terms = _step_terms(
        "tpot",
        dec,
        pp,
        weights_read + kv,
        dec_flops / pp,
        peak,
        bw,
        roofline.DECODE_FLOPS_FRACTION,
        dec_comm,
        ar,
    )
    return InferenceSpeed(
        terms=(prefill_terms, decode_terms),
        ttft_s=pre.total * pp,
        prefill=pre,
        tpot_s=tpot,
        decode=dec,
        tokens_per_s=b / tpot,
        tokens_per_s_per_sequence=1 / tpot,
        critical_batch=crit,
    )


def _step_terms(
    name: str,
    step: roofline.StepTime,
    pp: int,
    bytes_read: float,
    flops: float,
    peak: float,
    bw: float,
    flops_fraction: float,
    comm_s: float,
    all_reduces: int,
) -> Term:
    """One step (prefill: ttft; decode: tpot) of the roofline as a record with its three parts."""
    f_bw = roofline.HBM_BANDWIDTH_FRACTION
    what = "time to first token (prefill)" if name == "ttft" else "time per output token (decode step)"
    return Term(
        name,
        step.total * pp,
        Unit.SECONDS,
        f"{what}: (max(memory {step.memory_s:.3e}, compute {step.compute_s:.3e}) + comm {step.comm_s:.3e}) s "
        f"× {pp} stage(s); {step.bound}-bound",
        "formulas/roofline.py (Pope et al. 2022 §2; Kipply 2022; gpt-fast)",
        (
            Term(
                f"{name}.memory",
                step.memory_s,
                Unit.SECONDS,
                f"{bytes_read:,.0f} B / ({bw:.3e} B/s × {f_bw}) = {step.memory_s:.3e} s",
                "formulas/roofline.py HBM_BANDWIDTH_FRACTION",
            ),
            Term(
                f"{name}.compute",
                step.compute_s,
                Unit.SECONDS,
                f"{flops:.3e} FLOP / ({peak:.3e} FLOP/s × {flops_fraction}) = {step.compute_s:.3e} s",
                "formulas/roofline.py PREFILL_FLOPS_FRACTION / DECODE_FLOPS_FRACTION",
            ),
            Term(
                f"{name}.comm",
                comm_s,
                Unit.SECONDS,
                f"{all_reduces} tp all-reduces of the activations = {comm_s:.3e} s",
                "formulas/roofline.py allreduce_s (Patarasuk 2009; Shoeybi et al. 2019 §3)",
            ),
        ),
    )


def attention_causal(layers: int, heads: int, head_dim: int, batch: int, prompt: int) -> float:
    """Causal prefill attention: each of p queries sees (p + 1)/2 keys on average."""
    return roofline.attention_flops(layers, heads, head_dim, batch * prompt, (prompt + 1) / 2)
