"""What a training or fine-tuning job is (TrainingJob, PeftSpec) and how it is laid out (Layout).

Choices are enums with a docstring per member. Validation that needs the model (tp dividing the heads, LoRA
targets that exist) lives in `llmplan.estimate.validation`; what can be checked alone is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from llmplan import limits
from llmplan.errors import SpecError


class Method(str, Enum):
    """What is trained."""

    FULL = "full"
    """Every parameter."""
    LORA = "lora"
    """Low-rank adapters B·A on the target linears (Hu et al. 2021); base frozen."""
    QLORA = "qlora"
    """LoRA on a 4-bit NF4 base with double quantization (Dettmers et al. 2023)."""
    DORA = "dora"
    """LoRA plus a learned magnitude vector per output feature (Liu et al. 2024)."""
    ADALORA = "adalora"
    """SVD-form adapters P·Λ·Q with rank pruning (Zhang et al. 2023)."""
    IA3 = "ia3"
    """Learned scaling vectors on keys, values and the MLP's down-projection input (Liu et al. 2022)."""
    PREFIX = "prefix"
    """Prefix tuning: trainable key/value prefixes in every layer (Li & Liang 2021)."""
    PROMPT = "prompt"
    """Prompt tuning: trainable input embeddings only (Lester et al. 2021)."""
    PTUNING = "ptuning"
    """P-tuning v1: virtual tokens produced by a prompt encoder MLP (Liu et al. 2021)."""
    PTUNING_V2 = "ptuning-v2"
    """P-tuning v2: deep prompts in every layer (= prefix tuning without reparameterization in peft)."""
    ADAPTER_HOULSBY = "adapter-houlsby"
    """Bottleneck adapters after attention and after the MLP of every layer (Houlsby et al. 2019)."""
    ADAPTER_PFEIFFER = "adapter-pfeiffer"
    """One bottleneck adapter after the MLP of every layer (Pfeiffer et al. 2020)."""
    BITFIT = "bitfit"
    """Only the biases are trained (Ben Zaken et al. 2021)."""
    LAYERNORM = "layernorm"
    """Only the norm weights (and biases) are trained (peft's LN tuning, Zhao et al. 2023)."""
    FREEZE = "freeze"
    """Full fine-tuning of all but the first `freeze_layers` decoder layers (and the embeddings)."""


class Precision(str, Enum):
    """Weight and compute precision of training."""

    FP32 = "fp32"
    """Everything in fp32: 4 bytes per weight and gradient."""
    FP16_MIXED = "fp16-mixed"
    """fp32 master weights and optimizer, fp16 compute copies and gradients (Micikevicius et al. 2018)."""
    BF16_MIXED = "bf16-mixed"
    """As fp16-mixed with bf16 (the ZeRO paper's 16 bytes/param accounting; Megatron, DeepSpeed)."""
    BF16 = "bf16"
    """Pure bf16: weights, gradients and optimizer states in bf16, no master copy."""
    FP16 = "fp16"
    """Pure fp16 (seed 000's 'fp16 weights and gradients'); risky for training, kept for the worked examples."""
    AMP_BF16 = "amp-bf16"
    """torch.autocast over fp32 weights (HF Trainer `bf16=True`): fp32 weights, gradients and states; bf16
    activations; transient bf16 weight casts per layer."""
    FP8_MIXED = "fp8-mixed"
    """bf16-mixed with fp8 GEMMs (Transformer Engine): fp8 copies of weights and saved activations."""


class Optimizer(str, Enum):
    """Optimizer and where its state lives."""

    ADAMW = "adamw"
    """Adam with decoupled weight decay: two fp32 states (m, v) per trainable parameter."""
    ADAM8BIT = "adamw8bit"
    """bitsandbytes 8-bit AdamW: two uint8 states + one fp32 absmax per 2048-block (Dettmers et al. 2022)."""
    PAGED_ADAMW = "paged-adamw"
    """bitsandbytes paged AdamW (32-bit states in unified memory, evicted to CPU under pressure)."""
    PAGED_ADAMW_8BIT = "paged-adamw8bit"
    """bitsandbytes paged 8-bit AdamW (the QLoRA paper's optimizer)."""
    SGD = "sgd"
    """Plain SGD: no state."""
    SGD_MOMENTUM = "sgd-momentum"
    """SGD with momentum: one state per parameter."""
    ADAFACTOR = "adafactor"
    """Adafactor with factored second moments: row + column vectors per matrix, no first moment
    (Shazeer & Stern 2018)."""
    LION = "lion"
    """Lion: one momentum state (Chen et al. 2023)."""


