"""ModelSpec: the exact shape of a decoder-only transformer, parsed from its HF `config.json` as data.

A model is described twice, at two levels, from one parse:
- hyper-parameters that formulas need (hidden size, heads, kv heads, head dim, layers, vocabulary, MoE and MLA
  sizes, sliding windows);
- an inventory of every parameter tensor: the linear layers of each decoder block (with their transformers
  module names, so that LoRA targets and tensor-parallel splits are read off the same list), norms, embeddings
  and the head. Parameter counts, adapter sizes, FLOPs per token and TP shards all derive from this one list.

Naming follows the HF config (`hidden_size`, `num_attention_heads`, ...) so a reader can check each field
against the published file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Group(str, Enum):
    """Which component a parameter tensor belongs to (the rows of a parameter breakdown)."""

    EMBEDDING = "embedding"
    """Token embedding table (vocab x hidden)."""
    POSITION = "position"
    """Learned absolute position embeddings (GPT-2, OPT); RoPE and ALiBi have none."""
    ATTENTION = "attention"
    """Query / key / value / output projections, including MLA's low-rank projections and q/k norms."""
    MLP = "mlp"
    """The dense feed-forward network of a layer."""
    ROUTED_EXPERTS = "routed_experts"
    """MoE experts chosen per token by the router."""
    SHARED_EXPERTS = "shared_experts"
    """MoE experts every token passes through (DeepSeek, Qwen2-MoE), with their gate."""
    ROUTER = "router"
    """The MoE router (gate) weights and its correction bias."""
    NORM = "norm"
    """LayerNorm / RMSNorm weights and biases (not q/k norms, which are attention)."""
    LM_HEAD = "lm_head"
    """The output projection to the vocabulary (zero parameters when tied to the embedding)."""


class TpSplit(str, Enum):
    """How Megatron-style tensor parallelism splits a linear layer (Shoeybi et al. 2019, section 3)."""

    COLUMN = "column"
    """Output features split across tp ranks (q/k/v, gate/up, fc1, lm_head)."""
    ROW = "row"
    """Input features split across tp ranks (o_proj, down_proj, fc2); the bias is not split."""
    REPLICATED = "replicated"
    """Not split: every rank holds the whole tensor (router, MLA down-projections, norms)."""


class MlpKind(str, Enum):
    """Feed-forward variant."""

    GATED = "gated"
    """act(x W_gate) * (x W_up) then W_down: SwiGLU (Llama), GeGLU (Gemma). Three matrices."""
    PLAIN = "plain"
    """act(x W_1) W_2: GPT-2, OPT, Bloom, Falcon, GPT-NeoX. Two matrices."""


class NormKind(str, Enum):
    """Normalisation layer, as the modelling code computes it (which sets what it saves for backward)."""

    RMS = "rmsnorm"
    """RMSNorm: weight only (Zhang & Sennrich 2019); Llama style: the input is upcast to fp32, normalised, cast
    back to the input dtype and multiplied by the weight (transformers models/llama `LlamaRMSNorm`)."""
    RMS_GEMMA = "rmsnorm_gemma"
    """RMSNorm computed entirely in fp32 and scaled by (1 + weight), cast back at the end (transformers
    models/gemma*/modeling_gemma*.py `GemmaRMSNorm`)."""
    LAYER = "layernorm"
    """LayerNorm: weight and, unless stated, bias."""


class NormScope(str, Enum):
    """What one norm normalises, which sets how many rows of its width it sees per token."""

    HIDDEN = "hidden"
    """The hidden state (input, post-attention, final norms): one row of `hidden_size` per token."""
    Q_HEADS = "q_heads"
    """Per query head (Qwen3, Gemma 3 `q_norm`): `num_attention_heads` rows of head_dim per token."""
    K_HEADS = "k_heads"
    """Per key head (`k_norm`): `num_key_value_heads` rows of head_dim per token."""
    LATENT = "latent"
    """An MLA low-rank latent (DeepSeek `q_a_layernorm`, `kv_a_layernorm`): one row per token."""


