"""Inference speed from a roofline: prefill is compute-bound, decode streams the weights and the KV cache.

Prefill of `p` prompt tokens for `b` sequences (time to first token):
    flops = 2 · N_active · b·p + attention,  attention = 4 · layers · heads · head_dim_qk·v · b · p²/2 (causal)
    t = max(flops / (peak · PREFILL_FLOPS_FRACTION), weight_bytes / (bw · HBM_BANDWIDTH_FRACTION)) + comm
Decode step (time per output token), batch b, context c:
    bytes = weight bytes read per step (MoE: only the experts some token of the batch routes to)
            + KV cache of the batch
    flops = 2 · N_active · b + 4 · layers · heads · head_dim · c · b
    t = max(bytes / (bw · HBM_BANDWIDTH_FRACTION), flops / (peak · DECODE_FLOPS_FRACTION)) + comm
(Pope et al. 2022, "Efficiently Scaling Transformer Inference", section 2; Kipply 2022, "Transformer
Inference Arithmetic"; gpt-fast README: decode speed = achieved bandwidth / model bytes.)

Tensor parallel adds two all-reduces per layer (after attention and after the MLP, Shoeybi et al. 2019, 3)
of b·tokens·hidden activations, ring time 2(tp-1)/tp · bytes / link + a fixed latency each.

The batch where decode turns compute-bound is where the two terms meet (arithmetic intensity of the step =
peak / bandwidth of the device).
"""

from __future__ import annotations

from dataclasses import dataclass

HBM_BANDWIDTH_FRACTION = 0.8
"""Achieved / peak HBM bandwidth of a decode step. gpt-fast (pytorch-labs/gpt-fast README, A100-80GB SXM at a
330 W power cap) reports 1397-1411 GB/s achieved for 7-8B bf16 batch-1 decode, 0.69 of 2039 GB/s; vLLM and
TensorRT-LLM decode kernels reach 0.8-0.9 of peak on uncapped H100 / A100 (NVIDIA's bandwidthTest tops out near
0.9). 0.8 is the middle of that range, not fitted to any one row of measured.jsonl."""
PREFILL_FLOPS_FRACTION = 0.6
"""Achieved / dense peak FLOP/s of a long prefill: large GEMMs reach 0.6-0.7 of peak (Kipply 2022 measured
FasterTransformer's 13B prefill near 0.68 of A100 peak; PaLM appendix B reports 0.46-0.58 MFU for training,
which adds the backward pass)."""
DECODE_FLOPS_FRACTION = 0.5
"""Achieved / peak FLOP/s of the decode GEMMs once compute-bound (skinny b x hidden GEMMs tile worse than
prefill; vLLM large-batch H100 benchmarks land at 0.4-0.6 of peak)."""
ALLREDUCE_LATENCY_S = 10e-6
"""Fixed cost of one small all-reduce inside a node: nccl-tests all_reduce_perf on DGX A100 / H100 reports
about 10-20 µs for messages up to 64 KiB (NVIDIA nccl-tests README results); custom all-reduce kernels
(vLLM, TensorRT-LLM) get below 10 µs."""


@dataclass(frozen=True, slots=True)
class StepTime:
    """One prefill or decode step: its memory, compute and communication terms and the resulting time."""

    memory_s: float
    compute_s: float
    comm_s: float

    @property
    def total(self) -> float:
        return max(self.memory_s, self.compute_s) + self.comm_s

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s >= self.compute_s else "compute"


def attention_flops(layers: int, heads: int, head_dim: int, query_tokens: int, kv_tokens: float) -> float:
    """QK^T and AV: 2 matmuls x 2 flops x heads x head_dim per (query, key) pair, over all layers."""
    return 4.0 * layers * heads * head_dim * query_tokens * kv_tokens


def allreduce_s(message_bytes: float, tp: int, link_bytes_per_s: float) -> float:
    """Ring all-reduce time 2(tp-1)/tp · bytes / one-way link bandwidth + ALLREDUCE_LATENCY_S (Patarasuk 2009)."""
    if tp == 1:
        return 0.0
    return 2 * (tp - 1) / tp * message_bytes / link_bytes_per_s + ALLREDUCE_LATENCY_S


def prefill_time(
    *,
    flops: float,
    weight_bytes: float,
    peak_flops_per_s: float,
    bandwidth_bytes_per_s: float,
    comm_s: float = 0.0,
) -> StepTime:
    """Prefill (time to first token): compute-bound except for very short prompts (module docstring)."""
    return StepTime(
        memory_s=weight_bytes / (bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION),
        compute_s=flops / (peak_flops_per_s * PREFILL_FLOPS_FRACTION),
        comm_s=comm_s,
    )


def decode_time(
    *,
    bytes_read: float,
    flops: float,
    peak_flops_per_s: float,
    bandwidth_bytes_per_s: float,
    comm_s: float = 0.0,
) -> StepTime:
    """One decode step (time per output token for every sequence of the batch)."""
    return StepTime(
        memory_s=bytes_read / (bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION),
        compute_s=flops / (peak_flops_per_s * DECODE_FLOPS_FRACTION),
        comm_s=comm_s,
    )


def moe_experts_touched(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts a batch of `tokens` routes to per layer, uniform routing:
    E · (1 - (1 - k/E)^tokens)."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def critical_batch(
    *,
    weight_bytes: float,
    kv_bytes_per_seq: float,
    flops_per_seq: float,
    peak_flops_per_s: float,
    bandwidth_bytes_per_s: float,
) -> float | None:
    """Batch where the decode step's compute time reaches its memory time (dense weights):
        (W + b·KV) / (bw·f_bw) = b·F / (peak·f_dec)  ->  b* = (W/(bw·f_bw)) / (F/(peak·f_dec) - KV/(bw·f_bw))
    None when the KV traffic per sequence outgrows its compute (decode never turns compute-bound)."""
    bw = bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION
    peak = peak_flops_per_s * DECODE_FLOPS_FRACTION
    denom = flops_per_seq / peak - kv_bytes_per_seq / bw
    if denom <= 0:
        return None
    return (weight_bytes / bw) / denom
