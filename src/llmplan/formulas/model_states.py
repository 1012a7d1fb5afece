"""Model states per GPU: weights, fp32 master weights, gradients, optimizer states and the optimizer step's
temporaries, with tensor / pipeline / expert splits, ZeRO / FSDP sharding and offload.

Accounting (Rajbhandari et al. 2020, "ZeRO", section 3.1 and figure 1): mixed-precision Adam keeps 2 bytes of
weights, 2 bytes of gradients and K = 12 bytes of optimizer state (fp32 master copy 4 + momentum 4 + variance
4) per trainable parameter: 16 bytes. Here the master copy is its own term (`master_weights_bytes`), and the
bytes per element follow the precision:

| precision | weights | grads | master | optimizer states |
|---|---|---|---|---|
| fp32, amp-bf16 (autocast over fp32 weights) | 4 | 4 | 0 | 4 per state |
| fp16-mixed, bf16-mixed, fp8-mixed | 2 | 2 | 4 | 4 per state |
| bf16, fp16 (pure) | 2 | 2 | 0 | 2 per state (torch creates states like the parameter) |

States per trainable element: AdamW and paged AdamW 2, SGD 0, SGD with momentum 1, Lion 1 (Chen et al. 2023),
8-bit AdamW 2 × 1 byte + one fp32 absmax per block of 256 per state (bitsandbytes optim/optimizer.py
`Optimizer2State.init_state`, blockwise: `blocks = ceil(n / 256)`; the 8-bit-optimizer paper, Dettmers et al.
2022 section 2, used blocks of 2048), Adafactor the factored second moment: rows + columns per matrix, the
full tensor for vectors, no first moment (Shazeer & Stern 2018 section 3; HF `transformers.optimization.
Adafactor` with `beta1=None`).

PEFT (peft 0.21 `autocast_adapter_dtype=True`): adapters are kept in fp32 whatever the base dtype, so their
weights, gradients and states take 4 bytes each and need no master copy. QLoRA: the frozen linears of the
decoder blocks are NF4 (`formulas.quant.linear_weight_bytes`: 0.5 byte per weight + uint8 absmax per 64 + fp32
per 256 absmax blocks under double quantization, Dettmers et al. 2023 section 3, ≈ 0.127 bit per weight of
constants); embeddings, lm_head, norms, biases and routers stay in the 16-bit compute dtype.

Splits:
- tensor parallel: each Linear by its TpSplit (column: out/tp, row: in/tp and the bias whole, replicated:
  whole); k/v projections keep max(1, kv_heads/tp) heads (Megatron replicates kv heads when tp > kv heads);
  embedding and head split the vocabulary (Megatron `VocabParallelEmbedding`); norms replicated;
- pipeline parallel: stage s holds its layers (`stage_layers`); the first stage also holds the embedding, the
  last the final norm, final linears and the head (an untied head; a tied one is a second copy of the
  embedding on the last stage when pp > 1, as in Megatron);
- expert parallel: routed experts split their copies over ep;
- ZeRO / FSDP shard over the data-parallel group only, dp · cp (ZeRO stage 1: master + states, 2: + gradients,
  3: + weights), never over tp or pp; FSDP with mixed precision follows FSDP2's `MixedPrecisionPolicy`
  (torch/distributed/fsdp/_fully_shard): the fp32 shards are the masters (no 16-bit shard), gradients are
  reduced into fp32 shards, the 16-bit copies exist only as gathered units; routed experts over the expert-data-parallel group dp · cp / ep
  (Megatron-Core `expert_data_parallel`). FSDP hybrid-shard shards within a node. DeepSpeed ZeRO-3 leaves
  the tensors of at most `stage3_param_persistence_threshold` elements whole on every rank
  (`ds_persistent_elems`); its gather and reduce buffers are in `_comm_buffers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmplan.formulas.parallel.pipeline import stage_layers
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.formulas.params import count_params
from llmplan.formulas.peft import TrainableParams, lora_rank, lora_target_linears, trainable_params
from llmplan.formulas.quant import linear_weight_bytes
from llmplan.specs.inference import QuantFormat
from llmplan.specs.model import Group, ModelSpec, TpSplit
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    Precision,
    TrainingJob,
)
from llmplan.stacks import StackSettings
from llmplan.stacks import resolve as resolve_stack

WEIGHT_BYTES = {
    Precision.FP32: 4,
    Precision.AMP_BF16: 4,
    Precision.FP16_MIXED: 2,
    Precision.BF16_MIXED: 2,
    Precision.FP8_MIXED: 2,
    Precision.BF16: 2,
    Precision.FP16: 2,
}
"""Bytes per weight (and per gradient) of the trainable base model."""
MIXED = frozenset({Precision.FP16_MIXED, Precision.BF16_MIXED, Precision.FP8_MIXED})
"""Precisions with an fp32 master copy of the trainable weights (Micikevicius et al. 2018, section 3.1)."""
PURE_16 = frozenset({Precision.BF16, Precision.FP16})
ADAPTER_BYTES = 4
"""peft keeps adapter weights in fp32 (`autocast_adapter_dtype=True`, peft/tuners/tuners_utils.py)."""

STATES_PER_PARAM = {
    Optimizer.ADAMW: 2,
    Optimizer.PAGED_ADAMW: 2,
    Optimizer.SGD: 0,
    Optimizer.SGD_MOMENTUM: 1,
    Optimizer.LION: 1,
    Optimizer.ADAM8BIT: 2,
    Optimizer.PAGED_ADAMW_8BIT: 2,
    Optimizer.ADAFACTOR: 1,
}
EIGHT_BIT = frozenset({Optimizer.ADAM8BIT, Optimizer.PAGED_ADAMW_8BIT})
PAGED = frozenset({Optimizer.PAGED_ADAMW, Optimizer.PAGED_ADAMW_8BIT})
BNB_BLOCK = 256
"""bitsandbytes blockwise 8-bit optimizer block (optim/optimizer.py `Optimizer2State.init_state`)."""
FOREACH_TEMPS = {Optimizer.ADAMW: 1, Optimizer.LION: 1}
"""Full-size temporaries of torch's multi-tensor step, in state dtype, over the largest parameter group:
AdamW `_multi_tensor_adamw` allocates `exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)` (every other op is
in place); Lion's update `sign(lerp(m, g))` one; SGD (momentum) updates in place (torch/optim/adamw.py,
sgd.py). Measured in design.md: Llama-2-7B bf16 AdamW foreach peak = weights + grads + states + one
full-size temporary."""
FOR_LOOP_TEMPS = 2
"""`_single_tensor_adamw`: `denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)` holds two
temporaries of one parameter for an instant; HF Adafactor's `update = grad**2 + eps` and its approximation
also two."""

DS_NVME_OPT_BUFFERS = 4
"""DeepSpeed `offload_optimizer.buffer_count` default (pinned swap buffers of one sub-group each)."""
DS_NVME_PARAM_BUFFERS = 5
DS_NVME_PARAM_BUFFER_SIZE = 100_000_000
"""DeepSpeed `offload_param.buffer_count` / `buffer_size` defaults (elements)."""


@dataclass(frozen=True, slots=True)
class RankInventory:
    """Base-model elements one rank holds before ZeRO / FSDP sharding (after tp, pp and ep splits)."""

    dense: int
    """Elements outside the routed experts."""
    expert: int
    """Routed-expert elements (sharded by ZeRO over dp·cp/ep)."""
    block_linear_weights: int
    """Weights of the decoder blocks' linears other than routers: what QLoRA stores in NF4."""
    nf4_bytes: int
    """Those weights in NF4 with double quantization (payload + constants)."""
    factored: int
    """Adafactor state elements of all tensors: rows + cols per matrix, numel per vector."""
    largest: int
    """Largest single parameter tensor."""
    layer_max: int
    """Largest decoder layer (an FSDP unit / a ZeRO-3 gather)."""
    outer: int
    """Embedding + head + final tensors on this rank (FSDP's root unit)."""
    head: int
    """Output head's weight elements on this rank (the embedding's, when tied), 0 off the last stage."""

    @property
    def total(self) -> int:
        return self.dense + self.expert