class OptimizerImpl(str, Enum):
    """How PyTorch runs the optimizer step, which sets its temporaries."""

    FOREACH = "foreach"
    """Multi-tensor `_foreach_*` ops (the CUDA default): one full-size temporary per state update."""
    FUSED = "fused"
    """One fused kernel per parameter group: no full-size temporary."""
    FOR_LOOP = "for-loop"
    """One parameter at a time: temporaries of the largest single parameter."""
    IN_BACKWARD = "in-backward"
    """Step fused into backward (per-parameter hooks): each gradient is freed right after its update."""


class Recompute(str, Enum):
    """Activation recomputation (gradient checkpointing)."""

    NONE = "none"
    """Keep every activation for the backward pass."""
    SELECTIVE = "selective"
    """Recompute the attention core (scores, softmax, dropout) only (Korthikanti et al. 2022, section 4.2)."""
    FULL = "full"
    """Keep only each layer's input; rerun the layer's forward in backward (Chen et al. 2016)."""


class AttentionImpl(str, Enum):
    """Attention kernel, which decides whether the s x s scores are stored."""

    EAGER = "eager"
    """Explicit softmax(QK^T)V: the scores and probabilities (b·heads·s² each) are materialised and saved."""
    SDPA = "sdpa"
    """torch.nn.functional.scaled_dot_product_attention (memory-efficient / flash backends): no s² tensor."""
    FLASH = "flash"
    """flash-attn 2 kernels (Dao 2023): no s² tensor; saves the output and a logsumexp per row."""
    TRITON = "triton"
    """The Triton FlashAttention kernel (flash_attn_triton.py; llm-foundry / MPT `attn_impl: triton`): the same
    saved tensors as flash-attn, about half of FlashAttention-2's speed (Dao 2023, figure 4)."""


class ZeroStage(int, Enum):
    """DeepSpeed ZeRO stage (Rajbhandari et al. 2020, section 5)."""

    NONE = 0
    """Plain data parallel: every rank holds everything."""
    OPTIMIZER = 1
    """Optimizer states (and fp32 master weights) sharded over the data-parallel group."""
    GRADIENTS = 2
    """Also gradients sharded (reduce-scatter)."""
    PARAMETERS = 3
    """Also parameters sharded; gathered layer by layer for forward and backward."""


class FsdpStrategy(str, Enum):
    """PyTorch FSDP sharding strategies, and their ZeRO equivalent."""

    FULL_SHARD = "full-shard"
    """Parameters, gradients and optimizer states sharded (ZeRO-3)."""
    SHARD_GRAD_OP = "shard-grad-op"
    """Gradients and optimizer states sharded, parameters kept after forward (ZeRO-2)."""
    HYBRID_SHARD = "hybrid-shard"
    """Full shard within a node, replicated across nodes."""
    NO_SHARD = "no-shard"
    """DDP-equivalent."""


class OffloadTarget(str, Enum):
    """Where offloaded state lives."""

    NONE = "none"
    CPU = "cpu"
    """Host RAM (ZeRO-Offload, Ren et al. 2021)."""
    NVME = "nvme"
    """NVMe through host buffers (ZeRO-Infinity, Rajbhandari et al. 2021)."""


class AdapterDtype(str, Enum):
    """Dtype of adapter weights, their gradients and optimizer states (`--adapter-dtype`; stacks differ, the
    default of each is in `llmplan.stacks`)."""

    FP32 = "fp32"
    """peft's `autocast_adapter_dtype=True`: adapters upcast to fp32 whatever the base dtype."""
    BF16 = "bf16"
    """Adapters in bf16 (peft `autocast_adapter_dtype=False` on a bf16 base; torchtune's bf16 recipes)."""
    FP16 = "fp16"
    """Adapters in fp16 (peft `autocast_adapter_dtype=False` on an fp16 base)."""

    @property
    def bytes(self) -> int:
        return 4 if self is AdapterDtype.FP32 else 2


