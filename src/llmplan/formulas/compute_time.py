"""Seconds of each operation of a training step on one GPU: a roofline with achieved efficiencies.

    t(op) = max(flops / (peak(dtype) · η_op), bytes / (HBM bandwidth · HBM_BANDWIDTH_FRACTION), KERNEL_MIN_S)

- GEMMs (`Gemm`): η = the maximum achievable matmul fraction of the accelerator (MAMF_FRACTION, measured by
  brute-force search over large shapes) times the tile quantization of the shape: cuBLAS computes the output in
  tiles of GEMM_TILE × GEMM_TILE and the inner dimension in steps of GEMM_TILE_K, so a dimension just above a
  multiple pays for the whole next tile (NVIDIA, "Matrix Multiplication Background User's Guide", sections
  "Tile quantization" and "Dimension quantization effects"). The bytes are the three operands read or
  written once; small or skinny GEMMs (LoRA's rank-r products, per-expert GEMMs of a few tokens) come out
  memory-bound, as they are.
- attention (`AttentionCore`): FlashAttention-style kernels reach a fraction of the peak that grows with the
  sequence length (the kernel parallelises over query blocks; short sequences leave SMs idle and spend a larger
  share on the softmax rescaling): η(s) = η_max · s / (s + FLASH_HALF_SEQ). Eager attention runs its two
  products as batched GEMMs and its softmax over the s × s scores as a memory-bound op.
- memory-bound ops (norms, activations, residual adds, RoPE, the loss, casts, the optimizer step) move bytes
  at HBM_BANDWIDTH_FRACTION of the HBM bandwidth (`memory_time`).
- KERNEL_MIN_S: no kernel takes less than a launch (eager PyTorch issues one kernel per op).
"""

from __future__ import annotations

import math

from llmplan.formulas.flops import AttentionCore, Gemm, Pass
from llmplan.formulas.roofline import HBM_BANDWIDTH_FRACTION
from llmplan.specs.hardware import Accelerator
from llmplan.specs.model import Block, MlpKind, ModelSpec, NormScope, PositionKind, Role
from llmplan.specs.training import AttentionImpl

MAMF_FRACTION = {"Ampere": 0.859, "Hopper": 0.801, "CDNA 3": 0.601, "CDNA 2": 0.767}
"""Maximum achievable matmul FLOP/s / dense peak, BF16, by architecture: A100 SXM 267.9 of 312, H100 SXM 792.1
of 989, MI300X 781.9 of 1300, MI250X 147.0 of 191.5 (one GCD) TFLOP/s (stas00/ml-engineering,
compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS comparison table", mamf-finder.py). Applied to
every dtype of the architecture (no published fp8 MAMF)."""
MAMF_FRACTION_DEFAULT = 0.80
"""Architectures without a MAMF measurement: 0.80, the GH200 / H100 SXM figures of the same table (83.0 %,
80.1 %), a stated assumption."""
SUSTAINED_FRACTION = {"Ampere": 0.82, "Hopper": 0.71}
"""Achieved / MAMF of the GEMMs inside a whole training step, by architecture: what a burst of one GEMM shape
(MAMF) does not see — clocks sustained at the power limit for minutes, NCCL kernels of the overlapped
collectives sharing SMs and HBM beyond what `layout_comms.OVERLAP_CONTENTION` charges, eager-mode gaps
between kernels. Fitted (with OVERLAP_CONTENTION, the only fitted constants of the time model) on the 8-GPU
bf16 rows of llm-foundry's benchmark table (A100: 105 rows, H100: 37; `python benchmarks/time_accuracy.py
--fit`) and checked on the rows left out (multi-node, fp8, Megatron, NeMo, torchtitan) in
docs/accuracy-time.md. A100: 0.859 × 0.82 = 0.70 of peak (220 TFLOP/s), H100: 0.801 × 0.71 = 0.57 (562
TFLOP/s) — in line with the 50–60 % MFU Megatron-LM reports on A100 (Narayanan et al. 2021, table 1) and the
~45 % on H100 (Megatron-LM README)."""
SUSTAINED_FRACTION_DEFAULT = 0.71
"""Architectures not fitted: the Hopper value (the lower of the two, a stated assumption)."""
GEMM_TILE = 128
"""Output tile edge of cuBLAS's large-GEMM kernels (128 × 128 / 128 × 256 CTA tiles on Ampere and Hopper;
NVIDIA Matrix Multiplication Background User's Guide, "Tile quantization")."""
GEMM_TILE_K = 64
"""Inner-dimension step of those kernels (CUTLASS default threadblock K of 64 for 16-bit tensor-core GEMMs)."""
KERNEL_MIN_S = 4e-6
"""Shortest kernel: the launch latency of eager PyTorch, ~4 µs per op issued from Python (a kernel replayed from
a CUDA graph takes ~1.3 µs; stas00/ml-engineering training/performance notes; PyTorch CUDA-graphs blog
2021-10-26 "Accelerating PyTorch with CUDA Graphs")."""
FLASH_EFFICIENCY = {"Ampere": 0.64, "Hopper": 0.36}
"""η_max of FlashAttention-2 forward + backward, by architecture: A100 ~200 TFLOP/s of 312 at long sequences
(Dao 2023, "FlashAttention-2", figure 4, head dim 128); H100 ~350 TFLOP/s of 989 (Shah et al. 2024,
"FlashAttention-3", figure 5/6, the FlashAttention-2 curves)."""
FLASH_EFFICIENCY_DEFAULT = 0.40
"""Other architectures: 0.40, between the Hopper and Ampere figures (an assumption, stated)."""
TRITON_SLOWDOWN = 2.0
"""FlashAttention-2 runs forward + backward about 2× faster than the Triton FlashAttention kernel (Dao 2023,
"FlashAttention-2", figure 4 and section 4.1: "1.3-2.5× faster than FlashAttention in Triton")."""
FLASH_HALF_SEQ = 512
"""Sequence length at which FlashAttention-2 reaches half its η_max: FA2 figure 4 reads ~2/3 of the long-sequence
throughput at 1k tokens and ~4/5 at 2k; s/(s+512) gives 0.67 and 0.80."""

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
SOURCE = (
    "roofline; MAMF (stas00/ml-engineering); NVIDIA Matrix Multiplication Background (tile quantization); "
    "FlashAttention-2 fig. 4, FlashAttention-3 fig. 5-6"
)


