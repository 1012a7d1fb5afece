"""What an inference / serving job is: weight format, KV-cache dtype, context, concurrency, engine, layout.

Choices are enums with a docstring per member. Checks that need the model or the accelerator (context beyond
the maximum positions, tp not dividing the heads, fp8 on a GPU without fp8) live in
`llmplan.estimate.inference`; what can be checked alone is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from llmplan import limits
from llmplan.errors import SpecError
from llmplan.specs.training import AttentionImpl


class QuantFormat(str, Enum):
    """How the weights of the linear layers are stored (bytes per weight in `llmplan.formulas.quant`)."""

    FP32 = "fp32"
    """IEEE single precision, 4 bytes per weight."""
    FP16 = "fp16"
    """IEEE half precision, 2 bytes per weight."""
    BF16 = "bf16"
    """bfloat16, 2 bytes per weight (needs compute capability >= 8.0 on NVIDIA)."""
    FP8 = "fp8"
    """fp8 e4m3 weights with one fp32 scale per tensor (vLLM `Fp8LinearMethod`, W8A8); needs fp8 tensor cores."""
    FP8_CHANNEL = "fp8-channel"
    """fp8 e4m3 weights with one fp32 scale per output channel (compressed-tensors / FBGEMM fp8 checkpoints)."""
    INT8 = "int8"
    """LLM.int8 (Dettmers et al. 2022): int8 weights + one fp32 absmax scale per output row (bitsandbytes
    `Int8Params.SCB`); outlier input columns are multiplied in fp16 at run time (no stored bytes)."""
    GPTQ_INT4 = "gptq-int4"
    """GPTQ (Frantar et al. 2022), 4-bit packed in int32, fp16 scale + packed 4-bit zero per group, int32
    `g_idx` per input feature (AutoGPTQ / GPTQModel `QuantLinear` layout)."""
    AWQ_INT4 = "awq-int4"
    """AWQ (Lin et al. 2023), 4-bit packed in int32, fp16 scale + packed 4-bit zero per group, no g_idx
    (AutoAWQ `WQLinear_GEMM` layout)."""
    NF4 = "nf4"
    """bitsandbytes 4-bit NormalFloat (Dettmers et al. 2023): blocks of 64, absmax per block, double
    quantization of the absmax constants (uint8 + one fp32 per 256 blocks)."""
    Q8_0 = "q8_0"
    """GGUF Q8_0: blocks of 32 int8 + one fp16 scale = 34 bytes / 32 weights = 8.5 bits per weight."""
    Q6_K = "q6_k"
    """GGUF Q6_K: super-blocks of 256, 210 bytes = 6.5625 bits per weight."""
    Q5_K_M = "q5_k_m"
    """GGUF Q5_K_M: Q5_K (5.5 bpw) with attn_v / ffn_down of some layers and the output at Q6_K."""
    Q4_K_M = "q4_k_m"
    """GGUF Q4_K_M: Q4_K (4.5 bpw) with attn_v / ffn_down of some layers and the output at Q6_K."""
    Q4_0 = "q4_0"
    """GGUF Q4_0: blocks of 32 4-bit + one fp16 scale = 18 bytes / 32 = 4.5 bits per weight; output at Q6_K."""
    Q3_K_M = "q3_k_m"
    """GGUF Q3_K_M: Q3_K (3.4375 bpw) with attn_v, ffn_down and attn_output raised (see quant.py)."""
    Q2_K = "q2_k"
    """GGUF Q2_K: Q2_K (2.625 bpw) with attn_v, ffn_down and attn_output at Q3_K (see quant.py)."""

    @property
    def is_gguf(self) -> bool:
        return self.value.startswith("q")

    @property
    def is_float(self) -> bool:
        """Unquantized floating-point weights (the format is also the compute dtype)."""
        return self in (QuantFormat.FP32, QuantFormat.FP16, QuantFormat.BF16)


class KvDtype(str, Enum):
    """Element type of the KV cache."""

    AUTO = "auto"
    """The model's compute dtype (fp16 / bf16, fp32 for fp32 weights) — vLLM's and transformers' default."""
    FP32 = "fp32"
    """4 bytes per element."""
    FP16 = "fp16"
    """2 bytes per element."""
    BF16 = "bf16"
    """2 bytes per element."""
    FP8 = "fp8"
    """1 byte per element (vLLM `--kv-cache-dtype fp8`, e4m3 with a per-layer scale)."""
    INT8 = "int8"
    """1 byte per element (transformers `QuantizedCache` / LMDeploy int8 KV; scales are negligible)."""


