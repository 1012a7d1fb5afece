"""Bytes of a model's weights in every storage format, exact to the tensor, per tensor-parallel rank.

The sum runs over ModelSpec's inventory. Each linear weight of a decoder block is stored in the chosen format
with its metadata (scales, zero points, group indices) counted separately; the tensors that every engine keeps
in high precision stay in the compute dtype (or fp32 in GGUF):

- embeddings: never quantized by bitsandbytes / GPTQ / AWQ / fp8 (not nn.Linear); GGUF quantizes
  `token_embd` at the base type;
- lm_head: kept in the compute dtype by bitsandbytes (`llm_int8_skip_modules` defaults to the output layer,
  transformers `get_keys_to_not_convert`), AutoGPTQ / AutoAWQ (`lm_head` is not in the quantized modules) and
  vLLM fp8 (`ParallelLMHead` is unquantized); GGUF stores `output.weight` as Q6_K unless the base type is Q8_0;
- norms and biases: compute dtype (GGUF: F32);
- the MoE router: compute dtype (GPTQ / AWQ / vLLM skip `gate`; llama.cpp never quantizes `ffn_gate_inp`).

Per-format layouts (bytes for a weight of `out x in`, `n = in·out`):

fp32 4n; fp16 / bf16 2n;
fp8 per tensor: n + 4 (fp32 `weight_scale`) + 4 (fp32 `input_scale`), vLLM `Fp8LinearMethod`;
fp8 per channel: n + 4·out;
LLM.int8: n (int8 `CB`) + 4·out (fp32 `SCB`, absmax per row), bitsandbytes `Int8Params`;
GPTQ int4, group g (g = -1 → one group): qweight in·out/2 (int32 packing 8 per word), qzeros
  ceil(in/g)·out/2, scales 2·ceil(in/g)·out (fp16), g_idx 4·in (int32), AutoGPTQ `QuantLinear`;
AWQ int4: as GPTQ without g_idx (AutoAWQ `WQLinear_GEMM`);
NF4 (bitsandbytes `Params4bit`, block 64): ceil(n/2) packed + absmax: without double quant 4·ceil(n/64);
  with double quant ceil(n/64) (uint8) + 4·ceil(ceil(n/64)/256) (fp32 absmax of the absmax) + 4 (offset)
  + 256·4 (the nested 8-bit dynamic code) + 16·4 (the NF4 code) per tensor (QLoRA, Dettmers et al. 2023, 3);
GGUF: ceil(n / block) · block_bytes from ggml's block structs (ggml/src/ggml-common.h):
  Q4_0 18 B / 32, Q8_0 34 B / 32, Q2_K 84 B / 256, Q3_K 110 B / 256, Q4_K 144 B / 256, Q5_K 176 B / 256,
  Q6_K 210 B / 256 → 4.5, 8.5, 2.625, 3.4375, 4.5, 5.5, 6.5625 bits per weight.

GGUF mixes (the `_M` types), our reading of llama.cpp `llama_tensor_get_type` (src/llama-quant.cpp) with
use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2:
  Q5_K_M / Q4_K_M: attn_v and ffn_down at Q6_K where use_more_bits, else the base (Q5_K / Q4_K);
  Q3_K_M: attn_v Q5_K for layers 0-1 else Q4_K; ffn_down Q5_K for i < n/16 else Q4_K; attn_output Q4_K;
  Q2_K: attn_v Q4_K when n_head / n_kv_head >= 4 else Q3_K; ffn_down and attn_output Q3_K; embeddings Q2_K;
  all: output.weight Q6_K (Q8_0 stays Q8_0). The fallback types llama.cpp picks for rows not divisible by 256
  are not modelled (they change a few tensors of unusual widths by < 1 bpw).

Tensor parallel: column-split linears keep ceil(out/tp) rows, row-split ceil(in/tp) columns, replicated ones
stay whole; k/v projections hold max(1, kv_heads/tp) heads (vLLM `QKVParallelLinear` replicates kv heads
when tp > kv_heads); embeddings and lm_head split the vocabulary (vLLM `VocabParallelEmbedding`).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.specs.inference import QuantFormat
from llmplan.specs.model import Block, Group, Linear, ModelSpec, Role

FLOAT_BYTES = {QuantFormat.FP32: 4, QuantFormat.FP16: 2, QuantFormat.BF16: 2}

GGUF_BLOCKS: dict[str, tuple[int, int]] = {
    "q4_0": (32, 18),
    "q8_0": (32, 34),
    "q2_k": (256, 84),
    "q3_k": (256, 110),
    "q4_k": (256, 144),
    "q5_k": (256, 176),
    "q6_k": (256, 210),
}
"""GGUF type -> (weights per block, bytes per block), from ggml's `block_q*` structs."""