_MEMO: dict[tuple, tuple[ModelSpec, object]] = {}
_MEMO_MAX = 512


def memo_by_model(fn: Callable, model: ModelSpec, *args: object) -> object:
    """fn(model, *args), remembered per model object: specs are frozen, and hashing a whole ModelSpec (every
    layer's inventory) would cost more than the counts it saves."""
    key = (fn.__qualname__, id(model), *args)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    value = fn(model, *args)
    _MEMO[key] = (model, value)
    return value


def param_total(model: ModelSpec) -> int:
    """count_params(model).total, remembered per model object."""
    return memo_by_model(_param_total, model)


def _param_total(model: ModelSpec) -> int:
    return count_params(model).total


def trainable_split(model: ModelSpec, job: TrainingJob) -> TrainableParams:
    """`formulas.peft.trainable_params`, remembered per (model object, method, PEFT settings)."""
    return memo_by_model(_trainable_split, model, job.method, job.peft)


def _trainable_split(model: ModelSpec, method: Method, peft: object) -> TrainableParams:
    return trainable_params(model, TrainingJob(method=method, peft=peft))


def rank_inventory(model: ModelSpec, tp: int, ep: int, pp: int, stage: int) -> RankInventory:
    """Count the base model's elements on one (tp, ep) rank of pipeline `stage` (remembered per model)."""
    return memo_by_model(_rank_inventory, model, tp, ep, pp, stage)


