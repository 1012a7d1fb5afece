"""Inference memory as a function of context and batch: the prefill activation peak, the KV cache, vLLM's
budget, and the largest batch / context that fits (`estimate.inference` assembles the result).

Memory (per GPU, counter `allocated` unless stated):
- weights: `formulas.quant.weight_bytes` (scales / zeros included), divided over pp stages;
- KV cache: `formulas.kv_cache.kv_cache_bytes` for `batch` sequences of `context_len` tokens;
- activation peak: the largest transient of one prefill chunk (below);
- engine overhead outside PyTorch's allocator (CUDA context, NCCL, CUDA graphs) and the cuBLAS workspace
  inside it (context and workspace per architecture from `formulas.overheads`, as in training): the
  `device` counter, which the verdict compares with the accelerator's memory.

HF engine: the prefill peak is `hf_prefill_peak_bytes` (what the transformers forward itself keeps live: the
residual stream, eager scores and masks, repeat_kv copies, fused-MoE routed rows), plus the prompt's whole K/V
in sliding layers, which `DynamicSlidingWindowLayer` trims only at the first decode step.
vLLM: activation peak of a prefill chunk of t = batch · prompt tokens (activations in dtype bytes a):
- MLP: gate, act(gate) and up live together before the product: 3 · t · I/tp · a, plus the residual stream
  and the normed input 2 · t · h · a (transformers `LlamaMLP.forward`: down(act(gate(x)) * up(x)));
- attention with SDPA / flash kernels (no s² tensor): q, k, v and the output, t · (H·d_qk + 2·kv·d + H·d_v)/tp · a,
  plus 2 · t · h · a;
- logits: `generate` sets `logits_to_keep=1` (transformers generation/utils.py), so the head emits b · V
  logits in the model dtype, copied to fp32 for sampling: b · V · (a + 4);
- HF decode: `DynamicLayer.update` concatenates, so one layer's K and V exist twice for a moment: + one
  layer's cache.
With vLLM the peak is the one its profile run sees: the same transients for t = max_num_batched_tokens
(or the whole context without chunked prefill) plus the sampler's fp32 logits and probabilities of
max_num_seqs rows.

vLLM's KV budget mirrors `Worker.determine_available_memory` (vllm/v1/worker/gpu_worker.py):
    available = total · gpu_memory_utilization   (total: torch.cuda.mem_get_info's, catalog/torch_memory.py) − (torch peak of the profile run, weights included)
                − non-torch allocations (NCCL, cuBLAS)
    num_gpu_blocks = available // (block_size · KV bytes per token of all layers)   (v1 kv_cache_utils)
CUDA graphs are captured after the KV cache is allocated and come on top of the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from llmplan.catalog.torch_memory import torch_total
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas.overheads import NCCL_BYTES_PER_COMMUNICATOR, cublas_workspace_bytes, cuda_context_bytes
from llmplan.formulas.quant import FLOAT_BYTES, WeightBytes, weight_bytes
from llmplan.specs.hardware import Accelerator
from llmplan.specs.inference import Engine, InferenceJob, KvDtype
from llmplan.specs.model import ActivationImpl, AttentionKind, Group, MlpKind, ModelSpec, PositionKind, Role
from llmplan.specs.training import AttentionImpl
from llmplan.units import MIB

VLLM_TP_COMMUNICATORS = 2
"""NCCL communicators of one vLLM tensor-parallel group: torch's ProcessGroupNCCL (the GroupCoordinator's
`device_group`) and vLLM's own PyNcclCommunicator (vllm/distributed/parallel_state.py, device_communicators/
pynccl.py); the custom all-reduce's IPC buffers (custom_all_reduce.py, 8 MiB per rank) are within the
per-communicator figure's spread."""
NCCL_BYTES = VLLM_TP_COMMUNICATORS * NCCL_BYTES_PER_COMMUNICATOR
"""NCCL buffers of a serving rank when tp > 1 (formulas/overheads.py NCCL_BYTES_PER_COMMUNICATOR each, the
one definition training uses too). Outside the torch allocator."""
CUDA_GRAPH_BYTES = 512 * MIB
"""vLLM CUDA-graph pool for the default capture sizes (1..512 tokens): vLLM's startup log reports
"Graph capturing finished ... took 0.3-0.9 GiB" for 7-70B models on A100 / H100."""