class Engine(str, Enum):
    """Who runs the model, which sets how the KV cache and the activation peak are allocated."""

    HF = "hf"
    """transformers `generate` with `DynamicCache`: one contiguous cache per layer, grown by `torch.cat`."""
    VLLM = "vllm"
    """vLLM: PagedAttention blocks pre-allocated from the memory left after profiling (Kwon et al. 2023)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VllmSettings:
    """vLLM engine arguments that decide its memory budget (names as in `vllm serve --help`)."""

    gpu_memory_utilization: float = 0.9
    """Fraction of the device's total memory vLLM may use (weights + activations + KV cache)."""
    block_size: int = 16
    """Tokens per KV-cache block (PagedAttention page)."""
    max_num_batched_tokens: int = 8192
    """Tokens one scheduler step may hold; the memory profile runs a dummy batch of this many tokens."""
    max_num_seqs: int = 256
    """Sequences scheduled at once (the sampler's logits are profiled for this many rows)."""
    enable_chunked_prefill: bool = True
    """Long prompts are split into chunks of at most `max_num_batched_tokens` (vLLM v1 default)."""
    cuda_graphs: bool = True
    """False = `--enforce-eager`: no CUDA graphs captured, no graph memory."""

    def __post_init__(self) -> None:
        limits.GPU_MEMORY_UTILIZATION.check("gpu_memory_utilization", self.gpu_memory_utilization)
        if self.block_size not in limits.VLLM_BLOCK_SIZES:
            allowed = ", ".join(str(b) for b in limits.VLLM_BLOCK_SIZES)
            raise SpecError(
                "block_size", f"{self.block_size!r} is not a vLLM block size (allowed: {allowed})"
            )
        _positive("max_num_batched_tokens", self.max_num_batched_tokens)
        _positive("max_num_seqs", self.max_num_seqs)


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceJob:
    """One serving configuration: `batch` sequences of `context_len` tokens each held in the KV cache."""

    quant: QuantFormat = QuantFormat.BF16
    compute_dtype: QuantFormat = QuantFormat.BF16
    """Activation / dequantized-weight dtype for the quantized formats (fp16 or bf16; fp32 with fp32 weights)."""
    kv_dtype: KvDtype = KvDtype.AUTO
    context_len: int = 4096
    """Tokens per sequence in the KV cache at the end of generation (prompt + generated)."""
    prompt_len: int | None = None
    """Prompt tokens (prefill); default: the whole context."""
    batch: int = 1
    """Sequences decoded together (concurrency)."""
    engine: Engine = Engine.HF
    attention: AttentionImpl = AttentionImpl.SDPA
    """Attention kernel of the HF engine: eager materialises the b·heads·s² scores and probabilities in prefill
    (transformers `eager_attention_forward`); sdpa / flash do not. vLLM always runs its own fused kernels."""
    group_size: int = 128
    """Group size of GPTQ / AWQ scales and zeros (-1 = one group per output channel)."""
    nf4_double_quant: bool = True
    vllm: VllmSettings = field(default_factory=VllmSettings)
    tp: int = 1
    """Tensor-parallel degree (Megatron split of heads and MLP columns)."""
    pp: int = 1
    """Pipeline stages (layers split evenly; HF `device_map` is pp without overlap)."""

    def __post_init__(self) -> None:
        _positive("context_len", self.context_len)
        _positive("batch", self.batch)
        _positive("tp", self.tp)
        _positive("pp", self.pp)
        if self.prompt_len is not None:
            _positive("prompt_len", self.prompt_len)
            if self.prompt_len > self.context_len:
                raise SpecError(
                    "prompt_len",
                    f"{self.prompt_len} exceeds context_len {self.context_len} (allowed: <= context)",
                )
        if self.group_size != -1:
            limits.GROUP_SIZE.check("group_size", self.group_size)
        if self.compute_dtype not in (QuantFormat.FP16, QuantFormat.BF16, QuantFormat.FP32):
            raise SpecError(
                "compute_dtype",
                f"{self.compute_dtype.value} is not a compute dtype (allowed: fp32, fp16, bf16)",
            )

    @property
    def prefill_tokens(self) -> int:
        return self.context_len if self.prompt_len is None else self.prompt_len

    @property
    def activation_dtype(self) -> QuantFormat:
        """The dtype activations (and the default KV cache) are kept in."""
        return self.quant if self.quant.is_float else self.compute_dtype


def _positive(name: str, value: int) -> None:
    """The field's bound from `llmplan.limits` (at least 1, at most a generous maximum)."""
    limits.check_field(name, value)
