"""estimate_inference: memory per GPU, what fits, and how fast, for serving a model.

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
from dataclasses import dataclass
from typing import Any, TypeVar

from llmplan.catalog.torch_memory import torch_total
from llmplan.errors import raise_problems
from llmplan.estimate.validation_inference import inference_problems
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas import roofline
from llmplan.formulas.overheads import cublas_workspace_bytes, cuda_context_bytes
from llmplan.formulas.params import count_params
from llmplan.formulas.quant import FLOAT_BYTES, WeightBytes, weight_bytes
from llmplan.specs.hardware import Accelerator, Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat
from llmplan.specs.model import AttentionKind, MlpKind, ModelSpec, PositionKind
from llmplan.specs.training import AttentionImpl
from llmplan.units import MIB

NCCL_BYTES = 256 * MIB
"""NCCL communicator buffers when tp > 1: NCCL_BUFFSIZE 4 MiB per channel and peer, a few channels on NVLink,
plus vLLM's custom all-reduce IPC buffers (vllm/distributed/device_communicators/custom_all_reduce.py, 8 MiB
max size, per rank). Outside the torch allocator."""
CUDA_GRAPH_BYTES = 512 * MIB
"""vLLM CUDA-graph pool for the default capture sizes (1..512 tokens): vLLM's startup log reports
"Graph capturing finished ... took 0.3-0.9 GiB" for 7-70B models on A100 / H100."""

KV_DTYPE_BYTES = {KvDtype.FP32: 4, KvDtype.FP16: 2, KvDtype.BF16: 2, KvDtype.FP8: 1, KvDtype.INT8: 1}


@dataclass(frozen=True, slots=True)
class InferenceMemory:
    """Bytes on one GPU (the most loaded rank / stage)."""

    weights: WeightBytes
    kv_cache_bytes: int
    activation_peak_bytes: int
    torch_workspace_bytes: int
    """cuBLAS workspace (inside the torch allocator)."""
    non_torch_bytes: int
    """CUDA context, NCCL buffers and CUDA graphs: seen by nvidia-smi, not by torch."""
    reserved_bytes: int
    """What the caching allocator holds: allocated (HF: fragmentation not modelled) or vLLM's whole budget."""

    @property
    def allocated_bytes(self) -> int:
        return (
            self.weights.total + self.kv_cache_bytes + self.activation_peak_bytes + self.torch_workspace_bytes
        )

    @property
    def device_bytes(self) -> int:
        return self.reserved_bytes + self.non_torch_bytes

    @property
    def total(self) -> int:
        """The `device` counter (what nvidia-smi shows), compared with the accelerator's memory."""
        return self.device_bytes


@dataclass(frozen=True, slots=True)
class VllmBudget:
    """vLLM's KV-cache capacity on one GPU, as `determine_available_memory` computes it."""

    requested_bytes: int
    """total memory · gpu_memory_utilization."""
    profile_peak_bytes: int
    """torch peak of the profile run: weights + activations at max_num_batched_tokens."""
    non_torch_bytes: int
    available_kv_bytes: int
    num_gpu_blocks: int
    block_bytes: int
    """block_size · KV bytes per token, all layers on this rank."""
    max_concurrency: int
    """Sequences of `context_len` tokens the blocks hold at once."""

    @property
    def total(self) -> int:
        return self.requested_bytes


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

    @property
    def total(self) -> float:
        return self.tokens_per_s


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    model: str
    accelerator: str
    job: InferenceJob
    memory: InferenceMemory
    capacity_bytes: int
    fits: bool
    headroom_bytes: int
    """Bytes left: device capacity - device bytes for hf; for vllm, the KV-cache pool the job leaves unused (vLLM
    pre-allocates the whole pool, so the device is nearly full either way)."""
    max_batch_at_context: int
    """Largest batch (concurrency) of `context_len` sequences that fits (0 if not even one)."""
    max_context_at_batch: int
    """Largest context for `batch` sequences that fits (0 if none), capped at the model's maximum."""
    vllm: VllmBudget | None
    speed: InferenceSpeed
    notes: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.memory.total


def kv_dtype_bytes(job: InferenceJob) -> int:
    if job.kv_dtype is KvDtype.AUTO:
        return FLOAT_BYTES[job.activation_dtype]
    return KV_DTYPE_BYTES[job.kv_dtype]