def mamf_fraction(acc: Accelerator) -> float:
    return MAMF_FRACTION.get(acc.architecture, MAMF_FRACTION_DEFAULT)


def training_gemm_fraction(acc: Accelerator) -> float:
    """Achieved / peak of a large GEMM inside a training step: MAMF × SUSTAINED_FRACTION of the architecture."""
    return mamf_fraction(acc) * SUSTAINED_FRACTION.get(acc.architecture, SUSTAINED_FRACTION_DEFAULT)


def _quantized(x: int, tile: int) -> int:
    return math.ceil(x / tile) * tile


def tile_efficiency(m: int, n: int, k: int) -> float:
    """Useful / computed work of a GEMM whose dimensions are rounded up to the tiles (module docstring)."""
    return (m * n * k) / (_quantized(m, GEMM_TILE) * _quantized(n, GEMM_TILE) * _quantized(k, GEMM_TILE_K))


def gemm_time(g: Gemm, acc: Accelerator, dtype: str) -> float:
    """Seconds of `g.count` GEMMs of shape (m × k)·(k × n) in `dtype` (module docstring); fp8 GEMMs also cast
    both 16-bit inputs (read 2 B, write 1 B per element: Transformer Engine / torchao float8 casts)."""
    return GemmPricer(acc, dtype).seconds(g)


