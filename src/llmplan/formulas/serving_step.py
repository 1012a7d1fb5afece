"""Latency of one serving-engine iteration: prefill chunks and decode tokens batched together.

One iteration runs every layer of a pp stage once over the T = d + p tokens it holds (d decoding sequences,
p prefill-chunk tokens), then the stages one after the other (no micro-batch overlap: the latency of a single
batch; vLLM and TRT-LLM overlap pp micro-batches, which raises throughput, not the latency of one iteration):

    t_step = pp · (t_gemm + t_head + t_attn + t_comm + t_launch) + (pp − 1) · t_p2p

- GEMMs (each linear of the stage's layers, its tp shard (k × n)): weight-bound at small T, compute-bound at
  large T, never shorter than a kernel — the roofline of `llmplan.formulas.compute_time` (achieved matmul
  fraction MAMF × tile quantization, HBM_BANDWIDTH_FRACTION, the kernel floor):
      t = max(2·T·k·n / (peak_q · MAMF · tile(T, n, k)), (W + a·T·(k + n)) / (bw · HBM_BANDWIDTH_FRACTION), floor)
  W = the weight bytes of the quantized format (w4a16 reads ~0.5 B per weight and computes at the 16-bit peak;
  w8a8 / fp8 read 1 B and compute at the int8 / fp8 peak: Frantar et al. 2024, "MARLIN", figure 1: 4-bit
  kernels near the ideal 4x up to batch 16-32, then compute-bound). MoE layers read only the experts the
  step's tokens route to (E · (1 − (1 − k/E)^T), uniform routing).
- the LM head runs on the rows that sample a token (decodes + prefills that finish this step), same roofline.
- attention over the paged KV cache: decode reads each sequence's cached K/V once, memory-bound,
  t = KV bytes / (bw · HBM_BANDWIDTH_FRACTION); prefill chunks are compute-bound, 4 · layers · heads · d per
  (query, key) pair at FLASH_ATTENTION_FLOPS_FRACTION of the 16-bit peak.
- TP: two all-reduces per layer of T · hidden activations (Shoeybi et al. 2019, section 3), each
  `llmplan.formulas.comms.collective_time` — latency-bound at small T. EP (MoE): dispatch + combine
  all-to-alls of T · k · hidden per MoE layer. PP: one point-to-point of T · hidden between stages.
- the other kernels of a layer (norms, RoPE, activation, residual adds) are launch-bound at the kernel floor:
  GRAPH_KERNEL_MIN_S when the engine replays a captured CUDA graph for this batch, compute_time.KERNEL_MIN_S
  (an eager launch) otherwise; the floor also bounds every GEMM from below.

Speculative decoding (draft k tokens, verify k + 1 per sequence in one target step): tokens per step
    E = (1 − α^(k+1)) / (1 − α)        (Leviathan et al. 2023, "Fast Inference from Transformers via
                                         Speculative Decoding", equation 1; α = per-token acceptance rate)
plus the drafts' cost, k · draft_cost_ratio target decode steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from llmplan.breakdown import Term, Unit
from llmplan.errors import SpecError
from llmplan.formulas.comms import Collective, CommGroup, collective_time
from llmplan.formulas.compute_time import KERNEL_MIN_S, tile_efficiency
from llmplan.formulas.roofline import moe_experts_touched

FLASH_ATTENTION_FLOPS_FRACTION = 0.5
"""Achieved / 16-bit dense peak of prefill attention. FlashAttention-2 reaches 50-73 % of A100 peak in the
forward pass (Dao 2023, "FlashAttention-2", figure 6); FlashAttention-3 75 % of H100 peak with bf16 (Shah et al.
2024, figure 5) while FA2 on H100 stays near 35 %. 0.5 is the middle of those kernels' range."""
GRAPH_KERNEL_MIN_S = 1.3e-6
"""Shortest kernel replayed from a CUDA graph (~1.3 µs, against compute_time.KERNEL_MIN_S = 4 µs for an eager
launch from Python: stas00/ml-engineering training/performance notes; PyTorch blog 2021-10-26 "Accelerating
PyTorch with CUDA Graphs")."""
FUSED_KERNELS_PER_LAYER = 12
"""Kernels of one decoder layer in a fused serving engine: norm, QKV GEMM, RoPE + cache write, attention, O
GEMM, all-reduce, residual + norm, gate-up GEMM, activation·mul, down GEMM, all-reduce, residual add."""
EAGER_KERNELS_PER_LAYER = 40
"""Ops of a transformers decoder layer in eager mode (LlamaDecoderLayer.forward: two RMSNorms of ~7 ops each,
4 projections, RoPE ~10 ops, SDPA, views / transposes, the MLP's 5 ops, 2 residual adds, cache concatenation)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecDecode:
    """Speculative decoding: `draft_tokens` proposed per step, each accepted with probability `acceptance_rate`."""

    draft_tokens: int
    acceptance_rate: float
    draft_cost_ratio: float = 0.05
    """Cost of one draft token as a fraction of a target decode step (an EAGLE / MTP head is about one decoder
    layer of the target: ~1/L; a separate small draft model its size ratio)."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.draft_tokens, bool)
            or not isinstance(self.draft_tokens, int)
            or self.draft_tokens < 1
        ):
            raise SpecError("draft_tokens", f"{self.draft_tokens!r} is out of range (allowed: integers >= 1)")
        if not (isinstance(self.acceptance_rate, (int, float)) and 0.0 <= self.acceptance_rate <= 1.0):
            raise SpecError(
                "acceptance_rate", f"{self.acceptance_rate!r} is out of range (allowed: 0 <= rate <= 1)"
            )
        if not (math.isfinite(self.draft_cost_ratio) and self.draft_cost_ratio >= 0):
            raise SpecError("draft_cost_ratio", f"{self.draft_cost_ratio!r} (allowed: a finite number >= 0)")

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens emitted per target step: (1 − α^(k+1)) / (1 − α) (k + 1 when α = 1)."""
        a, k = self.acceptance_rate, self.draft_tokens
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepModel:
    """The constants of one rank and one pp stage that an iteration's latency depends on."""

    pp: int
    layers_per_stage: int
    layer_weight_bytes: float
    """Bytes of the decoder-layer linears of one stage on one rank that every step reads (dense part)."""
    routed_weight_bytes: float
    """Bytes of the routed experts of one stage on one rank (read in proportion to the experts touched)."""
    num_experts: int
    experts_per_token: int
    layer_flops_per_token: float
    """2 · active linear parameters of one stage / tp."""
    gemms: tuple[tuple[int, int, int, float], ...]
    """The dense GEMMs of one stage on one rank: (k, n, count, weight bytes of one)."""
    act_bytes: int
    head_weight_bytes: float
    head_flops_per_row: float
    kv_bytes_per_token: float
    """Cached K/V bytes per token of one stage on one rank."""
    attn_flops_per_pair: float
    """4 · layers · heads / tp · head_dim of one stage."""
    hbm_bytes_per_s: float
    """Achieved bandwidth: peak · HBM_BANDWIDTH_FRACTION."""
    gemm_flops_per_s: float
    """Achievable GEMM rate in the weight format's compute dtype: dense peak × the architecture's MAMF fraction
    (compute_time.mamf_fraction), before tile quantization."""
    attn_flops_per_s: float
    """Achieved prefill-attention rate: 16-bit peak · FLASH_ATTENTION_FLOPS_FRACTION."""
    tp_allreduce: tuple[float, float]
    """(α s, β s per byte) of one TP all-reduce on the group, from `collective_time` (linear in bytes)."""
    allreduces_per_layer: int
    ep_all_to_all: tuple[float, float]
    moe_layers_per_stage: int
    pp_p2p: tuple[float, float]
    hidden_bytes_per_token: float
    """hidden · activation bytes: one token's row in an all-reduce / p2p message."""
    dispatch_bytes_per_token: float
    """experts_per_token · hidden · activation bytes: one token's rows in an EP all-to-all."""
    kernels_per_layer: int
    draft_cost: float = 0.0
    """Speculative decoding: draft_tokens · draft_cost_ratio, in plain decode steps added to each verify step."""
    graph_max_batch: int
    """Largest decode batch replayed from a CUDA graph (0: no graphs)."""
    mixed_step_graphs: bool