def validate(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> list[str]:
    """Raise InvalidInputError carrying every problem of `job` (`estimate.validation_inference`); return the
    notes about what was allowed."""
    found, notes = inference_problems(model, job, cluster)
    raise_problems(found)
    return list(notes)


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
    names = model.linear_names()
    width = -(-model.intermediate_size // tp)
    if "gate_up_proj" in names and model.moe is None:
        mlp = 4 * t * width * a
    elif model.mlp_kind is MlpKind.GATED:
        mlp = 3 * t * width * a
    else:
        # gelu_new (GPT-2's NewGELUActivation) is written out in Python: x, 0.5·x, x³ and 0.044715·x³ coexist
        mlp = (4 if model.hidden_act == "gelu_new" else 2) * t * width * a
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


def _memo(model: ModelSpec, key: tuple[object, ...], compute: Callable[[], T]) -> T:
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


class _Footprint:
    """Memory as a function of (context, batch), with everything independent of them computed once."""

    def __init__(self, model: ModelSpec, job: InferenceJob, acc: Accelerator) -> None:
        self.model, self.job, self.acc = model, job, acc
        w = _memo(
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
        self.non_torch = cuda_context_bytes(acc) + (NCCL_BYTES if job.tp > 1 else 0)
        if job.engine is Engine.VLLM and job.vllm.cuda_graphs:
            self.non_torch += CUDA_GRAPH_BYTES
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
        non_torch = self.non_torch - (CUDA_GRAPH_BYTES if self.job.vllm.cuda_graphs else 0)
        return requested - self.vllm_peak - non_torch

    def fits(self, context: int, batch: int) -> bool:
        return self.device_bytes(context, batch) <= self.limit()


def _max_batch(fp: _Footprint, context: int) -> int:
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


def _max_context(fp: _Footprint, batch: int, cap: int) -> int:
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


def _peak_dtype(job: InferenceJob) -> str:
    if job.quant in (QuantFormat.FP8, QuantFormat.FP8_CHANNEL):
        return "fp8"
    return job.activation_dtype.value


def _speed(model: ModelSpec, job: InferenceJob, cluster: Cluster, fp: _Footprint) -> InferenceSpeed:
    acc = cluster.accelerator
    params = _memo(model, ("params",), lambda: count_params(model))
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
    return InferenceSpeed(
        ttft_s=pre.total * pp,
        prefill=pre,
        tpot_s=tpot,
        decode=dec,
        tokens_per_s=b / tpot,
        tokens_per_s_per_sequence=1 / tpot,
        critical_batch=crit,
    )


def attention_causal(layers: int, heads: int, head_dim: int, batch: int, prompt: int) -> float:
    """Causal prefill attention: each of p queries sees (p + 1)/2 keys on average."""
    return roofline.attention_flops(layers, heads, head_dim, batch * prompt, (prompt + 1) / 2)


def estimate_inference(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> InferenceEstimate:
    """Memory per GPU, verdict, the largest batch / context that fits, vLLM's KV budget and roofline speed."""
    acc = cluster.accelerator
    notes = validate(model, job, cluster)
    fp = _Footprint(model, job, acc)
    c, b = job.context_len, job.batch
    kv = fp.kv(c, b)
    budget = None
    if job.engine is Engine.VLLM:
        available = fp.vllm_available()
        per_token = (
            kvf.kv_bytes_per_token(model, fp.kv_bytes, job.tp) * fp.stage_layers // model.num_hidden_layers
        )
        block_bytes = job.vllm.block_size * per_token
        blocks = max(0, available) // block_bytes
        per_seq = fp.kv(c, 1)
        budget = VllmBudget(
            requested_bytes=int(torch_total(acc).bytes * job.vllm.gpu_memory_utilization),
            profile_peak_bytes=fp.vllm_peak,
            non_torch_bytes=fp.non_torch - (CUDA_GRAPH_BYTES if job.vllm.cuda_graphs else 0),
            available_kv_bytes=available,
            num_gpu_blocks=blocks,
            block_bytes=block_bytes,
            max_concurrency=max(0, available) // per_seq,
        )
        pool = blocks * block_bytes
        allocated = fp.weights.total + pool + fp.vllm_act + fp.workspace
        memory = InferenceMemory(
            weights=fp.weights,
            kv_cache_bytes=pool,
            activation_peak_bytes=fp.vllm_act,
            torch_workspace_bytes=fp.workspace,
            non_torch_bytes=fp.non_torch,
            reserved_bytes=allocated,
        )
        fits = available > 0 and kv <= available and memory.device_bytes <= acc.memory_bytes
        headroom = available - kv
        notes.append(
            f"vLLM pre-allocates {blocks} blocks of {job.vllm.block_size} tokens; the job needs "
            f"{-(-kv // block_bytes)} of them"
        )
        if available <= 0:
            notes.append(
                "vLLM cannot start: weights + profiled activations + non-torch memory exceed gpu_memory_utilization "
                "x memory (vLLM raises 'No available memory for the cache blocks'); add GPUs (--tp) or quantize"
            )
        elif budget.max_concurrency == 0:
            notes.append(
                f"vLLM refuses max_model_len {c}: one sequence needs more KV cache than the {available:,} bytes "
                "left (lower --context or raise gpu_memory_utilization)"
            )
        if b > job.vllm.max_num_seqs:
            notes.append(
                f"batch {b} > max_num_seqs {job.vllm.max_num_seqs}: vLLM decodes {job.vllm.max_num_seqs} at a time "
                "and queues the rest (speed below is for that batch)"
            )
    else:
        prompt = min(job.prefill_tokens, c)
        act = fp.hf_activation(c, b, prompt)
        allocated = fp.weights.total + kv + act + fp.workspace
        memory = InferenceMemory(
            weights=fp.weights,
            kv_cache_bytes=kv,
            activation_peak_bytes=act,
            torch_workspace_bytes=fp.workspace,
            non_torch_bytes=fp.non_torch,
            reserved_bytes=allocated,
        )
        fits = memory.device_bytes <= acc.memory_bytes
        headroom = acc.memory_bytes - memory.device_bytes
    cap = model.max_position_embeddings
    return InferenceEstimate(
        model=model.name,
        accelerator=acc.name,
        job=job,
        memory=memory,
        capacity_bytes=acc.memory_bytes,
        fits=fits,
        headroom_bytes=headroom,
        max_batch_at_context=(
            min(_max_batch(fp, c), job.vllm.max_num_seqs) if job.engine is Engine.VLLM else _max_batch(fp, c)
        ),
        max_context_at_batch=_max_context(fp, b, max(cap, c)),
        vllm=budget,
        speed=_speed(model, job, cluster, fp),
        notes=tuple(notes),
    )