class Role(str, Enum):
    """What a linear layer computes inside its sub-module. With `Group` (dense MLP, shared or routed experts)
    it is every fact the formulas need about a linear: its TP split, which input it shares, which llama.cpp
    tensor category it is, how peft treats it. Plain two-matrix MLPs call fc1 UP and fc2 DOWN."""

    Q = "q"
    """Query projection, hidden -> heads·head_dim (column-parallel)."""
    K = "k"
    """Key projection, hidden -> kv_heads·head_dim; under TP each rank holds max(1, kv_heads / tp) heads
    (Megatron and vLLM replicate a kv head when tp exceeds the kv heads)."""
    V = "v"
    """Value projection: as K."""
    QKV = "qkv"
    """Fused q|k|v projection of (heads + 2·kv_heads)·head_dim; a tp rank holds heads / tp query heads and
    max(1, kv_heads / tp) key and value heads (vLLM `QKVParallelLinear`, Megatron `get_query_key_value`)."""
    OUT = "o"
    """Attention output projection, heads·head_dim -> hidden (row-parallel)."""
    Q_DOWN = "q_down"
    """MLA query down-projection hidden -> q_lora_rank (`q_a_proj`), replicated."""
    Q_UP = "q_up"
    """MLA query up-projection q_lora_rank -> heads·(qk_nope + qk_rope) (`q_b_proj`), column-parallel."""
    KV_DOWN = "kv_down"
    """MLA joint KV down-projection with the decoupled RoPE key (`kv_a_proj_with_mqa`), replicated."""
    KV_UP = "kv_up"
    """MLA KV up-projection kv_lora_rank -> heads·(qk_nope + v_head_dim) (`kv_b_proj`), column-parallel."""
    GATE = "gate"
    """Gate branch of a gated MLP (the activation's input), column-parallel."""
    UP = "up"
    """Up branch of a gated MLP, or fc1 of a plain MLP, column-parallel."""
    GATE_UP = "gate_up"
    """Fused gate|up projection of 2·intermediate (Phi-3, GLM, ChatGLM2, transformers v5 routed experts)."""
    DOWN = "down"
    """Down projection (fc2), intermediate -> hidden, row-parallel."""
    ROUTER = "router"
    """MoE router hidden -> experts, replicated."""
    SHARED_EXPERT_GATE = "shared_expert_gate"
    """Qwen2-MoE's scalar gate of the shared expert, hidden -> 1, replicated."""
    LM_HEAD = "lm_head"
    """Output projection to the vocabulary (vocabulary-parallel)."""
    PROJECT_OUT = "project_out"
    """A projection between the last block and the head (OPT-350m `project_out`), replicated."""


class ActivationImpl(str, Enum):
    """How the MLP's activation function is computed, which sets the intermediates it keeps
    (transformers/activations.py)."""

    KERNEL = "kernel"
    """One torch kernel (F.silu, F.gelu, relu, ...): saves only its input."""
    NEW_GELU = "gelu_new"
    """`NewGELUActivation`, the tanh approximation written out in Python (GPT-2): saves tanh(.), 0.5·x and
    1 + tanh(.) besides its input."""
    FAST_GELU = "gelu_fast"
    """`FastGELUActivation`, another Python tanh composition (GPT-NeoX-20B): the same three intermediates."""
    QUICK_GELU = "quick_gelu"
    """`QuickGELUActivation`, x · sigmoid(1.702·x): saves the sigmoid."""


class PositionKind(str, Enum):
    """How positions enter the model."""

    ROPE = "rope"
    """Rotary embeddings (Su et al. 2021): no parameters."""
    LEARNED = "learned"
    """A learned absolute position table."""
    ALIBI = "alibi"
    """ALiBi attention biases (Press et al. 2021): no parameters (Bloom)."""


class AttentionKind(str, Enum):
    """Which tokens a layer's attention sees, which sets the size of its KV cache."""

    FULL = "full"
    """Causal attention over the whole context."""
    SLIDING = "sliding"
    """Causal attention over the last `sliding_window` tokens (Mistral v0.1, Gemma 2/3 local layers)."""