def linear_cost(kind: Collective, group: CommGroup) -> tuple[float, float]:
    """(α, β) with collective_time(m) = α + β · m for m > 0, read from `collective_time` at two sizes."""
    if group.size == 1:
        return (0.0, 0.0)
    one = collective_time("probe", kind, 1.0, group).value
    two = collective_time("probe", kind, 2.0, group).value
    beta = two - one
    return (one - beta, beta)


def _linear(cost: tuple[float, float], message_bytes: float) -> float:
    return cost[0] + cost[1] * message_bytes if message_bytes > 0 and cost[1] > 0 else 0.0


def _floor(m: StepModel, decode_seqs: int, prefill_tokens: int) -> float:
    graph = 0 < decode_seqs + prefill_tokens and m.graph_max_batch > 0
    graph = graph and (prefill_tokens == 0 or m.mixed_step_graphs) and decode_seqs <= m.graph_max_batch
    return GRAPH_KERNEL_MIN_S if graph else KERNEL_MIN_S


@lru_cache(maxsize=1 << 16)
def _dense_gemms_s(
    gemms: tuple[tuple[int, int, int, float], ...], flops: float, hbm: float, act: int, t: int, floor: float
) -> float:
    """Σ count · max(compute, memory, floor) over the dense GEMMs at t tokens (memoised: a simulation asks for
    the same few batch sizes thousands of times)."""
    total = 0.0
    for k, n, count, weight in gemms:
        compute = 2.0 * t * k * n / (flops * tile_efficiency(t, n, k))
        memory = (weight + act * t * (k + n)) / hbm
        total += count * max(compute, memory, floor)
    return total