class GemmPricer:
    """`gemm_time` with the accelerator's rates looked up once (an estimate prices a few dozen GEMMs)."""

    __slots__ = ("flops_per_s", "bytes_per_s", "in_bytes")

    def __init__(self, acc: Accelerator, dtype: str) -> None:
        self.flops_per_s = acc.peak_flops(dtype) * training_gemm_fraction(acc)
        self.bytes_per_s = acc.memory_bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION
        self.in_bytes = DTYPE_BYTES[dtype] + (3 if dtype == "fp8" else 0)

    def seconds(self, g: Gemm) -> float:
        m, n, k = g.m, g.n, g.k
        padded = (
            -(-m // GEMM_TILE)
            * GEMM_TILE
            * (-(-n // GEMM_TILE) * GEMM_TILE)
            * (-(-k // GEMM_TILE_K) * GEMM_TILE_K)
        )
        compute = 2.0 * padded / self.flops_per_s
        memory = (self.in_bytes * (m * k + k * n) + 2 * m * n) / self.bytes_per_s
        return g.count * max(compute, memory, KERNEL_MIN_S)


def flash_efficiency(acc: Accelerator, seq_len: int) -> float:
    eta = FLASH_EFFICIENCY.get(acc.architecture, FLASH_EFFICIENCY_DEFAULT)
    return eta * seq_len / (seq_len + FLASH_HALF_SEQ)


def attention_time(
    a: AttentionCore, acc: Accelerator, dtype: str, *, impl: AttentionImpl, seq_len: int
) -> float:
    """Seconds of the attention core: a fused kernel at `flash_efficiency` (the Triton kernel TRITON_SLOWDOWN
    slower), or eager batched GEMMs plus the softmax over the scores (read and write the fp32 scores and the
    probabilities, twice in backward)."""
    if impl is not AttentionImpl.EAGER:
        slowdown = TRITON_SLOWDOWN if impl is AttentionImpl.TRITON else 1.0
        kernels = 1 if a.step is not Pass.INPUT_GRAD else 2
        return max(
            a.flops * slowdown / (acc.peak_flops(dtype) * flash_efficiency(acc, seq_len)),
            kernels * KERNEL_MIN_S * a.layers,
        )
    per_product = Gemm(
        "attention", a.queries, int(a.keys_per_query), a.qk_dim, a.sequences_heads * a.layers, a.step
    )
    products = a.matmuls * gemm_time(per_product, acc, dtype) * (a.qk_dim + a.v_dim) / (2 * a.qk_dim)
    scores = a.sequences_heads * a.queries * a.keys_per_query * a.layers
    softmax_bytes = scores * (4 + 2) * (2 if a.step is Pass.INPUT_GRAD else 1)
    return products + memory_time(softmax_bytes, acc)


def memory_time(nbytes: float, acc: Accelerator) -> float:
    """Seconds to move `nbytes` through HBM at HBM_BANDWIDTH_FRACTION of its bandwidth."""
    return nbytes / (acc.memory_bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION)


LOSS_BYTES_PER_LOGIT = 24
"""HBM bytes per logit of the loss with the fp32 upcast (transformers ForCausalLMLoss `logits.float()`): read the
16-bit logits and write fp32 (2 + 4), log-softmax forward reads them (4), backward reads and writes the fp32
gradient (4 + 4), and the cast back to 16 bits reads 4 and writes 2 B."""
CHUNKED_LOSS_BYTES_PER_LOGIT = 4
"""A fused / chunked cross-entropy (Liger kernel) reads the 16-bit logits once and writes their gradient in place."""


def elementwise_elements(
    model: ModelSpec, block: Block, *, tp: int, sequence_parallel: bool
) -> tuple[float, float]:
    """(forward, backward) elements moved through HBM per token by one decoder layer's memory-bound ops.

    Per token, h = hidden size, f = the width entering the MLP's output projections (top-k experts' widths for
    MoE), q = query + key width of RoPE (per tp rank):
    - each norm reads and writes h (backward reads x and dy, writes dx: 3h);
    - each residual add reads 2h and writes h (2 adds, 1 with parallel attention; backward: the gradient sum
      where the branch rejoins, 3h);
    - the activation: gated act(g)·u reads 2f writes f (backward 5f), plain act reads f writes f (backward 3f);
    - RoPE rotates q and k: reads and writes 2q (backward the same);
    - head layout copies around the attention kernel: q, k and v are made contiguous per head before it and
      the heads merged after it (transformers `transpose(1, 2)` + the kernel's contiguous-input requirement,
      `reshape` of the output): reads and writes the qkv width and the output width (backward the same).
    Norms and residual adds work on h / tp elements per GPU with sequence parallelism, on h without.
    Bias adds and ALiBi are fused into the GEMM epilogue and the attention kernel (no traffic of their own).
    """
    h = model.hidden_size / (tp if sequence_parallel else 1)
    norms = sum(
        1 for t in block.tensors if t.norm is not None and not t.is_bias and t.norm_scope is NormScope.HIDDEN
    )
    adds = 1 if model.parallel_attention else 2
    f = sum(lin.in_features * lin.active_copies for lin in block.linears if lin.role is Role.DOWN) / tp
    gated = model.mlp_kind is MlpKind.GATED
    q = (model.num_attention_heads + model.num_key_value_heads) * model.head_dim / tp
    rope = model.position is PositionKind.ROPE
    heads_out = model.num_attention_heads * model.head_dim / tp
    copies = 2 * (q + model.num_key_value_heads * model.head_dim / tp) + 2 * heads_out
    fwd = norms * 2 * h + adds * 3 * h + (3 if gated else 2) * f + (2 * q if rope else 0) + copies
    bwd = norms * 3 * h + adds * 3 * h + (5 if gated else 3) * f + (2 * q if rope else 0) + copies
    return fwd, bwd