@dataclass(frozen=True, slots=True)
class Linear:
    """A linear layer: y = x W^T + b, W of shape (out_features, in_features).

    For routed experts, `copies` is the number of experts stored and `active_copies` the number a token passes
    through (top-k); transformers stores them fused as 3-D tensors, the count is the same.
    """

    name: str
    """Module path inside its block, as transformers names it ("self_attn.q_proj"); its last part is what a
    LoRA `target_modules` entry matches."""
    in_features: int
    out_features: int
    bias: bool
    group: Group
    tp: TpSplit
    """How tensor parallelism splits it; with `role` K, V or QKV the column split keeps whole kv heads
    (`formulas.parallel.tensor.shard_linear`)."""
    role: Role
    copies: int = 1
    active_copies: int = 1

    @property
    def weight_numel(self) -> int:
        return self.in_features * self.out_features * self.copies

    @property
    def bias_numel(self) -> int:
        return self.out_features * self.copies if self.bias else 0

    @property
    def numel(self) -> int:
        return self.weight_numel + self.bias_numel

    @property
    def active_numel(self) -> int:
        """Parameters one token passes through (the whole layer unless these are routed experts)."""
        return (self.in_features * self.out_features + (self.out_features if self.bias else 0)) * (
            self.active_copies
        )

    @property
    def leaf_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class Tensor:
    """A parameter tensor that is not a linear layer's weight: a norm, an embedding table, a learned scalar."""

    name: str
    numel: int
    group: Group
    is_bias: bool = False
    norm: NormKind | None = None
    """The norm this tensor is the weight (or bias) of; None for embeddings and other tensors."""
    norm_scope: NormScope = NormScope.HIDDEN
    """What that norm normalises (hidden state, per-head q / k, an MLA latent)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One decoder layer: its linear layers and other parameter tensors, and what kind of layer it is.

    Two blocks that compare equal have identical parameters and activations, which is what lets the trace
    engine trace one block of each kind and compose the whole model.
    """

    linears: tuple[Linear, ...]
    tensors: tuple[Tensor, ...]
    attention: AttentionKind = AttentionKind.FULL
    moe: bool = False

    @property
    def numel(self) -> int:
        return sum(x.numel for x in self.linears) + sum(t.numel for t in self.tensors)


@dataclass(frozen=True, slots=True)
class MoeSpec:
    """Mixture-of-experts sizes (Fedus et al. 2021; DeepSeekMoE, Dai et al. 2024 for shared experts)."""

    num_experts: int
    """Routed experts per MoE layer."""
    experts_per_token: int
    """Top-k: routed experts each token passes through."""
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_intermediate_size: int = 0
    """Total intermediate size of the shared expert(s) of one layer."""
    router_fp32: bool = False
    """The router runs in fp32 (`F.linear(x.float(), weight.float())`, transformers models/deepseek_v*/)."""


@dataclass(frozen=True, slots=True)
class Dropout:
    """Dropout probabilities of the config (0 when absent): each p > 0 saves a one-byte mask per element."""

    attention: float = 0.0
    """On the attention probabilities (`attention_dropout`, GPT-2's `attn_pdrop`)."""
    residual: float = 0.0
    """After attention and after the MLP (GPT-2's `resid_pdrop`, Falcon / Bloom `hidden_dropout`)."""
    embedding: float = 0.0
    """After the embeddings (GPT-2's `embd_pdrop`)."""


class MoeLoraConversion(str, Enum):
    """Which of peft 0.21's v4-to-v5 MoE name conversions applies to LoRA targets
    (peft/utils/transformers_weight_conversion.py `_convert_peft_config_moe`)."""

    MIXTRAL = "mixtral"
    """w1 + w3 -> experts.gate_up_proj, w2 -> experts.down_proj, gate -> the router."""
    QWEN2_MOE = "qwen2_moe"
    """gate_proj + up_proj -> experts.gate_up_proj, down_proj -> experts.down_proj, gate -> the router."""


@dataclass(frozen=True, slots=True)
class PeftDefaults:
    """What peft 0.21 does by default for this model type (peft/utils/constants.py), set by the adapter so
    that formulas read facts instead of model-type tables."""

    ia3_targets: tuple[str, ...] | None = None
    """TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING; None when peft has no default for the type."""
    ia3_feedforward: tuple[str, ...] = ()
    """TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING: targets whose input features are scaled."""
    ln_tuning_targets: tuple[str, ...] | None = None
    """TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING; None: every norm."""
    prefix_kv_heads: bool = False
    """The config has `num_key_value_heads` (peft then sizes prefixes by kv heads, peft issue #1901)."""
    moe_lora_conversion: MoeLoraConversion | None = None