NF4_BLOCK = 64
"""bitsandbytes 4-bit block size (QLoRA default)."""
NF4_DQ_BLOCK = 256
"""Blocks of absmax constants sharing one fp32 constant under double quantization."""


@dataclass(frozen=True, slots=True)
class WeightBytes:
    """Weight bytes on one rank, split into the quantized payload, its metadata and high-precision tensors."""

    quantized_bytes: int
    """Packed low-precision weights of the quantized linears (or the whole linears for float formats)."""
    scales_bytes: int
    """Scales, absmax constants, codes, zero points and group indices of the quantized linears."""
    high_precision_bytes: int
    """Embeddings, lm_head, norms, biases and routers kept in the compute dtype (GGUF: see module doc)."""

    @property
    def total(self) -> int:
        return self.quantized_bytes + self.scales_bytes + self.high_precision_bytes


def gguf_bits_per_weight(gguf_type: str) -> float:
    """Bits per weight of a GGUF block type: 8 · block_bytes / block_weights (ggml-common.h)."""
    weights, size = GGUF_BLOCKS[gguf_type]
    return 8 * size / weights


def linear_weight_bytes(
    fmt: QuantFormat,
    in_f: int,
    out_f: int,
    *,
    group_size: int = 128,
    double_quant: bool = True,
    gguf_type: str | None = None,
) -> tuple[int, int]:
    """(payload, metadata) bytes of one `out_f x in_f` weight in `fmt` (layouts in the module docstring)."""
    n = in_f * out_f
    if fmt.is_float:
        return FLOAT_BYTES[fmt] * n, 0
    if fmt is QuantFormat.FP8:
        return n, 8
    if fmt is QuantFormat.FP8_CHANNEL:
        return n, 4 * out_f
    if fmt is QuantFormat.INT8:
        return n, 4 * out_f
    if fmt in (QuantFormat.GPTQ_INT4, QuantFormat.AWQ_INT4):
        groups = 1 if group_size == -1 else -(-in_f // group_size)
        meta = -(-groups * out_f // 2) + 2 * groups * out_f
        if fmt is QuantFormat.GPTQ_INT4:
            meta += 4 * in_f
        return -(-n // 2), meta
    if fmt is QuantFormat.NF4:
        blocks = -(-n // NF4_BLOCK)
        if double_quant:
            meta = blocks + 4 * -(-blocks // NF4_DQ_BLOCK) + 4 + 256 * 4 + 16 * 4
        else:
            meta = 4 * blocks + 16 * 4
        return -(-n // 2), meta
    weights, size = GGUF_BLOCKS[gguf_type or _gguf_base(fmt)]
    return -(-n // weights) * size, 0


def _gguf_base(fmt: QuantFormat) -> str:
    return {"q5_k_m": "q5_k", "q4_k_m": "q4_k", "q3_k_m": "q3_k"}.get(fmt.value, fmt.value)


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def gguf_role(linear: Linear) -> str:
    """The llama.cpp tensor category of a decoder linear that the mixes treat apart: attn_v, ffn_down,
    attn_output, or "other"."""
    if linear.role is Role.V:
        return "attn_v"
    if linear.role is Role.DOWN and linear.group in (Group.MLP, Group.ROUTED_EXPERTS, Group.SHARED_EXPERTS):
        return "ffn_down"
    if linear.role is Role.OUT:
        return "attn_output"
    return "other"


def gguf_tensor_type(fmt: QuantFormat, role: str, layer: int, model: ModelSpec) -> str:
    """GGUF type llama.cpp gives a linear of `role` (`gguf_role`) in decoder layer `layer` (module doc)."""
    base = _gguf_base(fmt)
    if role == "other":
        return base
    n = model.num_hidden_layers
    if fmt in (QuantFormat.Q4_K_M, QuantFormat.Q5_K_M) and role in ("attn_v", "ffn_down"):
        return "q6_k" if _use_more_bits(layer, n) else base
    if fmt is QuantFormat.Q3_K_M:
        if role == "attn_v":
            return "q5_k" if layer < 2 else "q4_k"
        if role == "ffn_down":
            return "q5_k" if layer < n // 16 else "q4_k"
        return "q4_k"
    if fmt is QuantFormat.Q2_K:
        if role == "attn_v":
            return "q4_k" if model.num_attention_heads >= 4 * model.num_key_value_heads else "q3_k"
        return "q3_k"
    return base


def _block_bytes(
    block: Block,
    index: int,
    model: ModelSpec,
    fmt: QuantFormat,
    tp: int,
    hp: int,
    small: int,
    group_size: int,
    double_quant: bool,
    memo: dict,
    roles: dict,
) -> tuple[int, int, int]:
    """(payload, metadata, high-precision) bytes of one decoder layer on one tp rank."""
    payload = meta = 0
    high = sum(small * tensor.numel for tensor in block.tensors)
    for linear in block.linears:
        in_f, out_f = shard_linear(linear, model, tp)
        copies = linear.copies
        if linear.bias:
            high += small * out_f * copies
        if linear.group is Group.ROUTER:
            high += hp * in_f * out_f * copies
            continue
        gguf_type = None
        if fmt.is_gguf:
            role = roles.get(linear.name)
            if role is None:
                role = roles[linear.name] = gguf_role(linear)
            gguf_type = gguf_tensor_type(fmt, role, index, model)
        key = (in_f, out_f, copies, gguf_type)
        found = memo.get(key)
        if found is None:
            p, m = linear_weight_bytes(
                fmt, in_f, out_f, group_size=group_size, double_quant=double_quant, gguf_type=gguf_type
            )
            found = memo[key] = (p * copies, m * copies)
        payload += found[0]
        meta += found[1]
    return payload, meta, high


def weight_bytes(
    model: ModelSpec,
    fmt: QuantFormat,
    *,
    compute_dtype: QuantFormat = QuantFormat.BF16,
    tp: int = 1,
    group_size: int = 128,
    double_quant: bool = True,
) -> WeightBytes:
    """Bytes of all weights held by one tensor-parallel rank in format `fmt` (see the module docstring).

    `compute_dtype` (fp16 / bf16 / fp32) is the dtype of the high-precision tensors; for the float formats the
    format itself is used.
    """
    gguf = fmt.is_gguf
    hp = FLOAT_BYTES[fmt] if fmt.is_float else FLOAT_BYTES[compute_dtype]
    small = 4 if gguf else hp  # norms and biases: F32 in GGUF, the compute dtype elsewhere
    payload = meta = high = 0
    memo: dict[tuple[int, int, int, str | None], tuple[int, int]] = {}
    roles: dict[str, str] = {}
    n_layers = model.num_hidden_layers
    seen: dict[object, list[tuple[Block, tuple[int, int, int]]]] = {}
    for index, block in enumerate(model.layers):
        # Decoder layers repeat: a layer equal to an earlier one (and, for GGUF, in the same mix class) costs
        # what that one cost.
        mix = (_use_more_bits(index, n_layers), index < 2, index < n_layers // 16) if gguf else None
        known = seen.setdefault(mix, [])
        cost = next((c for b, c in known if b is block or b == block), None)
        if cost is None:
            cost = _block_bytes(
                block, index, model, fmt, tp, hp, small, group_size, double_quant, memo, roles
            )
            known.append((block, cost))
        payload += cost[0]
        meta += cost[1]
        high += cost[2]
    for linear in model.final_linears:
        high += hp * linear.numel
    for tensor in model.final:
        high += small * tensor.numel
    vocab_rows = -(-model.vocab_size // tp)
    for tensor in model.embedding:
        if tensor.group is Group.EMBEDDING and not tensor.is_bias:
            cols = tensor.numel // model.vocab_size
            if gguf:
                embd_type = "q2_k" if fmt is QuantFormat.Q2_K else _gguf_base(fmt)
                payload += linear_weight_bytes(fmt, cols, vocab_rows, gguf_type=embd_type)[0]
            else:
                high += hp * vocab_rows * cols
        else:
            high += small * tensor.numel
    if not model.tie_word_embeddings:
        head = model.lm_head
        if gguf:
            head_type = "q8_0" if fmt is QuantFormat.Q8_0 else "q6_k"
            payload += linear_weight_bytes(fmt, head.in_features, vocab_rows, gguf_type=head_type)[0]
        else:
            high += hp * head.in_features * vocab_rows
        high += small * (vocab_rows if head.bias else 0)
    return WeightBytes(quantized_bytes=payload, scales_bytes=meta, high_precision_bytes=high)