class Stack(str, Enum):
    """The training software that runs the step. Each stack's defaults (autocast, loss dtype, bucket sizes,
    prefetch, NCCL buffers, allocator settings) are data in `llmplan.stacks`; the estimate prints them."""

    PYTORCH = "pytorch"
    """A plain PyTorch loop: `model.to(dtype)` without autocast, torch DDP or FSDP2 `fully_shard`."""
    HF_TRAINER = "hf-trainer"
    """transformers `Trainer` over accelerate (`bf16=True` autocasts); DeepSpeed ZeRO through its integration
    with the "auto" config values; FSDP through accelerate. The default."""
    DEEPSPEED = "deepspeed"
    """`deepspeed.initialize` on a plain model with DeepSpeed's own config defaults (no "auto" values)."""
    FSDP_ACCELERATE = "fsdp-accelerate"
    """accelerate's FSDP plugin (`accelerate launch --use_fsdp`, `mixed_precision: bf16`)."""
    TORCHTUNE = "torchtune"
    """torchtune recipes: pure-dtype training (no autocast), FSDP2, its own fp32 cross-entropy."""
    TORCHTITAN = "torchtitan"
    """torchtitan: FSDP2 with a bf16 MixedPrecisionPolicy, its own fp32 cross-entropy."""
    MEGATRON = "megatron"
    """Megatron-LM / Megatron-Core: its DDP with a contiguous gradient buffer, the distributed optimizer
    (ZeRO-1) and a vocab-parallel fp32 cross-entropy."""
    LLAMA_FACTORY = "llama-factory"
    """LLaMA-Factory: the transformers Trainer underneath (its DeepSpeed configs use "auto" values)."""
    AXOLOTL = "axolotl"
    """axolotl: the transformers Trainer underneath (its DeepSpeed configs use "auto" values)."""
    UNSLOTH = "unsloth"
    """unsloth: the transformers Trainer (TRL) underneath with patched kernels; sets expandable segments."""