@dataclass(frozen=True, slots=True)
class MlaSpec:
    """Multi-head latent attention (DeepSeek-V2, Liu et al. 2024, section 2.1)."""

    kv_lora_rank: int
    """Width of the compressed KV latent c_KV, which is what a serving engine caches."""
    q_lora_rank: int | None
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    """Width of the decoupled RoPE key, shared by all heads and cached beside the latent."""
    v_head_dim: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    """The architecture of a decoder-only model, exact to the parameter."""

    name: str
    """Catalog id, hub id or file path it was read from."""
    model_type: str
    """The HF `model_type` that chose the adapter."""
    architecture: str
    """The HF class name (`architectures[0]` of the config), for the trace engine."""
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    """Dense MLP width (of the dense layers, for MoE models that have some)."""
    mlp_kind: MlpKind
    hidden_act: str
    norm_kind: NormKind
    position: PositionKind
    max_position_embeddings: int
    rope_theta: float | None = None
    rope_scaling: dict[str, object] | None = field(default=None, hash=False, compare=False)
    sliding_window: int | None = None
    tie_word_embeddings: bool
    parallel_attention: bool = False
    """Attention and MLP read the same input and are summed (GPT-J, GPT-NeoX, Falcon)."""
    native_transformers: bool = True
    """True when transformers implements this model_type without remote code (the trace engine needs it)."""
    torch_dtype: str = "bfloat16"
    """The dtype the published weights are stored in."""
    loss_fp32_upcast: bool = True
    """The model's own loss upcasts the logits to fp32 before the cross-entropy (transformers'
    `ForCausalLMLoss`, transformers/loss/loss_utils.py: `logits.float()`), so the saved log-softmax and the
    loss gradients are fp32. False where the modelling code calls `CrossEntropyLoss` on the model-dtype logits
    (Qwen v1's remote `modeling_qwen.py`): outside torch.autocast the loss then runs in the model dtype."""
    activation_impl: ActivationImpl = ActivationImpl.KERNEL
    """How `hidden_act` is computed (set by the adapters from the activation's name)."""
    softmax_fp32: bool = True
    """Eager attention upcasts the scores to fp32 for the softmax (False: GPT-2, Falcon keep the compute
    dtype, transformers models/gpt2/modeling_gpt2.py)."""
    attn_logit_softcap: float | None = None
    """Gemma 2's attention-logit softcapping (`attn_logit_softcapping`, default 50): tanh saves its output."""
    final_logit_softcap: float | None = None
    """Gemma 2's final-logit softcapping (`final_logit_softcapping`, default 30)."""
    dropout: Dropout = Dropout()
    peft_defaults: PeftDefaults = PeftDefaults()
    moe: MoeSpec | None = None
    mla: MlaSpec | None = None
    embedding: tuple[Tensor, ...]
    """Tensors before the first block: token embeddings, learned positions, embedding norms."""
    layers: tuple[Block, ...]
    final: tuple[Tensor, ...]
    """Tensors after the last block: the final norm (and projections such as OPT's project_out)."""
    final_linears: tuple[Linear, ...] = ()
    """Linear layers after the last block other than the head (OPT-350m's project_out)."""
    lm_head: Linear
    """The head; when `tie_word_embeddings` it shares the embedding's weight and adds no parameters."""
    config: dict[str, object] = field(default_factory=dict, hash=False, compare=False, repr=False)
    """The config.json it was parsed from, as data."""

    @property
    def lm_head_numel(self) -> int:
        if self.tie_word_embeddings:
            return self.lm_head.bias_numel
        return self.lm_head.numel

    @property
    def block_kinds(self) -> tuple[Block, ...]:
        """The distinct decoder blocks, in order of first appearance."""
        seen: list[Block] = []
        for block in self.layers:
            if block not in seen:
                seen.append(block)
        return tuple(seen)

    @property
    def kv_heads_per_layer(self) -> int:
        return self.num_key_value_heads

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def linear_names(self) -> set[str]:
        """Leaf names of every linear layer inside the blocks (what LoRA `target_modules` can match)."""
        return {lin.leaf_name for block in self.layers for lin in block.linears}