KV_DTYPE_BYTES = {KvDtype.FP32: 4, KvDtype.FP16: 2, KvDtype.BF16: 2, KvDtype.FP8: 1, KvDtype.INT8: 1}


def kv_dtype_bytes(job: InferenceJob) -> int:
    if job.kv_dtype is KvDtype.AUTO:
        return FLOAT_BYTES[job.activation_dtype]
    return KV_DTYPE_BYTES[job.kv_dtype]


def _mlp_width(model: ModelSpec) -> int:
    """Intermediate width a token's MLP transient spans: dense I, or top-k experts + shared experts."""
    if model.moe is None:
        return model.intermediate_size
    moe = model.moe
    return max(
        model.intermediate_size,
        moe.experts_per_token * moe.expert_intermediate_size + moe.shared_intermediate_size,
    )


def activation_peak_bytes(
    model: ModelSpec, tokens: int, logit_rows: int, act_bytes: int, tp: int, logit_bytes: int
) -> int:
    """Largest transient of a forward over `tokens` tokens (module docstring), one tp rank."""
    h = model.hidden_size
    mla = model.mla
    if mla is not None:
        qkv = model.num_attention_heads * (
            2 * (mla.qk_nope_head_dim + mla.qk_rope_head_dim) + 2 * mla.v_head_dim
        )
    else:
        qkv = 2 * model.num_attention_heads * model.head_dim + 2 * model.num_key_value_heads * model.head_dim
    attn = tokens * (-(-qkv // tp)) * act_bytes
    mlp = 3 * tokens * (-(-_mlp_width(model) // tp)) * act_bytes
    logits = logit_rows * model.vocab_size * logit_bytes
    return max(attn, mlp) + 2 * tokens * h * act_bytes + logits


def _score_bytes(act_bytes: int) -> int:
    """Bytes per attention score live at the eager softmax: the masked scores in the compute dtype, their fp32
    copy and the fp32 softmax output (`softmax(..., dtype=float32)`; no copy when the scores are fp32)."""
    return act_bytes + 4 + (4 if act_bytes != 4 else 0)


def hf_prefill_peak_bytes(
    model: ModelSpec,
    batch: int,
    prompt: int,
    act_bytes: int,
    tp: int,
    *,
    attention: AttentionImpl = AttentionImpl.SDPA,
) -> int:
    """Largest transient of the transformers prefill forward over `batch` x `prompt` tokens, one tp rank.

    With t = b·s tokens, a bytes per activation, H = heads / tp, kv = kv heads / tp, d the head dim:
    - residual stream: the embedding output (a local of `Model.forward`), the decoder layer's input (held by the
      caller's loop), the post-attention residual and the normed input: 3·t·h·a in attention, 4·t·h·a in the MLP;
    - attention, SDPA / flash: q after RoPE, k and v expanded by `repeat_kv` (a copy only when kv < H; otherwise
      they are the cache's own tensors) and the kernel's output: t·(2·H·d + 2·H'·d)·a, H' = H if kv < H else 0;
    - attention, eager: q, the expanded k, v and the b·H·s² scores at the softmax: the masked scores in the
      compute dtype, their fp32 copy and the fp32 probabilities (`_score_bytes`), transformers
      `eager_attention_forward`;
    - masks: eager attention materialises one additive b·s²·a mask per attention kind the model has
      (masking_utils `eager_mask`); SDPA skips the mask of causal layers (`_ignore_causal_mask_sdpa`) but a
      sliding layer whose prompt reaches the window gets a boolean b·s² mask (live all forward), which torch's
      `scaled_dot_product_attention` turns into an additive b·s²·a one during the call (`convert_boolean_attn_mask`);
    - MLP: gated 3·t·I·a (act(gate), up, their product), fused gate_up 4·t·I·a (Phi-3: gate_up output, act, product),
      plain 2·t·I·a (fc1 output, activation; 4·t·I·a for gelu_new, whose tanh formula runs op by op);
    - MoE (transformers v5 fused experts, `grouped_mm`): the router logits t·E·a and, for the t·k routed rows,
      the gathered hidden states and the gate_up output, act(gate) and product: t·k·(h + 4·I_e)·a; a shared
      expert runs afterwards beside the routed output: t·h·a + its MLP;
    - RoPE: the cos and sin tables of the forward, 2·s·d·a (shared by the batch);
    - the final logits of the last position are a later, smaller transient (taken by the caller).
    MLA models keep the earlier q/k/v/o count (no s² tensor with SDPA).
    """
    t = batch * prompt
    h = model.hidden_size
    a = act_bytes
    heads = -(-model.num_attention_heads // tp)
    kv_heads = -(-model.num_key_value_heads // tp)
    mla = model.mla
    if mla is not None:
        qkv = model.num_attention_heads * (
            2 * (mla.qk_nope_head_dim + mla.qk_rope_head_dim) + 2 * mla.v_head_dim
        )
        attn = t * (-(-qkv // tp)) * a
    else:
        d = model.head_dim
        expanded = 2 * heads * d if kv_heads < heads else 0
        attn = t * (heads * d + expanded) * a
        if attention is AttentionImpl.EAGER:
            attn += batch * heads * prompt * prompt * _score_bytes(a)
        else:
            attn += t * heads * d * a
    kinds = {block.attention for block in model.layers}
    window = model.sliding_window
    masks = 0
    if attention is AttentionImpl.EAGER:
        masks = len(kinds) * batch * prompt * prompt * a
    elif AttentionKind.SLIDING in kinds and window is not None and prompt >= window:
        masks = batch * prompt * prompt
        attn += batch * prompt * prompt * a  # the additive copy lives inside the SDPA call only
    if model.position is PositionKind.ROPE:
        # the rotary cos and sin tables, computed once per forward in the activation dtype: (1, s, d) each
        masks += 2 * prompt * (model.head_dim if mla is None else mla.qk_rope_head_dim) * a
    width = -(-model.intermediate_size // tp)
    fused_gate_up = any(
        lin.role is Role.GATE_UP and lin.group is Group.MLP
        for block in model.block_kinds
        for lin in block.linears
    )
    if fused_gate_up and model.moe is None:
        mlp = 4 * t * width * a
    elif model.mlp_kind is MlpKind.GATED:
        mlp = 3 * t * width * a
    else:
        # gelu_new (GPT-2's NewGELUActivation) is written out in Python: x, 0.5·x, x³ and 0.044715·x³ coexist
        mlp = (4 if model.activation_impl is ActivationImpl.NEW_GELU else 2) * t * width * a
    moe = model.moe
    if moe is not None:
        ie = -(-moe.expert_intermediate_size // tp)
        routed = t * moe.num_experts * a + t * moe.experts_per_token * (h + 4 * ie) * a
        shared = 0
        if moe.shared_intermediate_size:
            shared = t * h * a + 3 * t * (-(-moe.shared_intermediate_size // tp)) * a
        moe_bytes = max(routed, shared)
        mlp = moe_bytes if all(block.moe for block in model.layers) else max(mlp, moe_bytes)
    return masks + max(3 * t * h * a + attn, 4 * t * h * a + mlp)


T = TypeVar("T")
_MEMO: dict[tuple[object, ...], tuple[ModelSpec, Any]] = {}
_MEMO_SIZE = 32


def memo(model: ModelSpec, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """Per-model results (inventory sums) reused across the calls of one session, keyed by the model object's
    identity (the stored model keeps the id from being reused); a plan search estimates one model many times."""
    full = (id(model), *key)
    hit = _MEMO.get(full)
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    value = compute()
    _MEMO[full] = (model, value)
    return value


class Footprint:
    """Memory as a function of (context, batch), with everything independent of them computed once."""

    def __init__(self, model: ModelSpec, job: InferenceJob, acc: Accelerator) -> None:
        self.model, self.job, self.acc = model, job, acc
        w = memo(
            model,
            ("weights", job.quant, job.compute_dtype, job.tp, job.group_size, job.nf4_double_quant),
            lambda: weight_bytes(
                model,
                job.quant,
                compute_dtype=job.compute_dtype,
                tp=job.tp,
                group_size=job.group_size,
                double_quant=job.nf4_double_quant,
            ),
        )
        pp = job.pp
        self.weights = WeightBytes(
            -(-w.quantized_bytes // pp), -(-w.scales_bytes // pp), -(-w.high_precision_bytes // pp)
        )
        self.act_bytes = FLOAT_BYTES[job.activation_dtype]
        self.kv_bytes = kv_dtype_bytes(job)
        self.stage_layers = -(-model.num_hidden_layers // pp)
        self.n_full, self.n_sliding = kvf.layer_counts(model)
        self.kv_layer_token_bytes = kvf.kv_elems_per_token_per_layer(model, job.tp) * self.kv_bytes
        self.workspace = cublas_workspace_bytes(acc)
        self.cuda_context = cuda_context_bytes(acc)
        self.nccl = NCCL_BYTES if job.tp > 1 else 0
        self.cuda_graphs = CUDA_GRAPH_BYTES if job.engine is Engine.VLLM and job.vllm.cuda_graphs else 0
        self.non_torch = self.cuda_context + self.nccl + self.cuda_graphs
        self.capacity = acc.memory_bytes
        self.vllm_peak = 0
        if job.engine is Engine.VLLM:
            v = job.vllm
            t = (
                v.max_num_batched_tokens
                if v.enable_chunked_prefill
                else max(v.max_num_batched_tokens, job.context_len)
            )
            rows = min(v.max_num_seqs, t)
            act = activation_peak_bytes(model, t, rows, self.act_bytes, job.tp, 2 * 4)
            self.vllm_peak = self.weights.total + act + self.workspace
            self.vllm_act = act

    def kv(self, context: int, batch: int) -> int:
        job = self.job
        full = kvf.paged_kv_bytes(
            self.kv_layer_token_bytes,
            self.n_full,
            self.n_sliding,
            self.model.sliding_window,
            context,
            batch,
            job.engine,
            job.vllm.block_size,
        ).total
        return -(-full * self.stage_layers // self.model.num_hidden_layers)

    def hf_activation(self, context: int, batch: int, prompt: int) -> int:
        model, a = self.model, self.act_bytes
        prefill = hf_prefill_peak_bytes(model, batch, prompt, a, self.job.tp, attention=self.job.attention)
        prefill = max(
            prefill, 2 * batch * prompt * model.hidden_size * a + batch * model.vocab_size * (a + 4)
        )
        kv = self.kv(context, batch)
        # DynamicSlidingWindowLayer keeps a view of the prompt's whole K/V until the first decode step, and
        # during prefill the full layers hold the prompt only: the cache at the prefill peak (last layer).
        prompt_kv = self.kv_layer_token_bytes * batch * prompt * self.stage_layers
        one_layer = -(-kv // self.stage_layers)
        return max(prefill + max(0, prompt_kv - kv), one_layer)

    def device_bytes(self, context: int, batch: int) -> int:
        """`device` counter of the HF engine; for vLLM, the KV bytes needed beyond its fixed budget."""
        prompt = min(self.job.prefill_tokens, context)
        kv = self.kv(context, batch)
        if self.job.engine is Engine.VLLM:
            return kv
        return (
            self.weights.total
            + kv
            + self.hf_activation(context, batch, prompt)
            + self.workspace
            + self.non_torch
        )

    def limit(self) -> int:
        if self.job.engine is Engine.VLLM:
            return self.vllm_available()
        return self.capacity

    def vllm_available(self) -> int:
        requested = int(torch_total(self.acc).bytes * self.job.vllm.gpu_memory_utilization)
        return requested - self.vllm_peak - (self.non_torch - self.cuda_graphs)

    def fits(self, context: int, batch: int) -> bool:
        return self.device_bytes(context, batch) <= self.limit()


def max_batch(fp: Footprint, context: int) -> int:
    """Largest batch that fits at `context` (memory grows with the batch: binary search)."""
    if not fp.fits(context, 1):
        return 0
    lo, hi = 1, 2
    while fp.fits(context, hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fp.fits(context, mid) else (lo, mid)
    return lo


def max_context(fp: Footprint, batch: int, cap: int) -> int:
    """Largest context (<= cap) that fits `batch` sequences (binary search)."""
    if not fp.fits(1, batch):
        return 0
    if fp.fits(cap, batch):
        return cap
    lo, hi = 1, cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fp.fits(mid, batch) else (lo, mid)
    return lo