class PipelineSchedule(str, Enum):
    """Pipeline-parallel schedule (Narayanan et al. 2021)."""

    GPIPE = "gpipe"
    """All forwards then all backwards: every micro-batch's activations in flight on every stage."""
    ONE_F_ONE_B = "1f1b"
    """One forward one backward: stage i keeps at most pp - i micro-batches in flight."""
    INTERLEAVED = "interleaved"
    """1F1B with virtual stages: (1 + (pp-1)/(pp·v)) times stage-0's 1F1B activations."""
    ZERO_BUBBLE = "zero-bubble"
    """ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism"): backward split into input-gradient (B) and
    weight-gradient (W) passes, W scheduled into the bubble; 1F1B's activation memory."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PeftSpec:
    """Settings of the PEFT methods; each field is read only by the methods it names."""

    lora_rank: int = 8
    """r of LoRA / QLoRA / DoRA; the initial rank of AdaLoRA."""
    lora_alpha: float = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    """Leaf names of the linears to adapt, or ("all-linear",) for every linear but the head (peft's rule)."""
    lora_dropout: float = 0.0
    """Dropout on the adapter input; > 0 saves a mask and a dropped copy of the input."""
    adapter_dtype: AdapterDtype | None = None
    """Adapter weights, gradients and states; None: the stack's default (`llmplan.stacks`), which the
    estimate fills in."""
    num_virtual_tokens: int = 20
    """Prefix / prompt / p-tuning length."""
    encoder_hidden_size: int | None = None
    """P-tuning prompt-encoder MLP width (peft default: the model's hidden size)."""
    prefix_projection: bool = False
    """Prefix tuning with the reparameterization MLP (peft `prefix_projection`)."""
    adapter_size: int = 64
    """Bottleneck width of Houlsby / Pfeiffer adapters."""
    freeze_layers: int = 0
    """Method FREEZE: the number of leading decoder layers kept frozen."""
    quant_double: bool = True
    """QLoRA double quantization of the absmax constants (Dettmers et al. 2023, section 3)."""
    quant_block_size: int = 64
    """QLoRA NF4 block size (bitsandbytes default 64)."""

    @property
    def adapter_bytes(self) -> int:
        """Bytes per adapter weight, gradient and state element (fp32 when the stack has not filled it in)."""
        return (self.adapter_dtype or AdapterDtype.FP32).bytes

    def __post_init__(self) -> None:
        _positive("lora_rank", self.lora_rank)
        _positive("num_virtual_tokens", self.num_virtual_tokens)
        _positive("adapter_size", self.adapter_size)
        limits.check_field("freeze_layers", self.freeze_layers)
        limits.check_field("lora_alpha", self.lora_alpha)
        limits.LORA_DROPOUT.check("lora_dropout", self.lora_dropout)
        if self.quant_block_size not in limits.QUANT_BLOCK_SIZES:
            allowed = ", ".join(str(b) for b in limits.QUANT_BLOCK_SIZES)
            raise SpecError(
                "quant_block_size",
                f"{self.quant_block_size!r} is not a bitsandbytes block size (allowed: {allowed})",
            )
        if not self.lora_targets:
            raise SpecError("lora_targets", "is empty (allowed: module names such as q_proj, or all-linear)")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingJob:
    """One training or fine-tuning step's settings."""

    method: Method = Method.FULL
    precision: Precision = Precision.BF16_MIXED
    optimizer: Optimizer = Optimizer.ADAMW
    optimizer_impl: OptimizerImpl = OptimizerImpl.FOREACH
    micro_batch_size: int = 1
    """Sequences per GPU per forward/backward."""
    seq_len: int = 2048
    grad_accum_steps: int = 1
    recompute: Recompute = Recompute.NONE
    attention: AttentionImpl = AttentionImpl.SDPA
    packing: bool = False
    """Sample packing into fixed-length rows (no padding; the activation peak is that of seq_len)."""
    chunked_ce: bool = False
    """Cross-entropy computed in chunks so that full fp32 logits are never materialised (e.g. Liger kernel)."""
    activation_offload: bool = False
    """Saved activations copied to host memory during forward (torchtune / Megatron CPU offload)."""
    peft: PeftSpec = field(default_factory=PeftSpec)

    def __post_init__(self) -> None:
        _positive("micro_batch_size", self.micro_batch_size)
        _positive("seq_len", self.seq_len)
        _positive("grad_accum_steps", self.grad_accum_steps)

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.micro_batch_size * self.seq_len


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """Parallel degrees and sharding. dp·tp·pp·cp must equal the number of GPUs; ep divides dp·cp·tp."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    sequence_parallel: bool = False
    """Megatron sequence parallelism: norms and dropout activations split over tp (Korthikanti et al. 2022)."""
    zero: ZeroStage = ZeroStage.NONE
    fsdp: FsdpStrategy | None = None
    """When set, FSDP replaces ZeRO (`zero` must stay 0)."""
    offload_optimizer: OffloadTarget = OffloadTarget.NONE
    offload_params: OffloadTarget = OffloadTarget.NONE
    pp_schedule: PipelineSchedule = PipelineSchedule.ONE_F_ONE_B
    pp_virtual_stages: int = 1
    stack: Stack = Stack.HF_TRAINER
    """The training software; its defaults (`llmplan.stacks`) enter the estimate and are printed with it."""

    def __post_init__(self) -> None:
        for name in ("dp", "tp", "pp", "cp", "ep", "pp_virtual_stages"):
            _positive(name, getattr(self, name))
        if self.fsdp is not None and self.zero is not ZeroStage.NONE:
            raise SpecError(
                "zero",
                f"{int(self.zero)} cannot be combined with fsdp {self.fsdp.value} (allowed: ZeRO or FSDP, not both)",
            )
        if self.offload_params is not OffloadTarget.NONE and self.sharding_stage < 3:
            raise SpecError(
                "offload_params",
                "parameter offload needs parameters sharded (allowed with --zero 3 or --fsdp full-shard)",
            )
        if self.sequence_parallel and self.tp == 1:
            raise SpecError(
                "sequence_parallel",
                "True needs tp > 1, it splits activations over the tp group (allowed: with tp 2 or more)",
            )

    @property
    def num_gpus(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    @property
    def sharding_stage(self) -> int:
        """The ZeRO stage, with FSDP strategies mapped to theirs (full-shard and hybrid-shard 3, grad-op 2)."""
        if self.fsdp is None:
            return int(self.zero)
        return {
            FsdpStrategy.FULL_SHARD: 3,
            FsdpStrategy.HYBRID_SHARD: 3,
            FsdpStrategy.SHARD_GRAD_OP: 2,
            FsdpStrategy.NO_SHARD: 0,
        }[self.fsdp]


def _positive(name: str, value: int) -> None:
    """The field's bound from `llmplan.limits` (at least 1, at most a generous maximum)."""
    limits.check_field(name, value)