def _rank_inventory(model: ModelSpec, tp: int, ep: int, pp: int, stage: int) -> RankInventory:
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    dense = expert = lin_w = nf4 = factored = 0
    largest = layer_max = 0
    memo: dict[int, tuple[int, ...]] = {}
    for i in layers:
        block = model.layers[i]
        cost = memo.get(id(block))
        if cost is None:
            cost = memo[id(block)] = _block_counts(block.linears, block.tensors, model, tp, ep)
        dense += cost[0]
        expert += cost[1]
        lin_w += cost[2]
        nf4 += cost[3]
        factored += cost[4]
        largest = max(largest, cost[5])
        layer_max = max(layer_max, cost[0] + cost[1])
    outer = head_elems = 0
    vocab = -(-model.vocab_size // tp)
    if stage == 0:
        for t in model.embedding:
            n = vocab * (t.numel // model.vocab_size) if t.group is Group.EMBEDDING else t.numel
            outer += n
            factored += vocab + t.numel // model.vocab_size if t.group is Group.EMBEDDING else n
            largest = max(largest, n)
    if stage == pp - 1:
        for t in model.final:
            outer += t.numel
            factored += t.numel
        for lin in model.final_linears:
            outer += lin.numel
            factored += lin.in_features + lin.out_features
        head = model.lm_head
        head_elems = vocab * head.in_features
        if not model.tie_word_embeddings or pp > 1:
            outer += head_elems + (vocab if head.bias else 0)
            factored += vocab + head.in_features
            largest = max(largest, head_elems)
    return RankInventory(
        dense=dense + outer,
        expert=expert,
        block_linear_weights=lin_w,
        nf4_bytes=nf4,
        factored=factored,
        largest=largest,
        layer_max=layer_max,
        outer=outer,
        head=head_elems,
    )


def _block_counts(linears, tensors, model: ModelSpec, tp: int, ep: int) -> tuple[int, ...]:
    dense = expert = lin_w = nf4 = factored = largest = 0
    for t in tensors:
        dense += t.numel
        factored += t.numel
        largest = max(largest, t.numel)
    for lin in linears:
        in_f, out_f = shard_linear(lin, model, tp)
        routed = lin.group is Group.ROUTED_EXPERTS
        copies = -(-lin.copies // ep) if routed else lin.copies
        bias = (lin.out_features if lin.tp is TpSplit.ROW else out_f) if lin.bias else 0
        n = copies * (in_f * out_f + bias)
        if routed:
            expert += n
        else:
            dense += n
        factored += copies * (in_f + out_f + bias)
        largest = max(largest, copies * in_f * out_f)
        if lin.group is not Group.ROUTER:
            lin_w += copies * in_f * out_f
            p, m = linear_weight_bytes(QuantFormat.NF4, in_f, out_f)
            nf4 += copies * (p + m)
    return dense, expert, lin_w, nf4, factored, largest


def adapter_on_rank(
    model: ModelSpec, job: TrainingJob, tp: int, pp: int, stage: int, total: int
) -> tuple[int, int]:
    """(adapter elements, Adafactor state elements of the adapters) on one rank, remembered per model.

    LoRA-family: A (r × in) and B (out × r) of the adapted linears of the stage, split like their base layer
    (column: B split, row: A split), scaled to peft's exact total (which adds DoRA magnitudes / AdaLoRA's E);
    Adafactor factors A into r + in and B into out + r. Other methods: the whole adapter, spread over stages
    by layer count, with unfactored states."""
    return memo_by_model(_adapter_on_rank, model, job.method, job.peft, tp, pp, stage, total)


def _adapter_on_rank(
    model: ModelSpec, method: Method, peft: object, tp: int, pp: int, stage: int, total: int
) -> tuple[int, int]:
    if total == 0:
        return 0, 0
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    if method not in (Method.LORA, Method.QLORA, Method.DORA, Method.ADALORA):
        local = -(-total * len(layers) // model.num_hidden_layers) if pp > 1 else total
        return local, local
    linears = lora_target_linears(model, peft.lora_targets, convert_moe=method is not Method.ADALORA)
    whole = local = factored = 0
    for i, lin in linears:
        r = lora_rank(model, lin, peft.lora_rank) * lin.copies
        whole += r * (lin.in_features + lin.out_features)
        if i in layers:
            in_f, out_f = shard_linear(lin, model, tp)
            local += r * (in_f + out_f)
            factored += 2 * r + in_f + out_f
    return (-(-total * local // whole), factored) if whole else (0, 0)


def ds_persistent_elems(
    model: ModelSpec, job: TrainingJob, tp: int, pp: int, stage: int, threshold: int
) -> int:
    """Elements of the parameters DeepSpeed ZeRO-3 leaves unpartitioned on every rank: each tensor of at most
    `threshold` elements (`stage3_param_persistence_threshold`, the stack's, `llmplan.stacks`) is marked `ds_persist` and kept
    whole (deepspeed/runtime/zero/parameter_offload.py `mark_persistent_parameters`): norms, biases, small
    weights (MoE routers) and the small LoRA matrices (A: r × in, B: out × r, per adapted linear). Remembered
    per model."""
    return memo_by_model(_ds_persistent, model, job.method, job.peft, tp, pp, stage, threshold)


def _ds_persistent(
    model: ModelSpec, method: Method, peft: object, tp: int, pp: int, stage: int, threshold: int
) -> int:
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    small = 0
    for i in layers:
        block = model.layers[i]
        small += sum(t.numel for t in block.tensors if t.numel <= threshold)
        for lin in block.linears:
            in_f, out_f = shard_linear(lin, model, tp)
            fused = lin.group is Group.ROUTED_EXPERTS  # one (experts, out, in) parameter in transformers v5
            weight = (lin.copies if fused else 1) * in_f * out_f
            if weight <= threshold:
                small += weight * (1 if fused else lin.copies)
            if lin.bias and out_f <= threshold:
                small += lin.copies * out_f
    if stage == pp - 1:
        small += sum(t.numel for t in model.final if t.numel <= threshold)
    if method in (Method.LORA, Method.QLORA, Method.DORA, Method.ADALORA):
        for i, lin in lora_target_linears(model, peft.lora_targets, convert_moe=method is not Method.ADALORA):
            if i in layers:
                r = lora_rank(model, lin, peft.lora_rank)
                in_f, out_f = shard_linear(lin, model, tp)
                small += lin.copies * sum(n for n in (r * in_f, r * out_f) if n <= threshold)
    return small


@dataclass(frozen=True, slots=True)
class ModelStates:
    """Model states on one GPU (the rank of pipeline stage `stage`), in bytes, and what went to host or
    NVMe."""

    weights_bytes: int
    """GPU-resident weights: trainable and frozen base (NF4 for QLoRA) and adapters (ZeRO-3 shard when
    sharded)."""
    master_weights_bytes: int
    """fp32 master copy of the trainable weights (mixed precision), on the GPU."""
    gradients_bytes: int
    """Gradient buffers on the GPU (they persist across micro-batches when accumulating)."""
    step_gradients_bytes: int
    """Gradients alive during the optimizer step: with mixed precision the fp32 casts the masters are updated
    with (4 B per trainable element; the 16-bit gradients are freed one by one as they are cast — apex amp O2,
    Megatron's fp32 `main_grad`); DeepSpeed ZeRO-3 keeps its 16-bit gradient partition and casts one
    `sub_group_size` sub-group at a time to fp32; otherwise `gradients_bytes`."""
    optimizer_states_bytes: int
    """Optimizer states on the GPU (paged states included; see `paged_bytes`)."""
    optimizer_temporaries_bytes: int
    """Transient tensors of the optimizer step (foreach / for-loop, fp32 gradient copy of mixed precision)."""
    gather_buffers_bytes: int
    """ZeRO-3 / FSDP all-gathered parameters alive at once (current unit + prefetch)."""
    reduce_buffers_bytes: int
    """Gradient communication buffers: DDP buckets, DeepSpeed reduce bucket, FSDP's unsharded unit
    gradient."""
    host_bytes: int
    """Host RAM this GPU's offload needs (states, master, fp32 gradients, pinned swap buffers)."""
    nvme_bytes: int
    paged_bytes: int
    """Part of `optimizer_states_bytes` in CUDA unified memory (bitsandbytes paged optimizers): evictable."""
    trainable_on_rank: int
    """Trainable elements held by this GPU after sharding (for in-backward and for-loop temporaries)."""
    largest_param: int
    sharding_group: int
    """GPUs the dense model states are sharded over (1 without ZeRO / FSDP)."""

    @property
    def total(self) -> int:
        """weights + master + gradients + optimizer states (the persistent model states)."""
        return (
            self.weights_bytes
            + self.master_weights_bytes
            + self.gradients_bytes
            + self.optimizer_states_bytes
        )


def sharding_group(layout: Layout, gpus_per_node: int) -> int:
    """GPUs ZeRO / FSDP shard over: the data-parallel group dp · cp (never tp or pp; ZeRO paper section 5 and
    Megatron's distributed optimizer shard over the data-parallel ranks, which include cp ranks in
    Megatron-Core). FSDP hybrid-shard: within a node, i.e. the dp·cp ranks sharing one node."""
    group = layout.dp * layout.cp
    if layout.sharding_stage == 0:
        return 1
    if layout.fsdp is FsdpStrategy.HYBRID_SHARD:
        per_node = max(1, gpus_per_node // (layout.tp * layout.pp))
        return max(1, min(group, per_node))
    return group


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def model_states(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    *,
    stage: int = 0,
    gpus_per_node: int = 8,
    split: TrainableParams | None = None,
    stack: StackSettings | None = None,
) -> ModelStates:
    """Model states of one GPU of pipeline `stage` (formulas in the module docstring). `split` is
    `trainable_params(model, job)` when the caller has it already; `stack` the resolved defaults of the
    training stack (buckets, prefetch; `llmplan.stacks.resolve`, which the estimate calls), else those of
    `layout.stack`."""
    st = stack or resolve_stack(layout, model.hidden_size)
    inv = rank_inventory(model, layout.tp, layout.ep, layout.pp, stage)
    split = split or trainable_split(model, job)
    base_total = split.base_trainable + split.frozen
    frac = split.base_trainable / base_total if base_total else 0.0
    adapter, adapter_factored = adapter_on_rank(model, job, layout.tp, layout.pp, stage, split.adapter)
    prec = job.precision
    w, s_bytes = WEIGHT_BYTES[prec], (2 if prec in PURE_16 else 4)
    master = 4 if prec in MIXED else 0
    n = sharding_group(layout, gpus_per_node)
    n_exp = max(1, n // layout.ep) if n > 1 else 1
    stage_k = layout.sharding_stage

    # FSDP2 mixed precision (`MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`): the fp32 shards are
    # the masters, no 16-bit shard exists (the 16-bit copies are the gathered units), gradients are fp32.
    fsdp_mp = layout.fsdp is not None and master > 0
    w_train, g_train = (0, 4) if fsdp_mp else (w, w)

    def parts(elems: int) -> tuple[int, int, int, int, int]:
        """(trainable elems, weights, master, grads, frozen weights) of one sharding class, unsharded."""
        trainable = round(elems * frac)
        frozen = elems - trainable
        return trainable, trainable * w_train, trainable * master, trainable * g_train, frozen

    t_d, w_d, m_d, g_d, f_d = parts(inv.dense)
    t_e, w_e, m_e, g_e, f_e = parts(inv.expert)
    if job.method is Method.QLORA:
        hp = 2 if prec is not Precision.FP32 else 4
        frozen_bytes = inv.nf4_bytes + (inv.total - inv.block_linear_weights) * hp
        dense_share = inv.dense / inv.total if inv.total else 1.0
        fw_d, fw_e = round(frozen_bytes * dense_share), frozen_bytes - round(frozen_bytes * dense_share)
    else:
        fw_d, fw_e = f_d * w, f_e * w
    states_per = _state_bytes_per_elem(job.optimizer, s_bytes)
    if job.optimizer is Optimizer.ADAFACTOR:
        fact = inv.factored / inv.total if inv.total else 0.0
        st_d, st_e = round(t_d * fact) * s_bytes, round(t_e * fact) * s_bytes
    else:
        st_d, st_e = round(t_d * states_per), round(t_e * states_per)
    # adapters: fp32 weights, gradients and states, no master
    if job.optimizer is Optimizer.ADAFACTOR:
        a_states = adapter_factored * ADAPTER_BYTES
    else:
        a_states = round(adapter * _state_bytes_per_elem(job.optimizer, ADAPTER_BYTES))
    a_w = adapter * ADAPTER_BYTES

    def shard(x: int, group: int, from_stage: int) -> int:
        return _ceil(x, group) if stage_k >= from_stage else x

    weights = shard(w_d + fw_d + a_w, n, 3) + shard(w_e + fw_e, n_exp, 3)
    deepspeed_z3 = stage_k == 3 and layout.fsdp is None
    if deepspeed_z3 and n > 1:
        persistent = (
            ds_persistent_elems(model, job, layout.tp, layout.pp, stage, st.ds_persistence_threshold_elems)
            * w
        )
        weights += persistent - _ceil(persistent, n)
    master_b = shard(m_d, n, 1) + shard(m_e, n_exp, 1)
    grads = shard(g_d + a_w, n, 2) + shard(g_e, n_exp, 2)
    states = shard(st_d + a_states, n, 1) + shard(st_e, n_exp, 1)
    trainable_rank = shard(t_d + adapter, n, 1) + shard(t_e, n_exp, 1)
    if master and deepspeed_z3:
        # DeepSpeed ZeRO-3 keeps the 16-bit gradient partition (`grad_partitions_flat_buffer`, the model dtype
        # unless `grad_accum_dtype` says otherwise) through the step and casts one sub-group at a time to fp32
        # (stage3.py `_prepare_fp32_grad_for_sub_group`: flatten, then `.to(fp32)`; both copies exist for an
        # instant), freed after that sub-group's update
        step_grads = grads + min(st.ds_sub_group_elems, trainable_rank) * (4 + w)
    elif master:
        # the 16-bit gradients are cast to fp32 for the step on the masters, each freed once cast
        step_grads = shard(t_d * 4 + a_w, n, 2) + shard(t_e * 4, n_exp, 2)
    else:
        step_grads = grads
    widest = max(model.hidden_size, model.intermediate_size)
    largest = max(inv.largest if split.base_trainable else 0, min(adapter, job.peft.lora_rank * widest))

    temps = _temporaries(job, trainable_rank, largest, s_bytes)
    gather, reduce = _comm_buffers(job, layout, inv, trainable_rank, w, n, st)
    host = nvme = 0
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD:
        grads = step_grads = largest * w
    if layout.offload_optimizer is not OffloadTarget.NONE:
        moved = master_b + states
        fp32_grads = trainable_rank * 4
        if layout.offload_optimizer is OffloadTarget.CPU:
            host += moved + fp32_grads
        else:
            nvme += moved
            host += fp32_grads + DS_NVME_OPT_BUFFERS * min(st.ds_sub_group_elems, trainable_rank) * 4
        master_b = states = temps = 0
        step_grads = grads
    if layout.offload_params is not OffloadTarget.NONE:
        if layout.offload_params is OffloadTarget.CPU:
            host += weights
        else:
            nvme += weights
            host += DS_NVME_PARAM_BUFFERS * DS_NVME_PARAM_BUFFER_SIZE * w
        if layout.fsdp is not None:  # FSDP CPUOffload moves gradients and the optimizer step to the CPU too
            host += grads + master_b + states
            grads = step_grads = master_b = states = temps = 0
        weights = 0
    paged = states if job.optimizer in PAGED else 0
    return ModelStates(
        weights_bytes=weights,
        master_weights_bytes=master_b,
        gradients_bytes=grads,
        step_gradients_bytes=step_grads,
        optimizer_states_bytes=states,
        optimizer_temporaries_bytes=temps,
        gather_buffers_bytes=gather,
        reduce_buffers_bytes=reduce,
        host_bytes=host,
        nvme_bytes=nvme,
        paged_bytes=paged,
        trainable_on_rank=trainable_rank,
        largest_param=largest,
        sharding_group=n,
    )


def _state_bytes_per_elem(optimizer: Optimizer, s_bytes: int) -> float:
    """Optimizer-state bytes per trainable element (Adafactor: see `model_states`, factored per tensor)."""
    if optimizer in EIGHT_BIT:
        return 2 * (1 + 4 / BNB_BLOCK)
    return STATES_PER_PARAM[optimizer] * s_bytes


def _temporaries(job: TrainingJob, trainable: int, largest: int, s_bytes: int) -> int:
    """Transient bytes of the optimizer step on the GPU.

    foreach: FOREACH_TEMPS full-size tensors of the largest parameter group (one group assumed: the states of
    all trainable elements on the rank); fused (torch `fused=True`, DeepSpeed FusedAdam) and every
    bitsandbytes optimizer (8-bit or paged: one CUDA kernel per parameter): none; for-loop and Adafactor:
    FOR_LOOP_TEMPS × the largest parameter; in-backward: the for-loop temporaries.
    """
    opt, impl = job.optimizer, job.optimizer_impl
    if opt in EIGHT_BIT or opt in PAGED or impl is OptimizerImpl.FUSED:
        return 0
    if opt is Optimizer.ADAFACTOR or impl in (OptimizerImpl.FOR_LOOP, OptimizerImpl.IN_BACKWARD):
        per = 4 if opt is Optimizer.ADAFACTOR else s_bytes
        return FOR_LOOP_TEMPS * largest * per if STATES_PER_PARAM[opt] else 0
    return FOREACH_TEMPS.get(opt, 0) * trainable * s_bytes


def _comm_buffers(
    job: TrainingJob,
    layout: Layout,
    inv: RankInventory,
    trainable: int,
    w: int,
    n: int,
    st: StackSettings,
) -> tuple[int, int]:
    """(gather, reduce) buffer bytes; the sizes are the stack's (`st`, `llmplan.stacks`).

    DeepSpeed ZeRO-3 (16-bit parameters), the larger of two moments:
    - a layer's backward: the layer, gathered for its recomputation and kept through its backward (reused
      within `stage3_max_reuse_distance`), plus the prefetch bucket (HF "auto": 0.9·h²) of the next modules;
    - the turn from forward to backward: the head (reused by its own backward at once) stays gathered, and so
      do the last layer's parameters that the trace reuses within `stage3_max_reuse_distance` elements after
      the head's forward and backward (2 · head elements), plus the prefetch bucket;
    never more than `stage3_max_live_parameters` beyond the current layer, nor the rank's whole model
    (deepspeed/runtime/zero/partitioned_param_coordinator.py `fetch_sub_module`, `__params_to_release`).
    Over one GPU nothing is gathered: the partition is the whole parameter (partition_parameters.py
    `all_gather_coalesced` returns `_no_gather_coalesced` when the partition world size is 1).
    FSDP full / hybrid shard, a unit per decoder layer: the root unit (embedding, final norm, head) stays
    gathered from forward to the end of backward (FSDP2 does not reshard the root after forward) plus two
    layers (current + `fsdp_prefetch_units` prefetched), never more than the rank's whole model; checked
    against `trace.fsdp` (FSDP2 on a fake process group). Units are gathered in FSDP's `param_dtype`: under
    amp-bf16 with `fsdp_gather_16bit` that is bf16, not the fp32 of the shards, because accelerate's FSDP plugin turns `mixed_precision: bf16` into
    `MixedPrecision(param_dtype=bf16, reduce_dtype=bf16, buffer_dtype=bf16)` (accelerate/utils/dataclasses.py
    `FullyShardedDataParallelPlugin.set_mixed_precision`); the unsharded gradient of a unit is then bf16 too.
    Reduce: DDP keeps a bucket copy of every gradient when `ddp_bucket_copy` (`gradient_as_bucket_view=False`,
    the default; torch DistributedDataParallel docs); DeepSpeed ZeRO-1/2 a reduce bucket of
    min(reduce_bucket_size, trainable) elements; DeepSpeed ZeRO-3 its contiguous reduce bucket of
    `reduce_bucket_size` (HF "auto": h²) elements, allocated when the
    optimizer is built (stage3.py: `torch.empty(self.reduce_bucket_size, ...)` per communication dtype); FSDP
    the unsharded gradient of one unit before its reduce-scatter.
    """
    if layout.dp * layout.cp == 1 and layout.sharding_stage < 3:
        return 0, 0
    stage_k = layout.sharding_stage
    unit = max(inv.layer_max, inv.outer)
    gather = 0
    reduce_bucket, prefetch = st.ds_reduce_bucket_elems, st.ds_prefetch_elems
    if layout.fsdp is not None and job.precision is Precision.AMP_BF16 and st.fsdp_gather_16bit:
        w = 2
    if stage_k == 3 and layout.fsdp is None:
        kept_last = min(inv.layer_max, max(0, st.ds_max_reuse_elems - 2 * inv.head))
        live = max(inv.layer_max, inv.head + kept_last) + min(prefetch, st.ds_max_live_elems)
        gather = min(live, inv.total) * w if n > 1 else 0
    elif stage_k == 3:
        gather = min(inv.outer + (1 + st.fsdp_prefetch_units) * inv.layer_max, inv.total) * w
    if trainable == 0:
        return gather, 0
    if stage_k == 0:
        reduce = trainable * w if st.ddp_bucket_copy else 0
    elif layout.fsdp is not None:
        reduce = min(unit, trainable * n) * w
    elif stage_k == 3:
        reduce = reduce_bucket * w
    else:
        reduce = min(reduce_bucket, trainable * (n if stage_k >= 1 else 1)) * w
    return gather, reduce