def _gemm_s(m: StepModel, tokens: float, floor: float = GRAPH_KERNEL_MIN_S) -> float:
    """The stage's GEMMs over `tokens` tokens (module docstring)."""
    t = max(1, math.ceil(tokens))
    total = _dense_gemms_s(m.gemms, m.gemm_flops_per_s, m.hbm_bytes_per_s, m.act_bytes, t, floor)
    if m.routed_weight_bytes:
        touched = moe_experts_touched(m.num_experts, m.experts_per_token, t)
        routed = m.routed_weight_bytes * touched / m.num_experts
        routed_flops = m.layer_flops_per_token * tokens - sum(
            2.0 * k * n * c * tokens for k, n, c, _ in m.gemms
        )
        total += max(routed / m.hbm_bytes_per_s, max(0.0, routed_flops) / m.gemm_flops_per_s)
    return total


def _launch_s(m: StepModel, decode_seqs: int, prefill_tokens: int) -> float:
    """The non-GEMM kernels of the stage at the kernel floor."""
    gemm_kernels = sum(c for _, _, c, _ in m.gemms)
    others = max(0, m.layers_per_stage * m.kernels_per_layer - gemm_kernels)
    return others * _floor(m, decode_seqs, prefill_tokens)


def _comm_s(m: StepModel, tokens: float) -> float:
    ar = (
        m.allreduces_per_layer
        * m.layers_per_stage
        * _linear(m.tp_allreduce, tokens * m.hidden_bytes_per_token)
    )
    a2a = 2 * m.moe_layers_per_stage * _linear(m.ep_all_to_all, tokens * m.dispatch_bytes_per_token)
    return ar + a2a


def step_time_s(
    m: StepModel,
    *,
    decode_seqs: int,
    decode_kv_tokens: float,
    prefill_tokens: int,
    prefill_pairs: float,
    head_rows: int,
    verify_tokens: int = 1,
) -> float:
    """Seconds of one iteration (module docstring). `verify_tokens` = k + 1 with speculative decoding."""
    tokens = decode_seqs * verify_tokens + prefill_tokens
    if tokens == 0:
        return 0.0
    head = max(m.head_weight_bytes / m.hbm_bytes_per_s, m.head_flops_per_row * head_rows / m.gemm_flops_per_s)
    attn = decode_kv_tokens * m.kv_bytes_per_token / m.hbm_bytes_per_s
    attn += (
        m.attn_flops_per_pair
        * (prefill_pairs + (verify_tokens - 1) * decode_kv_tokens)
        / (m.attn_flops_per_s)
    )
    floor = _floor(m, decode_seqs, prefill_tokens)
    stage = (
        _gemm_s(m, tokens, floor)
        + head
        + attn
        + _comm_s(m, tokens)
        + _launch_s(m, decode_seqs, prefill_tokens)
    )
    if verify_tokens > 1 and decode_seqs and m.draft_cost:
        plain = _gemm_s(m, decode_seqs, floor) + decode_kv_tokens * m.kv_bytes_per_token / m.hbm_bytes_per_s
        stage += m.draft_cost * (plain + _launch_s(m, decode_seqs, 0))
    return m.pp * stage + (m.pp - 1) * _linear(m.pp_p2p, tokens * m.hidden_bytes_per_token)


def decode_coefficients(m: StepModel, decode_seqs: int, verify_tokens: int = 1) -> tuple[float, float]:
    """(a, b) with step_time_s = a + b · decode_kv_tokens for a decode-only step of `decode_seqs` sequences."""
    a = step_time_s(
        m, decode_seqs=decode_seqs, decode_kv_tokens=0, prefill_tokens=0, prefill_pairs=0,
        head_rows=decode_seqs * verify_tokens, verify_tokens=verify_tokens,
    )  # fmt: skip
    b = m.pp * m.kv_bytes_per_token / m.hbm_bytes_per_s
    if verify_tokens > 1:
        b *= 1 + m.draft_cost
        b += m.pp * m.attn_flops_per_pair * (verify_tokens - 1) / m.attn_flops_per_s
    return a, b


def step_terms(
    m: StepModel, *, decode_seqs: int, decode_kv_tokens: float, prefill_tokens: int, prefill_pairs: float
) -> Term:
    """The same iteration as `step_time_s`, as a Term with one part per mechanism (for --explain and JSON)."""
    tokens = decode_seqs + prefill_tokens
    head_rows = decode_seqs + (1 if prefill_tokens else 0)
    floor = _floor(m, decode_seqs, prefill_tokens)
    gemm = _gemm_s(m, tokens, floor)
    weight_bound = sum(c * w for _, _, c, w in m.gemms) / m.hbm_bytes_per_s
    bound = "weight" if weight_bound >= 0.8 * gemm else "compute"
    src = "formulas/serving_step.py; GEMM roofline of formulas/compute_time.py"
    head = max(m.head_weight_bytes / m.hbm_bytes_per_s, m.head_flops_per_row * head_rows / m.gemm_flops_per_s)
    attn = decode_kv_tokens * m.kv_bytes_per_token / m.hbm_bytes_per_s
    attn += m.attn_flops_per_pair * prefill_pairs / m.attn_flops_per_s
    kind = "graph" if floor == GRAPH_KERNEL_MIN_S else "eager"
    parts = (
        Term(
            "step.gemm",
            m.pp * gemm,
            Unit.SECONDS,
            f"{m.pp} stage(s) × Σ over {sum(c for _, _, c, _ in m.gemms)} GEMMs of max(2·{tokens}·k·n / "
            f"({m.gemm_flops_per_s / 1e12:,.0f} TFLOP/s × tile), (W + a·T·(k+n)) / {m.hbm_bytes_per_s / 1e9:,.0f} "
            f"GB/s, {floor * 1e6:.1f} µs) ({bound}-bound)",
            "formulas/compute_time.py (MAMF, tile quantization, KERNEL_MIN_S); HBM_BANDWIDTH_FRACTION",
        ),
        Term("step.lm_head", m.pp * head, Unit.SECONDS, f"{head_rows} sampled rows × vocab × hidden", src),
        Term(
            "step.attention",
            m.pp * attn,
            Unit.SECONDS,
            f"{decode_kv_tokens:,.0f} cached tokens × {m.kv_bytes_per_token:,.0f} B / bw + "
            f"{prefill_pairs:,.0f} prefill pairs × {m.attn_flops_per_pair:,.0f} FLOP / "
            f"{m.attn_flops_per_s / 1e12:,.0f} TFLOP/s",
            f"paged KV read (memory-bound) + FlashAttention at {FLASH_ATTENTION_FLOPS_FRACTION} of peak",
        ),
        Term(
            "comm.tp_all_reduce",
            m.pp * _comm_s(m, tokens),
            Unit.SECONDS,
            f"{m.allreduces_per_layer} all-reduces × {m.layers_per_stage} layers of {tokens} × "
            f"{m.hidden_bytes_per_token:,.0f} B (+ EP all-to-alls)",
            "formulas/comms.py collective_time",
        ),
        Term(
            "step.launch",
            m.pp * _launch_s(m, decode_seqs, prefill_tokens),
            Unit.SECONDS,
            f"{m.layers_per_stage} layers × the non-GEMM kernels of {m.kernels_per_layer} at the {kind} floor "
            f"{floor * 1e6:.1f} µs",
            f"GRAPH_KERNEL_MIN_S {GRAPH_KERNEL_MIN_S * 1e6:.1f} µs, compute_time.KERNEL_MIN_S {KERNEL_MIN_S * 1e6:.1f} µs",
        ),
    )
    total = step_time_s(
        m, decode_seqs=decode_seqs, decode_kv_tokens=decode_kv_tokens, prefill_tokens=prefill_tokens,
        prefill_pairs=prefill_pairs, head_rows=head_rows,
    )  # fmt: skip
    return Term(
        "step",
        total,
        Unit.SECONDS,
        f"{decode_seqs} decodes + {prefill_tokens} prefill tokens; pp {m.pp}: sum of the parts + p2p",
        src,
        parts,
    )
